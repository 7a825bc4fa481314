/**
 * Size guards: a record too large for a log backend is cut, visibly, instead
 * of being refused somewhere downstream. `limitSerialized` is the hot-path
 * entry point (it costs a length comparison for an ordinary record);
 * `limitRecord` does the same for a bare record. See limits.md.
 */
import * as v from "valibot";
import { readVar } from "./env";
import { type ConfigError, issuesToErrors, typeName } from "./issues";
import { MAX_DEPTH, utf8Length } from "./json";
import { CONTEXT_KEYS, type Json, type LogRecord, type SerializedRecord } from "./record";

export interface LimitsConfig {
  /** Largest record line, in UTF-8 bytes of its JSON. */
  maxRecordBytes: number;
  /** Longest `message`, in UTF-16 code units (JavaScript string length), marker included. */
  maxMessageChars: number;
  /** Nesting depth of a cut record's JSON fields (`args`, `data`, `event`, ...); the field itself is level 0. */
  maxDepth: number;
  /** Most elements of any array in a cut record's JSON fields, marker included. */
  maxArrayItems: number;
}

export const DEFAULT_LIMITS: Readonly<LimitsConfig> = Object.freeze({
  maxRecordBytes: 64 * 1024,
  maxMessageChars: 16 * 1024,
  maxDepth: MAX_DEPTH,
  maxArrayItems: 1000,
});

/** The marks a cut record carries (to be declared on RecordBase in record.ts). */
export interface LimitMarks {
  /** tailfan cut this record to fit LIMITS; absent when nothing was cut. */
  limited?: true;
  /** The top-level fields that were cut, in record order. */
  limitedFields?: string[];
}

export type LimitedRecord = LogRecord & LimitMarks;

export interface LimitResult {
  record: LogRecord;
  /** Whether anything was cut (then `record` is a new object marked `limited: true`). */
  truncated: boolean;
  /** UTF-8 bytes of content removed (strings' cut tails, dropped elements and keys, deep values); markers not deducted. */
  cutBytes: number;
}

/** Whether tailfan cut this record (now or before it was queued). */
export function isLimited(record: LogRecord): boolean {
  return (record as LimitedRecord).limited === true;
}

// ---------------------------------------------------------------------------
// Config

const D = DEFAULT_LIMITS;

const int = (min: number, max: number, unit: string) =>
  v.pipe(
    v.number(),
    v.integer("must be a whole number"),
    v.minValue(min, `must be at least ${min} ${unit}`),
    v.maxValue(max, `must be at most ${max} ${unit}`),
  );

const limitsSchema = v.strictObject({
  maxRecordBytes: v.optional(int(1024, 1024 * 1024, "bytes"), D.maxRecordBytes),
  maxMessageChars: v.optional(int(64, 1024 * 1024, "characters"), D.maxMessageChars),
  maxDepth: v.optional(
    int(2, MAX_DEPTH, `levels (nested values are already copied at most ${MAX_DEPTH} levels deep)`),
    D.maxDepth,
  ),
  maxArrayItems: v.optional(int(10, 100_000, "items"), D.maxArrayItems),
});

const KNOWN = Object.keys(limitsSchema.entries);

/**
 * Reads LIMITS: a TOML table in `[vars]` (the runtime hands an object) or
 * the same as a JSON string. Unset or empty gives the defaults. With errors,
 * `config` is the defaults.
 */
export function parseLimitsConfig(raw: unknown, variable: string): { config: LimitsConfig; errors: ConfigError[] } {
  const read = readVar(
    raw,
    variable,
    'write a table like { maxRecordBytes = 131072 } in [vars], or the same as JSON: {"maxRecordBytes":131072}',
  );
  if (!read.ok) return { config: { ...D }, errors: [read.error] };
  const value = read.value;
  if (value === undefined) return { config: { ...D }, errors: [] };
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { config: { ...D }, errors: [{ variable, path: "", message: `expected a table, got ${typeName(value)}` }] };
  }
  const parsed = v.safeParse(limitsSchema, value, { abortPipeEarly: true });
  if (!parsed.success) {
    return {
      config: { ...D },
      errors: issuesToErrors(variable, "", parsed.issues, KNOWN),
    };
  }
  return { config: parsed.output, errors: [] };
}

// ---------------------------------------------------------------------------
// Which fields may be cut

/**
 * Never cut: the context (what a record is found and grouped by) and the
 * small fields that identify and classify it. Everything else (message,
 * stack, args, errors, event, data, tailAttributes, preview, extra,
 * exceptionName, channel, and any field a later version adds) may be.
 */
