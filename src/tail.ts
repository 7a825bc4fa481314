import { type DeliveryConfig, formatConfigErrors, loadConfig, type ResolvedConfig } from "./config";
import { type DeliveryOptions, deliverAll, type SinkReport, type SinkTarget } from "./delivery/deliver";
import { sendMessages, toMessages } from "./delivery/durable";
import { settleAll } from "./delivery/settle";
import { keepUnconfigured } from "./delivery/unconfigured";
import { RecordSerializer, toJson } from "./json";
import { isLimited, limitSerialized } from "./limits";
import { normalizeTraceItems } from "./normalize";
import type { Json, LogRecord, SerializedRecord } from "./record";
import { routeRecord } from "./router";
import { type Scrubber, scrubRecords } from "./scrub";
import { flushStats, StatsBatch } from "./stats";

/** The per-attempt knobs of a delivery config; the runtime allows 6 connections at once. */
export function deliveryOptions(d: DeliveryConfig, override?: Partial<DeliveryOptions>): DeliveryOptions {
  return {
    timeoutMs: d.timeoutMs,
    maxAttempts: d.attempts,
    backoffMs: d.backoffMs,
    budgetMs: d.budgetMs,
    maxConnections: 6,
    ...override,
  };
}

/**
 * Routes records to sinks and serializes each routed record exactly once;
 * every sink that takes it shares the same line. Counts `received` and
 * `droppedFilter` per sink when given a stats batch.
 */
export function planDelivery(
  records: readonly (LogRecord | SerializedRecord)[],
  config: ResolvedConfig,
  env: Record<string, unknown>,
  stats?: StatsBatch,
  views?: ReadonlyMap<string, readonly LogRecord[]>,
): SinkTarget[] {
  const perSink = new Map<string, SerializedRecord[]>();
  for (const s of config.sinks) perSink.set(s.name, []);
  const serializer = new RecordSerializer();
  // A sink with its own view of the records (unredacted) gets them from that view, serialized once per view.
  const viewSerializers = new Map<readonly LogRecord[], RecordSerializer>();
  // The latest records view of the dashboard, kept beside the counters.
  const keep = stats && config.delivery.stats !== null ? config.delivery.recent : 0;
  // Sink types that take only some records (Sentry: exceptions) say which, once per delivery.
  const takes = new Map<string, (record: LogRecord) => boolean>();
  for (const s of config.sinks) {
    if (!s.definition.takes) continue;
    takes.set(
      s.name,
      s.definition.takes(
        records.map((e) => ("line" in e ? e.record : e)),
        s.options,
      ),
    );
  }
  for (let i = 0; i < records.length; i++) {
    const entry = records[i] as LogRecord | SerializedRecord;
    const record = "line" in entry ? entry.record : entry;
    const routed = routeRecord(record, config.table);
    const names = takes.size === 0 ? routed : routed.filter((name) => takes.get(name)?.(record) ?? true);
    if (names.length === 0) {
      if (keep > 0) stats?.see(record, "line" in entry ? entry.line : null, names, keep);
      continue;
    }
    let base: SerializedRecord | undefined;
    for (const name of names) {
      const view = views?.get(name);
      let item: SerializedRecord;
      if (view && view[i] !== undefined && view[i] !== record) {
        let vs = viewSerializers.get(view);
        if (!vs) {
          vs = new RecordSerializer();
          viewSerializers.set(view, vs);
        }
        item = limitSerialized(vs.serialize(view[i] as LogRecord), config.limits);
      } else {
        // Size limits apply after routing (which reads no field they cut) and before any sink or queue.
        base ??= limitSerialized("line" in entry ? entry : serializer.serialize(record), config.limits);
        item = base;
      }
      perSink.get(name)?.push(item);
      if (stats && isLimited(item.record)) stats.add(name, "truncated", 1);
    }
    if (keep > 0) stats?.see(record, base?.line ?? ("line" in entry ? entry.line : null), names, keep);
  }
  const targets: SinkTarget[] = [];
  for (const s of config.sinks) {
    const items = perSink.get(s.name) ?? [];
    if (stats) {
      stats.add(s.name, "received", items.length);
      stats.add(s.name, "droppedFilter", records.length - items.length);
    }
    if (items.length === 0) continue;
    targets.push({ name: s.name, sink: s.definition.create(s.options, { name: s.name, env }), batch: s.batch, items });
  }
  return targets;
}

