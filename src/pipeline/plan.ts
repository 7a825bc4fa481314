/**
 * Stages 5 and 6, route and serialize once: each record goes to the sinks
 * whose filters it matches, serialized once and cut to the size limits; every
 * sink that takes it shares the same line. A sink with a shape (`fields`,
 * `exclude`, `rename`, `add`) gets the record shaped, then cut, once per
 * distinct shape: sinks with equal shapes share that line too.
 */
import type { ResolvedConfig } from "../config";
import type { SinkTarget } from "../delivery/deliver";
import { RecordSerializer } from "../json";
import { limitSerialized } from "../limits";
import type { LogRecord, SerializedRecord } from "../record";
import { routeRecord } from "../router";
import { type Shape, shapeItems, shapeRecord, wasCut } from "../shape";
import type { StatsBatch } from "../stats";

type Entry = LogRecord | SerializedRecord;

const recordOf = (entry: Entry): LogRecord => ("line" in entry ? entry.record : entry);

/** Sink types that take only some records (Sentry: exceptions) say which, once per delivery. */
function takesBySink(records: readonly Entry[], config: ResolvedConfig): Map<string, (record: LogRecord) => boolean> {
  const takes = new Map<string, (record: LogRecord) => boolean>();
  for (const s of config.sinks) {
    if (s.definition.takes) takes.set(s.name, s.definition.takes(records.map(recordOf), s.options));
  }
  return takes;
}

/** Serializes a record for one sink: from the sink's own view when it differs, else the shared line. */
class LineMaker {
  private readonly serializer = new RecordSerializer();
  // A sink with its own view of the records (unredacted) gets them from that view, serialized once per view.
  private readonly viewSerializers = new Map<readonly LogRecord[], RecordSerializer>();
  /** The shared line of record `baseIndex`, made when a sink first needs it; `raw`, before the size limits. */
  private base: SerializedRecord | undefined;
  private baseIndex = -1;
  private raw: SerializedRecord | undefined;
  private rawIndex = -1;
  /** Record `shapedIndex` shaped, per view and shape; null where the shape changed nothing. */
  private readonly shaped = new Map<string, SerializedRecord | null>();
  private shapedIndex = -1;
  private readonly shapes: ReadonlyMap<string, Shape>;

  constructor(
    private readonly config: ResolvedConfig,
    private readonly views: ReadonlyMap<string, readonly LogRecord[]> | undefined,
    shape: boolean,
  ) {
    const shapes = new Map<string, Shape>();
    if (shape) for (const s of config.sinks) if (s.shape) shapes.set(s.name, s.shape);
    this.shapes = shapes;
  }

  lineFor(name: string, entry: Entry, record: LogRecord, i: number): SerializedRecord {
    const shape = this.shapes.get(name);
    if (shape === undefined) return this.unshapedLine(name, entry, record, i);
    if (this.shapedIndex !== i) {
      this.shaped.clear();
      this.shapedIndex = i;
    }
    const view = this.views?.get(name);
    const source = view?.[i] ?? record;
    const key = `${source === record ? "" : name}|${shape.key}`;
    let item = this.shaped.get(key);
    if (item === undefined) {
      const limits = this.config.limits;
      // The record's own line, if the shape only adds to it; before shaping, if a retry message needs it.
      const own = () => this.rawLine(name, entry, record, i);
      const before = () => limitSerialized(own(), limits);
      item = shapeRecord(source, shape, limits, before, own);
      this.shaped.set(key, item);
    }
    return item ?? this.unshapedLine(name, entry, record, i);
  }

  /** The line of the record as this sink's view has it, before the size limits. */
  private rawLine(name: string, entry: Entry, record: LogRecord, i: number): SerializedRecord {
    const view = this.views?.get(name);
    if (view && view[i] !== undefined && view[i] !== record) {
      let vs = this.viewSerializers.get(view);
      if (!vs) {
        vs = new RecordSerializer();
        this.viewSerializers.set(view, vs);
      }
      return vs.serialize(view[i] as LogRecord);
    }
    if (this.raw === undefined || this.rawIndex !== i) {
      this.raw = "line" in entry ? entry : this.serializer.serialize(record);
      this.rawIndex = i;
    }
    return this.raw;
  }

  private unshapedLine(name: string, entry: Entry, record: LogRecord, i: number): SerializedRecord {
    const view = this.views?.get(name);
    if (view && view[i] !== undefined && view[i] !== record) {
      return limitSerialized(this.rawLine(name, entry, record, i), this.config.limits);
    }
    if (this.base === undefined || this.baseIndex !== i) {
      // Size limits apply after routing (which reads no field they cut) and before any sink or queue.
      this.base = limitSerialized(this.rawLine(name, entry, record, i), this.config.limits);
      this.baseIndex = i;
    }
    return this.base;
  }

  /** The line record `i` was given to the dashboard: the shared one if made, else the one it came with. */
  sharedLine(entry: Entry, i: number): string | null {
    if (this.base !== undefined && this.baseIndex === i) return this.base.line;
    return "line" in entry ? entry.line : null;
  }
}

