/**
 * Direct mode (the default): tail() routes, serializes, delivers and settles
 * records inside waitUntil. Rules:
 * - every sink sees its own view (unredacted, or its own scrub);
 * - the tail() calls of an isolate share deliveries (src/pipeline/coalesce.ts):
 *   one request per sink batch carries many invocations, sent when
 *   `DELIVERY.bufferMs` ends or when DIRECT_CHUNK_BYTES of records gathered;
 *   `bufferMs = 0` delivers each invocation on its own;
 * - a batch that fails after its attempts goes to the retry queue when
 *   `DELIVERY.queue` is set, else to the dead letter, else it is counted as failed;
 * - a sink that sums records (metrics) is folded into the isolate's window
 *   instead, and sent once per window (src/pipeline/aggregate.ts);
 * - each invocation counts what it routed; the one that sends a shared
 *   delivery counts how it went, and the counters are summed per isolate.
 */

import type { ResolvedConfig } from "../config";
import type { DeliveryOptions, SinkReport, SinkTarget } from "../delivery/deliver";
import type { SettleContext } from "../delivery/settle";
import type { SerializedRecord } from "../record";
import { aggregateAndSettle } from "./aggregate";
import { coalesce } from "./coalesce";
import { deliverAndSettle, firstDelivery } from "./deliver";
import type { DeliveryMode } from "./modes";
import { planDelivery } from "./plan";

/** Record bytes (over all sinks) one shared delivery gathers at most before it is sent. */
export const DIRECT_CHUNK_BYTES = 2 * 1024 * 1024;
/** Time a delivery may take past its budget to settle (requeue, dead letter) before waiters stop waiting for it. */
const SETTLE_MS = 5_000;

/** One record for one sink, as the shared delivery holds it. */
interface Entry {
  target: SinkTarget;
  item: SerializedRecord;
}

// One key per loaded config: the config is cached per isolate, and entries of different configs never mix.
const keys = new WeakMap<ResolvedConfig, string>();
let nextKey = 0;
function keyOf(config: ResolvedConfig): string {
  let key = keys.get(config);
  if (key === undefined) {
    key = `direct:${++nextKey}`;
    keys.set(config, key);
  }
  return key;
}

/** The entries of a shared delivery as one target per sink, in the order they joined. */
function regroup(entries: readonly Entry[]): SinkTarget[] {
  const bySink = new Map<string, SinkTarget>();
  for (const { target, item } of entries) {
    let t = bySink.get(target.name);
    if (t === undefined) {
      t = { ...target, items: [] };
      bySink.set(target.name, t);
    }
    t.items.push(item);
  }
  return [...bySink.values()];
}

/** One report per sink: the reports of the shared deliveries this invocation sent, added up. */
function perSink(reports: readonly SinkReport[]): SinkReport[] {
  const bySink = new Map<string, SinkReport>();
  for (const r of reports) {
    const into = bySink.get(r.sink);
    if (into === undefined) {
      bySink.set(r.sink, { ...r, errors: [...r.errors], failures: [...r.failures] });
      continue;
    }
    into.records += r.records;
    into.delivered += r.delivered;
    into.failed += r.failed;
    into.oversized += r.oversized;
    into.requests += r.requests;
    into.bytes += r.bytes;
    if (r.pending !== undefined) into.pending = (into.pending ?? 0) + r.pending;
    if (r.deadLettered !== undefined) into.deadLettered = (into.deadLettered ?? 0) + r.deadLettered;
    for (const e of r.errors) into.errors.push(e);
    for (const f of r.failures) into.failures.push(f);
  }
  return [...bySink.values()];
}

/** Delivers the targets together with those of the isolate's other tail() calls within `windowMs`. */
async function shared(
  targets: readonly SinkTarget[],
  config: ResolvedConfig,
  mc: { env: Record<string, unknown>; stats: SettleContext["stats"]; options: DeliveryOptions },
  windowMs: number,
  started: number,
): Promise<SinkReport[]> {
  const { env, stats, options } = mc;
  const entries: Entry[] = [];
  for (const target of targets) for (const item of target.items) entries.push({ target, item });
  const reports: SinkReport[] = [];
  const left = await coalesce<Entry>(entries, 0, {
    key: keyOf(config),
    windowMs,
    stallMs: options.budgetMs + SETTLE_MS,
    chunkBytes: DIRECT_CHUNK_BYTES,
    size: (e) => e.item.bytes + 1,
    // Runs in the context of the request whose timer (or a full chunk) started it; its counters take the outcome.
    send: async (chunk) => {
      for (const r of await deliverAndSettle(regroup(chunk.items), firstDelivery(config, env, stats), options)) {
        reports.push(r);
      }
    },
  });
  if (left.items.length > 0) {
    // The shared delivery stalled (its request's context may be gone): this invocation delivers its own records.
    const budgetMs = Math.max(1_000, options.budgetMs - (Date.now() - started));
    const own = await deliverAndSettle(regroup(left.items), firstDelivery(config, env, stats), {
      ...options,
      budgetMs,
    });
    for (const r of own) reports.push(r);
  }
  return perSink(reports);
}

export const directMode: DeliveryMode = {
  async fromTail({ records, views }, { config, env, stats, options }) {
    const started = Date.now();
    const targets = planDelivery(records, config, env, stats, views);
    const sc = firstDelivery(config, env, stats);
    const sent: SinkTarget[] = [];
    const summed: Promise<SinkReport>[] = [];
    for (const t of targets) {
      const aggregation = t.sink.aggregate;
      if (aggregation === undefined) sent.push(t);
      else summed.push(aggregateAndSettle(t, aggregation, sc, options, started));
    }
    const windowMs = options.bufferMs ?? config.delivery.bufferMs;
    const delivered =
      windowMs <= 0
        ? deliverAndSettle(sent, sc, options)
        : shared(sent, config, { env, stats, options }, windowMs, started);
    const [reports, sums] = await Promise.all([delivered, Promise.all(summed)]);
    return [...reports, ...sums];
  },
};