/**
 * The records as an `unredacted: true` sink sees them: the URL and request
 * headers from the runtime's `getUnredacted()`, where the runtime offers it
 * (live TraceItems; a replayed JSON capture has nothing more to give).
 */
export function unredactRecords(records: readonly LogRecord[]): readonly LogRecord[] {
  const byInvocation = new Map<string, { url: unknown; request: unknown }>();
  for (const r of records) {
    if (r.type !== "invocation" || r.eventType !== "fetch") continue;
    try {
      const request = (r.event as { request?: { getUnredacted?: () => { url?: unknown } } } | null)?.request;
      if (typeof request?.getUnredacted !== "function") continue;
      const open = request.getUnredacted();
      byInvocation.set(r.invocationId, { url: open.url, request: toJson(open) });
    } catch {
      // A runtime that refuses keeps the redacted view.
    }
  }
  if (byInvocation.size === 0) return records;
  return records.map((r) => {
    const open = byInvocation.get(r.invocationId);
    if (!open) return r;
    const copy = { ...r, ...(typeof open.url === "string" ? { url: open.url } : {}) } as LogRecord;
    if (copy.type === "invocation" && r.type === "invocation") {
      copy.event = { ...(toJson(r.event) as object), request: open.request } as Json;
    }
    return copy;
  });
}

/**
 * Scrubs the records (global SCRUB) and builds the other views sinks asked
 * for: unredacted, or scrubbed by their own `scrub` option. Every view starts
 * from the normalized records, so a sink's own scrubbing replaces the global
 * one instead of adding to it.
 */
export async function prepareRecords(
  normalized: readonly LogRecord[],
  config: ResolvedConfig,
): Promise<{ records: readonly LogRecord[]; views: Map<string, readonly LogRecord[]> | undefined }> {
  const scrub = async (records: readonly LogRecord[], scrubber: Scrubber | null) =>
    scrubber === null ? records : (await scrubRecords(records, scrubber)).records;
  const records = await scrub(normalized, config.scrubber);
  let views: Map<string, readonly LogRecord[]> | undefined;
  let open: readonly LogRecord[] | undefined;
  const shared = new Map<string, readonly LogRecord[]>();
  for (const sink of config.sinks) {
    if (!sink.unredacted && sink.scrubber === undefined) continue;
    const scrubber = sink.scrubber === undefined ? config.scrubber : sink.scrubber;
    // Sinks with the same view share it, so it is serialized once.
    const key = `${sink.unredacted}|${sink.scrubber === undefined ? "global" : sink.name}`;
    let view = shared.get(key);
    if (!view) {
      if (sink.unredacted && open === undefined) open = unredactRecords(normalized);
      const source = sink.unredacted && open !== undefined ? open : normalized;
      view = sink.unredacted || scrubber !== config.scrubber ? await scrub(source, scrubber) : records;
      shared.set(key, view);
    }
    views ??= new Map();
    views.set(sink.name, view);
  }
  return { records, views };
}

/** Drops TraceItems of tailfan itself, so that naming it as its own tail consumer cannot loop. */
export function dropOwnEvents(
  events: readonly unknown[],
  selfName: string,
): { events: readonly unknown[]; dropped: number } {
  let dropped = 0;
  const kept = events.filter((e) => {
    let name: unknown;
    try {
      name = (e as { scriptName?: unknown } | null)?.scriptName;
    } catch {
      name = undefined;
    }
    if (name === selfName) {
      dropped++;
      return false;
    }
    return true;
  });
  return dropped === 0 ? { events, dropped } : { events: kept, dropped };
}

/** Delivers directly and settles every failure (retry queue, dead letter, or counted as failed). */
async function deliverDirect(
  targets: SinkTarget[],
  config: ResolvedConfig,
  env: Record<string, unknown>,
  stats: StatsBatch,
  override?: Partial<DeliveryOptions>,
): Promise<SinkReport[]> {
  const reports = await deliverAll(targets, deliveryOptions(config.delivery, override));
  await settleAll({ env, delivery: config.delivery, stats, fromQueue: false, queueAttempts: 0 }, reports);
  return reports;
}

