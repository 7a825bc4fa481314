/**
 * The pipeline: the stages of README.md's diagram, in that order. runTail
 * (stage 1) and deliverInvocation read top to bottom as stages 1 to 4 and
 * 10, with the delivery mode
 * (src/pipeline/modes.ts) running 5 to 9: direct delivers in tail(); buffered
 * enqueues, and runQueue (src/pipeline/consume.ts) delivers later. The
 * handlers (src/tail.ts, src/queue.ts, src/stream/) only call runTail and
 * runQueue.
 */
import { deliveryOptions, formatConfigErrors, loadConfig, type ResolvedConfig } from "../config";
import type { DeliveryOptions, SinkReport } from "../delivery/deliver";
import { drainSpool } from "../delivery/spool";
import { keepUnconfigured } from "../delivery/unconfigured";
import { logError } from "../log";
import { normalizeTraceItems } from "../normalize";
import type { LogRecord } from "../record";
import { recordStats, StatsBatch } from "../stats";
import { consume, readBatch } from "./consume";
import { dropOwnEvents } from "./guard";
import { DELIVERY_MODES } from "./modes";
import { prepareRecords } from "./views";

// What the API's route test and the benchmark run of the pipeline, stage by stage.
export { dropOwnEvents } from "./guard";
export { planDelivery } from "./plan";
export { prepareRecords } from "./views";

/** Turns records into their normalized form; the streaming tail passes its own (TraceItem plus span context). */
export type Normalize = (events: readonly unknown[]) => LogRecord[];

/**
 * Stage 1 failed: the TraceItems are kept raw in the dead-letter bucket, if
 * there is one, and the errors are logged; nothing is delivered.
 */
function keepForBrokenConfig(events: readonly unknown[], env: Record<string, unknown>, errors: string) {
  return keepUnconfigured(events, env)
    .then((outcome) =>
      logError(
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
  const startedAt = Date.now();
  const stats = new StatsBatch();
  // 2. Loop guard: counted, never logged (a log line would itself be an event about tailfan).
  const own = dropOwnEvents(events, config.selfName);
  stats.add("*", "droppedLoop", own.dropped);
  // 3 and 4.
  const prepared = await prepareRecords(normalize(own.events), config);
  // 5 to 9.
  const options = deliveryOptions(config.delivery, override);
  const reports = await DELIVERY_MODES[config.delivery.mode].fromTail(prepared, { config, env, stats, options });
  // 10. Summed per isolate; the invocation that opens the window writes it.
  await recordStats(env, config.delivery, stats, startedAt);
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
 * unexpected failed), then its counters added to the isolate's window.
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
  const startedAt = Date.now();
  const stats = new StatsBatch();
  // Never rejects: a message it cannot read is acknowledged and logged.
  const work = await readBatch(batch);
  try {
    await consume(work, batch.queue, config, env, stats, deliveryOptions(config.delivery, override));
    for (const msg of work.messages) msg.ack();
  } catch (err) {
    console.error(`tailfan: queue batch failed unexpectedly, retrying it: ${String(err)}`);
    for (const msg of work.messages) msg.retry({ delaySeconds: 60 });
  }
  // Buffered records the queue refused earlier go back on it now that it delivers again.
  if (config.delivery.mode === "buffered" && batch.queue !== config.delivery.deadLetterQueue) {
    await drainSpool(config.delivery, env);
  }
  await recordStats(env, config.delivery, stats, startedAt);
}

/**
 * The cron (scheduled()): puts spooled buffered records back on the work
 * queue, for when no queue() batch comes to do it. Never throws.
 */
export async function runScheduled(env: Record<string, unknown>): Promise<void> {
  try {
    const loaded = loadConfig(env);
    if (loaded.ok) await drainSpool(loaded.config.delivery, env);
  } catch (err) {
    console.error("tailfan: the spool drain failed unexpectedly", err);
  }
}
