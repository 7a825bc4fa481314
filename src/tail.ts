import { formatConfigErrors, loadConfig, type ResolvedConfig } from "./config";
import {
  DEFAULT_DELIVERY,
  type DeliveryOptions,
  deliverAll,
  type SinkReport,
  type SinkTarget,
} from "./delivery/deliver";
import { RecordSerializer } from "./json";
import { normalizeTraceItems } from "./normalize";
import type { LogRecord, SerializedRecord } from "./record";
import { routeRecord } from "./router";

/**
 * Routes records to sinks and serializes each routed record exactly once;
 * every sink that takes it shares the same line.
 */
export function planDelivery(
  records: readonly LogRecord[],
  config: ResolvedConfig,
  env: Record<string, unknown>,
): SinkTarget[] {
  const perSink = new Map<string, SerializedRecord[]>();
  for (const s of config.sinks) perSink.set(s.name, []);
  const serializer = new RecordSerializer();
  for (const record of records) {
    const names = routeRecord(record, config.table);
    if (names.length === 0) continue;
    const item = serializer.serialize(record);
    for (const name of names) perSink.get(name)?.push(item);
  }
  const targets: SinkTarget[] = [];
  for (const s of config.sinks) {
    const items = perSink.get(s.name) ?? [];
    if (items.length === 0) continue;
    targets.push({ name: s.name, sink: s.definition.create(s.options, { name: s.name, env }), batch: s.batch, items });
  }
  return targets;
}

/** Logs what did not reach a sink, with the sink's name and the reason, for `wrangler tail` and Workers Logs. */
export function logFailures(reports: readonly SinkReport[]): void {
  for (const r of reports) {
    if (r.failed === 0 && r.oversized === 0) continue;
    console.error(
      `tailfan: sink "${r.sink}" lost ${r.failed + r.oversized} of ${r.records} record(s): ${r.errors.join("; ")}`,
    );
  }
}

/**
 * The tail handler: config (cached per isolate), normalize, route, deliver
 * inside waitUntil. Never throws; returns the delivery promise for callers
 * that want to await it.
 */
export function handleTail(
  events: readonly unknown[],
  env: Record<string, unknown>,
  ctx: Pick<ExecutionContext, "waitUntil">,
  options: DeliveryOptions = DEFAULT_DELIVERY,
): Promise<SinkReport[]> {
  try {
    const loaded = loadConfig(env);
    if (!loaded.ok) {
      console.error(
        `tailfan: configuration is invalid, ${events.length} TraceItem(s) not delivered. Fix these and redeploy:\n${formatConfigErrors(loaded.errors)}`,
      );
      return Promise.resolve([]);
    }
    const records = normalizeTraceItems(events);
    const targets = planDelivery(records, loaded.config, env);
    const done = deliverAll(targets, options).then(
      (reports) => {
        logFailures(reports);
        return reports;
      },
      (err: unknown) => {
        console.error("tailfan: delivery failed unexpectedly", err);
        return [];
      },
    );
    ctx.waitUntil(done);
    return done;
  } catch (err) {
    console.error("tailfan: internal error in tail(); events not delivered", err);
    return Promise.resolve([]);
  }
}