const PROTECTED = new Set<string>([
  ...CONTEXT_KEYS,
  "id",
  "type",
  "timestamp",
  "level",
  "logLevel",
  "logCount",
  "exceptionCount",
  "diagnosticCount",
]);

// ---------------------------------------------------------------------------
// Measuring and cutting

const MARK = "…[truncated ";

/** JSON-escaped UTF-8 width of the code unit at `i` (a surrogate pair counts at its first unit, 0 at its second). */
function widthAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c < 0x80) {
    if (c === 0x22 || c === 0x5c) return 2;
    if (c < 0x20) return c === 8 || c === 9 || c === 10 || c === 12 || c === 13 ? 2 : 6;
    return 1;
  }
  if (c < 0x800) return 2;
  if (c >= 0xd800 && c <= 0xdbff) {
    const next = s.charCodeAt(i + 1);
    return next >= 0xdc00 && next <= 0xdfff ? 4 : 6; // a lone surrogate is written as \udXXX
  }
  if (c >= 0xdc00 && c <= 0xdfff) {
    const prev = s.charCodeAt(i - 1);
    return prev >= 0xd800 && prev <= 0xdbff ? 0 : 6;
  }
  return 3;
}

/** UTF-8 bytes of a string's JSON, quotes included. Short strings (keys, most values) are counted in place. */
const PLAIN_ASCII = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function jsonBytes(s: string): number {
  if (PLAIN_ASCII.test(s)) return s.length + 2;
  if (s.length > 128) return utf8Length(JSON.stringify(s));
  let n = 2;
  for (let i = 0; i < s.length; i++) n += widthAt(s, i);
  return n;
}

interface Cut {
  /** Content bytes removed so far. */
  bytes: number;
  /** Sizes of the JSON of containers, measured once. */
  readonly sizes: Map<object, number>;
}

/** UTF-8 bytes of a plain JSON value as JSON.stringify writes it. */
function measure(value: Json, cut: Cut): number {
  switch (typeof value) {
    case "string":
      return jsonBytes(value);
    case "number":
      return String(value).length;
    case "boolean":
      return value ? 4 : 5;
  }
  if (value === null) return 4;
  const known = cut.sizes.get(value);
  if (known !== undefined) return known;
  let size = 2;
  let count = 0;
  if (Array.isArray(value)) {
    for (const item of value) {
      size += measure(item, cut);
      count++;
    }
  } else {
    for (const key of Object.keys(value)) {
      size += jsonBytes(key) + 1 + measure(value[key] as Json, cut);
      count++;
    }
  }
  if (count > 1) size += count - 1;
  cut.sizes.set(value, size);
  return size;
}

/** Bytes of any value's JSON, for what is dropped whole. */
function sizeOfAny(value: unknown): number {
  try {
    const s = JSON.stringify(value);
    return s === undefined ? 0 : utf8Length(s);
  } catch {
    return 0;
  }
}

/**
 * End of the longest prefix of `s` whose JSON-escaped UTF-8 form takes at
 * most `maxBytes` and that has at most `maxUnits` code units. A surrogate
 * pair is kept or dropped whole, so no lone surrogate is made.
 */
function prefixEnd(s: string, maxBytes: number, maxUnits: number): number {
  const stop = Math.min(s.length, maxUnits);
  let bytes = 0;
  let i = 0;
  while (i < stop) {
    const width = widthAt(s, i);
    const units = width === 4 ? 2 : 1;
    if (bytes + width > maxBytes || i + units > stop) break;
    bytes += width;
    i += units;
  }
  return i;
}

/**
 * Cuts a string so that its JSON takes at most `maxJsonBytes` and it has at
 * most `maxUnits` code units, both counting the marker
 * `…[truncated N bytes]` (N: UTF-8 bytes removed).
 */
function cutString(s: string, maxJsonBytes: number, maxUnits: number, cut: Cut): string {
  if (s.length <= maxUnits && (maxJsonBytes >= s.length * 6 + 2 || jsonBytes(s) <= maxJsonBytes)) return s;
  const total = utf8Length(s);
  // The marker's length with the most digits N can have; "…" is 1 unit, 3 bytes.
  const markerUnits = MARK.length + String(total).length + " bytes]".length;
  const end = prefixEnd(s, maxJsonBytes - 2 - (markerUnits + 2), maxUnits - markerUnits);
  const kept = s.slice(0, end);
  const removed = total - utf8Length(kept);
  cut.bytes += removed;
  return `${kept}${MARK}${removed} bytes]`;
}

