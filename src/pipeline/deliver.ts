/**
 * Stages 7 to 9 as one call: batch and encode, send and retry
 * (src/delivery/batch.ts, src/delivery/deliver.ts), then settle every
 * failure: requeue, dead letter or count as lost (src/delivery/settle.ts).
 */
import type { ResolvedConfig } from "../config";
import { type DeliveryOptions, deliverAll, type SinkReport, type SinkTarget } from "../delivery/deliver";
import { type SettleContext, settleAll } from "../delivery/settle";
import type { StatsBatch } from "../stats";

/** Settling records on their first delivery: they were never in the queue, and had no attempts before. */
export function firstDelivery(config: ResolvedConfig, env: Record<string, unknown>, stats: StatsBatch): SettleContext {
  return { env, delivery: config.delivery, stats, fromQueue: false, queueAttempts: 0 };
}

/** Delivers to every target side by side and settles the reports; never throws. */
export async function deliverAndSettle(
  targets: readonly SinkTarget[],
  sc: SettleContext,
  options: DeliveryOptions,
): Promise<SinkReport[]> {
  const reports = await deliverAll(targets, options);
  await settleAll(sc, reports);
  return reports;
}
