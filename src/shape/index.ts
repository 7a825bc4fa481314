/**
 * Per-sink shaping: a sink's `fields` (keep only these dotted paths) or
 * `exclude` (drop these), then `rename` (`{ "from.path" = "to.path" }`), then
 * `add` (static fields), applied to the scrubbed record before the size
 * limits, so the limits measure what the sink sends. Read and compiled once
 * per isolate with the config (read.ts); applied once per record per
 * distinct shape (src/pipeline/plan.ts). docs/configuration.md (Shaping)
 * has the rules.
 */
import { serialized } from "../json";
import { isLimited, type LimitsConfig, limitSerialized } from "../limits";
import type { Json, LogRecord, SerializedRecord } from "../record";
import {
  dropTree,
  getPath,
  isObject,
  type JsonObject,
  type PathTree,
  pickTree,
  segmentsOf,
  setPath,
  treeOf,
} from "./paths";

export { readShape, SHAPE_KEYS, type ShapeSpec } from "./read";

import type { ShapeSpec } from "./read";

/** A compiled shape: `apply` gives the record itself when the shape changes nothing in it. */
export interface Shape {
  /** Equal for equal specs: sinks with the same key share one shaped line per record. */
  readonly key: string;
  readonly spec: ShapeSpec;
  apply(record: LogRecord): LogRecord;
  /** `fields` or `exclude`, then `rename`: the record itself when they change nothing in it. */
  strip(record: LogRecord): LogRecord;
  /** `add`, on a stripped record (copied first if it is the record itself). */
  finish(stripped: LogRecord, record: LogRecord): LogRecord;
  /**
   * The JSON that `add` appends when every added field is top level (`,"env":"prod"`), so an
   * unstripped record's line is its own line with this spliced in; "" without `add`, null when
   * an added field is nested.
   */
  readonly suffix: string | null;
}

/** The marks LIMITS leaves on a record: kept whatever `fields` says, so a cut record always says so. */
const MARKS = ["limited", "limitedFields"] as const;

const segs = (path: string) => segmentsOf(path) as string[];

/** Compiles a checked spec (read.ts refuses a bad one first). */
export function compileShape(spec: ShapeSpec): Shape {
  const rename = Object.entries(spec.rename ?? {}).map(([from, to]) => [segs(from), segs(to)] as const);
  const add = Object.entries(spec.add ?? {}).map(([path, value]) => [segs(path), value as Json] as const);
  // What fields keeps: the paths it lists, the rename sources (to be renamed) and the limit marks.
  const keep: PathTree | null = spec.fields
    ? treeOf([...spec.fields.map(segs), ...rename.map(([from]) => from), ...MARKS.map((m) => [m])])
    : null;
  const drop: PathTree | null = spec.exclude ? treeOf(spec.exclude.map(segs)) : null;
  const key = JSON.stringify([spec.fields ?? null, spec.exclude ?? null, spec.rename ?? null, spec.add ?? null]);
  const suffix = add.every(([path]) => path.length === 1)
    ? add.map(([[name], value]) => `,${JSON.stringify(name)}:${JSON.stringify(value)}`).join("")
    : null;
  const strip = (record: LogRecord): LogRecord => {
    const source = record as unknown as JsonObject;
    let out = keep ? pickTree(source, keep) : drop ? dropTree(source, drop) : source;
    for (const [from, to] of rename) {
      const value = getPath(out, from);
      if (value === undefined) continue;
      if (out === source) out = { ...source };
      setPath(out, from, undefined);
      setPath(out, to, value);
    }
    return out as unknown as LogRecord;
  };
  const finish = (stripped: LogRecord, record: LogRecord): LogRecord => {
    if (add.length === 0) return stripped;
    const out = (stripped === record ? { ...stripped } : stripped) as unknown as JsonObject;
    for (const [path, value] of add) setPath(out, path, value);
    return out as unknown as LogRecord;
  };
  return { key, spec, suffix, strip, finish, apply: (record) => finish(strip(record), record) };
}