/**
 * The largest share `cap` such that giving each item `min(size, cap)` fits
 * `budget`: small items are kept whole, the biggest are cut first and to
 * the same size. Infinity when everything fits.
 */
function waterLevel(sizes: readonly number[], budget: number): number {
  let total = 0;
  for (const s of sizes) total += s;
  if (total <= budget) return Number.POSITIVE_INFINITY;
  const sorted = [...sizes].sort((a, b) => a - b);
  let remaining = budget;
  for (let i = 0; i < sorted.length; i++) {
    const share = remaining / (sorted.length - i);
    const s = sorted[i] as number;
    if (s > share) return Math.max(0, Math.floor(share));
    remaining -= s;
  }
  return Number.POSITIVE_INFINITY;
}

/** Room each kept element or value is promised: enough for a marker in its place. */
const MIN_KEEP = 40;

function keyMarker(dropped: number): string {
  return `${MARK}${dropped} keys]`;
}
function itemMarker(dropped: number): string {
  return `${MARK}${dropped} items]`;
}

/** Sets a key, even `__proto__`, as an own data property. */
function put(out: { [key: string]: Json }, key: string, value: Json): void {
  if (key === "__proto__")
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else out[key] = value;
}

/** Cuts a plain JSON value to at most `budget` bytes of JSON, keeping its type (strings, arrays, objects). */
function shrink(value: Json, budget: number, cut: Cut): Json {
  const size = measure(value, cut);
  if (size <= budget) return value;
  if (typeof value === "string") return cutString(value, budget, Number.POSITIVE_INFINITY, cut);
  if (value === null || typeof value !== "object") return value;
  return Array.isArray(value) ? shrinkArray(value, budget, cut) : shrinkObject(value, budget, cut);
}

function shrinkArray(items: Json[], budget: number, cut: Cut): Json[] {
  const n = items.length;
  const sizes = items.map((x) => measure(x, cut));
  // The longest prefix that fits with MIN_KEEP (or less, if smaller) per element and the marker.
  const markerRoom = 1 + jsonBytes(itemMarker(n));
  let keep = 0;
  let floor = 2;
  for (let k = 1; k <= n; k++) {
    floor += (k > 1 ? 1 : 0) + Math.min(sizes[k - 1] as number, MIN_KEEP);
    if (floor + (k < n ? markerRoom : 0) > budget) break;
    keep = k;
  }
  const overhead = 2 + Math.max(0, keep - 1) + (keep < n ? markerRoom : 0);
  const cap = waterLevel(sizes.slice(0, keep), budget - overhead);
  const out: Json[] = [];
  for (let i = 0; i < keep; i++) {
    const item = items[i] as Json;
    out.push((sizes[i] as number) <= cap ? item : shrink(item, cap, cut));
  }
  if (keep < n) {
    for (let i = keep; i < n; i++) cut.bytes += (sizes[i] as number) + 1;
    out.push(itemMarker(n - keep));
  }
  return out;
}

function shrinkObject(obj: { [key: string]: Json }, budget: number, cut: Cut): { [key: string]: Json } {
  const keys = Object.keys(obj);
  const n = keys.length;
  const keyBytes = keys.map((k) => jsonBytes(k) + 1);
  const sizes = keys.map((k) => measure(obj[k] as Json, cut));
  const markerRoom = 1 + jsonBytes("…") + 1 + jsonBytes(keyMarker(n));
  let keep = 0;
  let floor = 2;
  for (let k = 1; k <= n; k++) {
    floor += (k > 1 ? 1 : 0) + (keyBytes[k - 1] as number) + Math.min(sizes[k - 1] as number, MIN_KEEP);
    if (floor + (k < n ? markerRoom : 0) > budget) break;
    keep = k;
  }
  let overhead = 2 + Math.max(0, keep - 1) + (keep < n ? markerRoom : 0);
  for (let i = 0; i < keep; i++) overhead += keyBytes[i] as number;
  const cap = waterLevel(sizes.slice(0, keep), budget - overhead);
  const out: { [key: string]: Json } = {};
  for (let i = 0; i < keep; i++) {
    const key = keys[i] as string;
    const value = obj[key] as Json;
    put(out, key, (sizes[i] as number) <= cap ? value : shrink(value, cap, cut));
  }
  if (keep < n) {
    for (let i = keep; i < n; i++) cut.bytes += (keyBytes[i] as number) + (sizes[i] as number) + 1;
    if (!Object.hasOwn(out, "…")) put(out, "…", keyMarker(n - keep));
  }
  return out;
}

