/**
 * The queue handler: buffered records and queued retries through the
 * pipeline's consumer (src/pipeline/consume.ts); what the queue itself gave
 * up on (its dead_letter_queue) becomes dead letters.
 */
import type { DeliveryOptions } from "./delivery/deliver";
import { runQueue } from "./pipeline";

export function handleQueue(
  batch: MessageBatch<unknown>,
  env: Record<string, unknown>,
  override?: Partial<DeliveryOptions>,
): Promise<void> {
  return runQueue(batch, env, override);
}
