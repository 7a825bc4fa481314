/**
 * The pipeline, stage by stage in the order a record takes:
 *
 *  1. config       env vars, checked once per isolate            src/config.ts
 *  2. loop guard   tailfan's own TraceItems dropped              src/pipeline/guard.ts
 *  3. normalize    TraceItem[] -> LogRecord[]                    src/normalize.ts
 *  4. scrub        global SCRUB, and per-sink views              src/pipeline/views.ts
 *  5. route        record -> the sinks that want it              src/pipeline/plan.ts (src/router.ts)
 *  6. serialize    once per record, cut to the size limits       src/pipeline/plan.ts (src/limits.ts)
 *  7. batch        per sink, encoded into payloads               src/delivery/batch.ts, sinks/<type>.ts
 *  8. send         timeout, retry with backoff, side by side     src/delivery/deliver.ts
 *  9. settle       requeue, dead letter, or count as lost        src/delivery/settle.ts
 * 10. counters     one write per invocation                      src/stats.ts
 *
 * Stages 5 to 9 are the delivery mode's (src/pipeline/modes.ts): direct
 * delivers in tail(); buffered enqueues and queue() (src/pipeline/consume.ts)
 * runs them later. The handlers (src/tail.ts, src/queue.ts, src/stream/)
 * only call runTail and runQueue.
 */
import { formatConfigErrors, loadConfig, type ResolvedConfig } from "../config";
import { type DeliveryOptions, deliveryOptions, type SinkReport } from "../delivery/deliver";
import { keepUnconfigured } from "../delivery/unconfigured";
import { normalizeTraceItems } from "../normalize";
import type { LogRecord } from "../record";
import { flushStats, StatsBatch } from "../stats";
import { consume, readBatch } from "./consume";
import { dropOwnEvents } from "./guard";
import { DELIVERY_MODES } from "./modes";
import { prepareRecords } from "./views";

export { deliverAndSettle } from "./deliver";
export { dropOwnEvents } from "./guard";
export { DELIVERY_MODES, type DeliveryMode, type ModeContext } from "./modes";
export { planDelivery } from "./plan";
export { type PreparedRecords, prepareRecords, unredactRecords } from "./views";

/** Turns records into their normalized form; the streaming tail passes its own (TraceItem plus span context). */
export type Normalize = (events: readonly unknown[]) => LogRecord[];

/**
 * Stage 1 failed: the TraceItems are kept raw in the dead-letter bucket, if
 * there is one, and the errors are logged; nothing is delivered.
 */
function keepForBrokenConfig(events: readonly unknown[], env: Record<string, unknown>, errors: string) {
  return keepUnconfigured(events, env)
    .then((outcome) =>
      console.error(
        `tailfan: configuration is invalid, ${events.length} TraceItem(s) not delivered (${outcome}). Fix these and redeploy:\n${errors}`,
      ),
    )
    .catch((err: unknown) => console.error("tailfan: keeping TraceItems of a broken config failed", err))
    .then(() => [] as SinkReport[]);
}

/** Stages 2 to 10 for a loaded config. */
async function deliverInvocation(
  events: readonly unknown[],
  config: ResolvedConfig,
  env: Record<string, unknown>,
  normalize: Normalize,
  override?: Partial<DeliveryOptions>,
): Promise<SinkReport[]> {
  const stats = new StatsBatch();
  // Loop guard: counted, never logged (a log line would itself be an event about tailfan).
  const own = dropOwnEvents(events, config.selfName);
  stats.add("*", "droppedLoop", own.dropped);
  const prepared = await prepareRecords(normalize(own.events), config);
  const options = deliveryOptions(config.delivery, override);
  const reports = await DELIVERY_MODES[config.delivery.mode].fromTail(prepared, { config, env, stats, options });
  await flushStats(env, config.delivery.stats, stats);
  return reports;
}

/**
 * One tail() invocation through the whole pipeline, inside waitUntil. Never
 * throws; returns the delivery promise for callers that await it.
 */
export function runTail(
  events: readonly unknown[],
  env: Record<string, unknown>,
  ctx: Pick<ExecutionContext, "waitUntil">,
  override?: Partial<DeliveryOptions>,
  normalize: Normalize = normalizeTraceItems,
): Promise<SinkReport[]> {
  try {
    const loaded = loadConfig(env);
    const done = loaded.ok
      ? deliverInvocation(events, loaded.config, env, normalize, override).catch((err: unknown) => {
          console.error("tailfan: delivery failed unexpectedly", err);
          return [] as SinkReport[];
        })
      : keepForBrokenConfig(events, env, formatConfigErrors(loaded.errors));
    ctx.waitUntil(done);
    return done;
  } catch (err) {
    console.error("tailfan: internal error in tail(); events not delivered", err);
    return Promise.resolve([]);
  }
}

/**
 * One queue() batch: buffered records and retries delivered and settled,
 * then acknowledged together (or all retried in a minute if something
 * unexpected failed), then one counters write.
 */
export async function runQueue(
  batch: MessageBatch<unknown>,
  env: Record<string, unknown>,
  override?: Partial<DeliveryOptions>,
): Promise<void> {
  const loaded = loadConfig(env);
  if (!loaded.ok) {
    console.error(
      `tailfan: configuration is invalid; ${batch.messages.length} queued message(s) will be retried in 5 minutes. Fix these and redeploy:\n${formatConfigErrors(loaded.errors)}`,
    );
    batch.retryAll({ delaySeconds: 300 });
    return;
  }
  const { config } = loaded;
  const stats = new StatsBatch();
  const work = readBatch(batch);
  try {
    await consume(work, batch.queue, config, env, stats, deliveryOptions(config.delivery, override));
    for (const msg of work.messages) msg.ack();
  } catch (err) {
    console.error(`tailfan: queue batch failed unexpectedly, retrying it: ${String(err)}`);
    for (const msg of work.messages) msg.retry({ delaySeconds: 60 });
  }
  await flushStats(env, config.delivery.stats, stats);
}