interface ShapeState {
  readonly maxDepth: number;
  readonly maxArrayItems: number;
  changed: boolean;
  cut: Cut;
}

function isPlainObject(obj: object): boolean {
  const proto = Object.getPrototypeOf(obj);
  return proto === Object.prototype || proto === null;
}

/**
 * Plain JSON as JSON.stringify sees a value (toJSON applied, undefined and
 * functions left out of objects, null in arrays), with containers at depth
 * `maxDepth` replaced by "[MaxDepth]" and arrays shortened to
 * `maxArrayItems` elements, the last one a marker. What is already plain
 * and within the limits is returned as it is, not copied.
 */
function shape(value: unknown, depth: number, st: ShapeState): Json | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? value : null;
    case "bigint":
      return value.toString();
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
  }
  if (value === null) return null;
  let obj = value as object;
  try {
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") {
      const replaced: unknown = toJSON.call(obj);
      if (replaced === null || typeof replaced !== "object") return shape(replaced, depth, st);
      obj = replaced;
    }
    if (depth >= st.maxDepth) {
      st.changed = true;
      st.cut.bytes += sizeOfAny(obj);
      return "[MaxDepth]";
    }
    if (Array.isArray(obj)) {
      let n = obj.length;
      let out: Json[] | null = null;
      if (n > st.maxArrayItems) {
        st.changed = true;
        n = st.maxArrayItems - 1;
        st.cut.bytes += sizeOfAny(obj.slice(n)) - 1;
        out = [];
      }
      for (let i = 0; i < n; i++) {
        const x: unknown = obj[i];
        const copy = shape(x, depth + 1, st) ?? null;
        if (out === null && copy !== x) out = (obj as Json[]).slice(0, i);
        out?.push(copy);
      }
      if (out === null) return obj as Json[];
      if (n < obj.length) out.push(itemMarker(obj.length - n));
      return out;
    }
    // Objects made by the runtime (event info with getters) are always copied.
    const keys = Object.keys(obj);
    let out: { [key: string]: Json } | null = isPlainObject(obj) ? null : {};
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      let x: unknown;
      let copy: Json | undefined;
      try {
        x = (obj as Record<string, unknown>)[key];
        copy = shape(x, depth + 1, st);
      } catch {
        copy = undefined;
      }
      if (out === null && (copy !== x || copy === undefined)) {
        out = {};
        for (let j = 0; j < i; j++) {
          const k = keys[j] as string;
          put(out, k, (obj as Record<string, Json>)[k] as Json);
        }
      }
      if (out !== null && copy !== undefined) put(out, key, copy);
    }
    return out ?? (obj as { [key: string]: Json });
  } catch {
    st.changed = true;
    return "[Unserializable]";
  }
}

/** A placeholder of the same type, for when even a cut value does not fit. */
function placeholder(value: Json, cut: Cut): Json {
  const size = measure(value, cut);
  if (typeof value === "string") {
    cut.bytes += utf8Length(value);
    return `${MARK}${utf8Length(value)} bytes]`;
  }
  if (value === null || typeof value !== "object") return value;
  cut.bytes += size;
  const marker = `${MARK}${size} bytes]`;
  return Array.isArray(value) ? [marker] : { "…": marker };
}

interface Built {
  record: LogRecord;
  line: string;
  bytes: number;
}

function build(keys: readonly string[], values: Map<string, unknown>, fields: string[]): Built {
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const x = values.get(key);
    if (x !== undefined) out[key] = x;
  }
  out.limited = true;
  out.limitedFields = fields;
  const line = JSON.stringify(out);
  return { record: out as unknown as LogRecord, line, bytes: utf8Length(line) };
}