/**
 * Routes records to sinks and serializes each routed record exactly once
 * (once per distinct shape). Counts `received`, `droppedFilter`,
 * `droppedSample` and `truncated` per sink, and keeps the dashboard's latest
 * records, when given a stats batch. `shape: false` leaves the records
 * unshaped, for the buffered queue, whose consumer shapes them when it
 * routes them again. `unrouted`, when given, gets per sink how many of the
 * records no sink took were dropped by sampling alone (buffered mode carries
 * those counts in its work messages).
 */
export function planDelivery(
  records: readonly Entry[],
  config: ResolvedConfig,
  env: Record<string, unknown>,
  stats?: StatsBatch,
  views?: ReadonlyMap<string, readonly LogRecord[]>,
  shape = true,
  unrouted?: SampledCounts,
): SinkTarget[] {
  const perSink = new Map<string, SerializedRecord[]>();
  for (const s of config.sinks) perSink.set(s.name, []);
  const lines = new LineMaker(config, views, shape);
  const keep = stats && config.delivery.stats !== null ? config.delivery.recent : 0;
  const takes = takesBySink(records, config);
  // Sinks sampling dropped the current record from, and the count per sink.
  const sampledOut: string[] = [];
  const sampled = new Map<string, number>();
  for (let i = 0; i < records.length; i++) {
    const entry = records[i] as Entry;
    const record = recordOf(entry);
    const routed = routeRecord(record, config.table, stats || unrouted ? sampledOut : undefined);
    if (sampledOut.length > 0) {
      for (const name of sampledOut) {
        sampled.set(name, (sampled.get(name) ?? 0) + 1);
        if (unrouted && routed.length === 0) unrouted[name] = (unrouted[name] ?? 0) + 1;
      }
      sampledOut.length = 0;
    }
    const names = takes.size === 0 ? routed : routed.filter((name) => takes.get(name)?.(record) ?? true);
    for (const name of names) {
      const item = lines.lineFor(name, entry, record, i);
      perSink.get(name)?.push(item);
      if (stats && wasCut(item)) stats.add(name, "truncated", 1);
    }
    if (keep > 0) stats?.see(record, lines.sharedLine(entry, i), names, keep);
  }
  return targetsOf(perSink, sampled, records.length, config, env, stats);
}

/** One target per sink with records, created for this delivery; counts what each received and what it did not. */
function targetsOf(
  perSink: ReadonlyMap<string, SerializedRecord[]>,
  sampled: ReadonlyMap<string, number>,
  total: number,
  config: ResolvedConfig,
  env: Record<string, unknown>,
  stats: StatsBatch | undefined,
): SinkTarget[] {
  const targets: SinkTarget[] = [];
  for (const s of config.sinks) {
    const items = perSink.get(s.name) ?? [];
    if (stats) {
      const dropped = sampled.get(s.name) ?? 0;
      stats.add(s.name, "received", items.length);
      stats.add(s.name, "droppedFilter", total - items.length - dropped);
      if (dropped > 0) stats.add(s.name, "droppedSample", dropped);
    }
    if (items.length === 0) continue;
    targets.push({ name: s.name, sink: s.definition.create(s.options, { name: s.name, env }), batch: s.batch, items });
  }
  return targets;
}

/** Per sink, how many of the records no sink took were dropped by sampling alone (buffered mode carries the counts). */
export type SampledCounts = Record<string, number>;

/** Adds sampled counts into `into` (which is created when needed). */
export function addSampled(
  into: SampledCounts | undefined,
  more: SampledCounts | undefined,
): SampledCounts | undefined {
  // A queue message's header is read back as JSON: anything but counts is left out.
  if (more === null || typeof more !== "object") return into;
  const out = into ?? {};
  for (const [name, n] of Object.entries(more)) {
    if (typeof n === "number" && Number.isSafeInteger(n) && n > 0) out[name] = (out[name] ?? 0) + n;
  }
  return out;
}

/** Bytes of a work message's header the sampled counts may take; beyond it they are left out (then `droppedFilter`). */
const SAMPLED_ROOM = 160;

/** The sampled counts as a work message header field, or nothing when there are none or they do not fit. */
export function sampledField(sampled: SampledCounts | undefined): { sampled?: SampledCounts } {
  if (!sampled) return {};
  return JSON.stringify(sampled).length <= SAMPLED_ROOM ? { sampled } : {};
}

/** Counts records that no sink took, for every sink: `droppedSample` what sampling alone dropped, the rest `droppedFilter`. */
export function countUnrouted(
  stats: StatsBatch,
  config: ResolvedConfig,
  unrouted: number,
  sampled: SampledCounts | undefined,
): void {
  for (const s of config.sinks) {
    const n = Math.min(sampled?.[s.name] ?? 0, unrouted);
    stats.add(s.name, "droppedFilter", unrouted - n);
    if (n > 0) stats.add(s.name, "droppedSample", n);
  }
}

/**
 * A target for one sink by name (a queued retry, whose records come back
 * unshaped and are shaped again here), or null when that sink is no longer
 * configured.
 */
export function targetFor(
  config: ResolvedConfig,
  env: Record<string, unknown>,
  name: string,
  items: SerializedRecord[],
): SinkTarget | null {
  const s = config.sinks.find((x) => x.name === name);
  if (!s) return null;
  const shaped = shapeItems(items, s.shape, config.limits);
  return { name, sink: s.definition.create(s.options, { name, env }), batch: s.batch, items: shaped };
}
