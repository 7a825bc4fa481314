/**
 * The tail handler: one invocation's TraceItems through the pipeline
 * (src/pipeline/), inside waitUntil, with one counters write at the end.
 */
import type { DeliveryOptions, SinkReport } from "./delivery/deliver";
import { type Normalize, runTail } from "./pipeline";

/**
 * Never throws; returns the delivery promise for callers that await it (the
 * API's /ingest and /replay, tests). The streaming tail passes its own
 * `normalize`.
 */
export function handleTail(
  events: readonly unknown[],
  env: Record<string, unknown>,
  ctx: Pick<ExecutionContext, "waitUntil">,
  override?: Partial<DeliveryOptions>,
  normalize?: Normalize,
): Promise<SinkReport[]> {
  return runTail(events, env, ctx, override, normalize);
}