/**
 * Buffered mode: the records (routed, serialized once) go to the work queue
 * and queue() delivers them in large batches and counts them there, so a
 * buffered tail() makes one queue send and no counters write. If the queue
 * refuses, this invocation falls back to direct delivery: nothing is lost.
 */
async function enqueueBuffered(
  records: readonly LogRecord[],
  config: ResolvedConfig,
  env: Record<string, unknown>,
  stats: StatsBatch,
  override?: Partial<DeliveryOptions>,
): Promise<SinkReport[]> {
  const routing = new StatsBatch();
  const targets = planDelivery(records, config, env, routing);
  const unique = new Set<SerializedRecord>();
  for (const t of targets) for (const item of t.items) unique.add(item);
  const unrouted = records.length - unique.size;
  const { bodies, oversized } = toMessages({ v: 1, kind: "records", at: Date.now() }, [...unique]);
  if (unrouted > 0 && bodies.length > 0) {
    // The first message tells queue() how many records no sink wanted, so droppedFilter stays complete.
    const first = bodies[0] as string;
    const nl = first.indexOf("\n");
    const head = JSON.stringify({ v: 1, kind: "records", at: Date.now(), unrouted });
    bodies[0] = nl < 0 ? head : head + first.slice(nl);
  }
  let direct = targets;
  try {
    await sendMessages(env[config.delivery.queue as string] as Queue, bodies);
    // A record too large for a queue message is delivered directly instead.
    const tooBig = new Set(oversized);
    direct = targets
      .map((t) => ({ ...t, items: t.items.filter((i) => tooBig.has(i)) }))
      .filter((t) => t.items.length > 0);
    if (direct.length === 0) return [];
    for (const t of direct) stats.add(t.name, "received", t.items.length);
  } catch (err) {
    console.error(`tailfan: the buffer queue refused ${unique.size} record(s) (${String(err)}); delivering directly`);
    stats.merge(routing);
  }
  return deliverDirect(direct, config, env, stats, override);
}

/**
 * The tail handler: config (cached per isolate), normalize, route, deliver
 * (or enqueue, in buffered mode) inside waitUntil, one counters write at the
 * end. Never throws; returns the delivery promise for callers that await it.
 * The streaming tail passes its own `normalize` (TraceItem plus span context).
 */
export function handleTail(
  events: readonly unknown[],
  env: Record<string, unknown>,
  ctx: Pick<ExecutionContext, "waitUntil">,
  override?: Partial<DeliveryOptions>,
  normalize: (events: readonly unknown[]) => LogRecord[] = normalizeTraceItems,
): Promise<SinkReport[]> {
  try {
    const loaded = loadConfig(env);
    if (!loaded.ok) {
      const errors = formatConfigErrors(loaded.errors);
      const kept = keepUnconfigured(events, env)
        .then((outcome) =>
          console.error(
            `tailfan: configuration is invalid, ${events.length} TraceItem(s) not delivered (${outcome}). Fix these and redeploy:\n${errors}`,
          ),
        )
        .catch((err: unknown) => console.error("tailfan: keeping TraceItems of a broken config failed", err))
        .then(() => [] as SinkReport[]);
      ctx.waitUntil(kept);
      return kept;
    }
    const { config } = loaded;
    const stats = new StatsBatch();
    // Loop guard: counted, never logged (a log line would itself be an event about tailfan).
    const own = dropOwnEvents(events, config.selfName);
    stats.add("*", "droppedLoop", own.dropped);
    const work = prepareRecords(normalize(own.events), config).then(({ records, views }) =>
      config.delivery.mode === "buffered"
        ? enqueueBuffered(records, config, env, stats, override)
        : deliverDirect(planDelivery(records, config, env, stats, views), config, env, stats, override),
    );
    const done = work
      .then(async (reports) => {
        await flushStats(env, config.delivery.stats, stats);
        return reports;
      })
      .catch((err: unknown) => {
        console.error("tailfan: delivery failed unexpectedly", err);
        return [] as SinkReport[];
      });
    ctx.waitUntil(done);
    return done;
  } catch (err) {
    console.error("tailfan: internal error in tail(); events not delivered", err);
    return Promise.resolve([]);
  }
}