/** Cuts a record known to be over a limit. `null`: nothing could be cut. */
function cutRecord(record: LogRecord, config: LimitsConfig): (Built & { cutBytes: number }) | null {
  const src = record as unknown as Record<string, unknown>;
  const prior = Array.isArray(src.limitedFields)
    ? (src.limitedFields as unknown[]).filter((f): f is string => typeof f === "string")
    : [];
  const keys = Object.keys(src).filter((k) => k !== "limited" && k !== "limitedFields");
  const values = new Map<string, unknown>();
  const cuttable: string[] = [];
  const shaped = new Map<string, Json>();
  const changed = new Set<string>();
  const base: Cut = { bytes: 0, sizes: new Map() };

  // 1. Always: the message's length, nesting depth, array lengths.
  for (const key of keys) {
    const x = src[key];
    if (PROTECTED.has(key)) {
      values.set(key, x);
      continue;
    }
    let copy: Json | undefined;
    if (typeof x === "string") {
      copy = key === "message" ? cutString(x, Number.POSITIVE_INFINITY, config.maxMessageChars, base) : x;
      if (copy !== x) changed.add(key);
    } else {
      const st: ShapeState = {
        maxDepth: config.maxDepth,
        maxArrayItems: config.maxArrayItems,
        changed: false,
        cut: base,
      };
      copy = shape(x, 0, st);
      if (st.changed) changed.add(key);
    }
    if (copy === undefined) continue;
    cuttable.push(key);
    shaped.set(key, copy);
    values.set(key, copy);
  }
  const fieldsOf = (set: Set<string>): string[] => {
    const out = keys.filter((k) => set.has(k) || prior.includes(k));
    for (const p of prior) if (!out.includes(p)) out.push(p);
    return out;
  };
  const max = config.maxRecordBytes;
  // Sizes are added up, not serialized: a field may be megabytes.
  const sizes = cuttable.map((k) => measure(shaped.get(k) as Json, base));
  const skeleton = new Map(values);
  for (const k of cuttable) skeleton.delete(k);
  let fields = 0;
  for (const k of cuttable) fields += jsonBytes(k) + 2;
  let total = build(keys, skeleton, fieldsOf(changed)).bytes + fields;
  for (const size of sizes) total += size;
  let built: Built;
  if (total <= max) {
    built = build(keys, values, fieldsOf(changed));
    if (built.bytes <= max) return changed.size > 0 ? { ...built, cutBytes: base.bytes } : null;
  }

  // 2. Over the byte limit: share what the fixed fields leave among the
  // cuttable ones, biggest cut first, to the same size.
  let budget = max - build(keys, skeleton, fieldsOf(new Set(cuttable))).bytes - fields;
  for (let attempt = 0; attempt < 4; attempt++) {
    const cut: Cut = { bytes: base.bytes, sizes: base.sizes };
    const level = waterLevel(sizes, budget);
    const now = new Set(changed);
    const next = new Map(values);
    cuttable.forEach((k, i) => {
      if ((sizes[i] as number) <= level) return;
      next.set(k, shrink(shaped.get(k) as Json, level, cut));
      now.add(k);
    });
    built = build(keys, next, fieldsOf(now));
    if (built.bytes <= max) return { ...built, cutBytes: cut.bytes };
    // Markers and promised minimums can overshoot a small budget: try again with less.
    budget -= built.bytes - max + 64;
  }

  // 3. Only placeholders: the context alone is (nearly) over the limit.
  const cut: Cut = { bytes: base.bytes, sizes: base.sizes };
  const next = new Map(values);
  for (const k of cuttable) next.set(k, placeholder(shaped.get(k) as Json, cut));
  built = build(keys, next, fieldsOf(new Set(cuttable)));
  return { ...built, cutBytes: cut.bytes };
}

// ---------------------------------------------------------------------------
// Entry points

function messageFits(record: LogRecord, config: LimitsConfig): boolean {
  const message = (record as { message?: unknown }).message;
  return typeof message !== "string" || message.length <= config.maxMessageChars;
}

/**
 * Returns the record itself when it fits every limit, else a new record
 * (the input is never changed) whose JSON is at most `maxRecordBytes`,
 * marked `limited: true` with `limitedFields`. Context fields are never cut,
 * so a record whose context alone is over the limit stays over it.
 */
export function limitRecord(record: LogRecord, config: LimitsConfig): LimitResult {
  if (messageFits(record, config)) {
    const line = JSON.stringify(record);
    if (line.length * 3 <= config.maxRecordBytes || utf8Length(line) <= config.maxRecordBytes) {
      return { record, truncated: false, cutBytes: 0 };
    }
  }
  const cut = cutRecord(record, config);
  return cut === null
    ? { record, truncated: false, cutBytes: 0 }
    : { record: cut.record, truncated: true, cutBytes: cut.cutBytes };
}

/**
 * The hot path, after serialization: the same item when it fits (decided by
 * the line's length alone for most records, by its measured size for the
 * rest), else a new item holding the cut record and its line.
 */
export function limitSerialized(item: SerializedRecord, config: LimitsConfig): SerializedRecord {
  const max = config.maxRecordBytes;
  const length = item.line.length;
  if (messageFits(item.record, config) && (length * 3 <= max || (length <= max && item.bytes <= max))) return item;
  const cut = cutRecord(item.record, config);
  return cut === null ? item : { record: cut.record, line: cut.line, bytes: cut.bytes };
}