/**
 * A record's line as shaped for a sink. `record` stays the record before
 * shaping: what sinks read to key, time-stamp and label a record (its id,
 * timestamp, level, script) whatever the shape kept. Retry messages carry
 * the `unshaped` line, so queue() shapes it again with the config it runs.
 */
class ShapedRecord implements SerializedRecord {
  private before: SerializedRecord | undefined;
  constructor(
    readonly record: LogRecord,
    private readonly inner: SerializedRecord,
    private readonly unshapedLine: () => SerializedRecord,
  ) {}
  get line(): string {
    return this.inner.line;
  }
  get bytes(): number {
    return this.inner.bytes;
  }
  /** The size limits cut the shaped record. */
  get limited(): boolean {
    return isLimited(this.inner.record);
  }
  unshaped(): SerializedRecord {
    this.before ??= this.unshapedLine();
    return this.before;
  }
}

/**
 * `record` shaped and cut to the size limits; `unshaped` gives the record's
 * own line when asked (for a retry message). Null when the shape changes
 * nothing in this record: the sink takes the record's own line. `own`, the
 * record's own line before the limits, lets a record that only gains
 * top-level fields be written as that line with them spliced in instead of
 * serialized again.
 */
export function shapeRecord(
  record: LogRecord,
  shape: Shape,
  limits: LimitsConfig,
  unshaped: () => SerializedRecord,
  own?: () => SerializedRecord,
): SerializedRecord | null {
  const stripped = shape.strip(record);
  if (stripped === record && shape.suffix === "") return null;
  if (stripped === record && shape.suffix !== null && own) {
    // Only top-level fields added: the record's own line with them spliced in. The shaped record
    // itself is built only if the size limits must cut it (the added fields change neither its
    // message nor its marks, so the record itself answers for those).
    const base = own().line;
    const spliced = serialized(record, `${base.slice(0, -1)}${shape.suffix}}`);
    if (limitSerialized(spliced, limits) === spliced) return new ShapedRecord(record, spliced, unshaped);
  }
  const shaped = shape.finish(stripped, record);
  let line: string;
  try {
    line = JSON.stringify(shaped);
  } catch {
    return null;
  }
  return new ShapedRecord(record, limitSerialized(serialized(shaped, line), limits), unshaped);
}

/** The line a retry message carries for an item: the record before shaping. */
export function queuedLine(item: SerializedRecord): SerializedRecord {
  return item instanceof ShapedRecord ? item.unshaped() : item;
}

/** Whether the size limits cut this item (its shaped record, for a shaped one). */
export function wasCut(item: SerializedRecord): boolean {
  return item instanceof ShapedRecord ? item.limited || isLimited(item.record) : isLimited(item.record);
}

/** Items read back from a queue message, shaped for their sink again. */
export function shapeItems(
  items: readonly SerializedRecord[],
  shape: Shape | undefined,
  limits: LimitsConfig,
): SerializedRecord[] {
  if (!shape) return [...items];
  return items.map(
    (item) =>
      shapeRecord(
        item.record,
        shape,
        limits,
        () => item,
        () => item,
      ) ?? item,
  );
}

/** One line for the dashboard and /config/check: what the shape does, in order. */
export function describeShape(spec: ShapeSpec): string {
  const parts: string[] = [];
  if (spec.fields) parts.push(`keep ${spec.fields.join(", ")}`);
  if (spec.exclude) parts.push(`drop ${spec.exclude.join(", ")}`);
  const rename = Object.entries(spec.rename ?? {});
  if (rename.length > 0) parts.push(`rename ${rename.map(([a, b]) => `${a} → ${b}`).join(", ")}`);
  const add = Object.entries(spec.add ?? {});
  if (add.length > 0) parts.push(`add ${add.map(([k, x]) => `${k}=${JSON.stringify(x)}`).join(", ")}`);
  return parts.join("; ");
}

export { isObject };
