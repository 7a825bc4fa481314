import { CONTEXT_KEYS, type Json, type LogRecord, type RecordType, type SerializedRecord } from "./record";
import { utf8Length } from "./text";

/** How deep a nested value is copied before it is replaced by a marker. */
export const MAX_DEPTH = 16;

/**
 * Copies any value into plain JSON: cycles, BigInts, Dates, functions, getters
 * that throw and runtime objects all become something `JSON.stringify` takes.
 * Never throws.
 */
export function toJson(value: unknown, depth = 0, seen?: Set<object>): Json {
  if (value === null || typeof value !== "object") return primitiveJson(value) ?? null;
  const obj = value as object;
  if (obj instanceof Date) {
    const t = obj.getTime();
    return Number.isNaN(t) ? null : obj.toISOString();
  }
  if (depth >= MAX_DEPTH) return "[MaxDepth]";
  const visited = seen ?? new Set<object>();
  if (visited.has(obj)) return "[Circular]";
  visited.add(obj);
  try {
    if (Array.isArray(obj)) {
      const out: Json[] = new Array(obj.length);
      for (let i = 0; i < obj.length; i++) out[i] = toJson(obj[i], depth + 1, visited);
      return out;
    }
    if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) {
      return `[${obj.constructor.name} ${obj.byteLength} bytes]`;
    }
    const out: { [key: string]: Json } = {};
    for (const key of Object.keys(obj)) {
      let v: unknown;
      try {
        v = (obj as Record<string, unknown>)[key];
      } catch {
        continue;
      }
      if (v === undefined || typeof v === "function" || typeof v === "symbol") continue;
      setOwn(out, key, toJson(v, depth + 1, visited));
    }
    return out;
  } catch {
    return "[Unserializable]";
  } finally {
    visited.delete(obj);
  }
}

/**
 * A value that is not an object (or null) as tailfan writes it; undefined
 * for what JSON cannot hold at all (undefined, functions, symbols), which an
 * object leaves out and an array writes as null.
 */
export function primitiveJson(value: unknown): Json | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return jsonNumber(value);
    case "bigint":
      return value.toString();
    case "object":
      return null;
    default:
      return undefined;
  }
}

/** A number as tailfan writes it: NaN and the infinities, which JSON cannot hold, as their names ("NaN"), not null. */
export function jsonNumber(n: number): number | string {
  return Number.isFinite(n) ? n : String(n);
}

/** Sets an own property, even one named `__proto__` (which plain assignment would turn into a prototype). */
export function setOwn(out: { [key: string]: Json }, key: string, value: Json): void {
  if (key === "__proto__")
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else out[key] = value;
}

/**
 * Whether a value is already plain JSON (plain objects and arrays of
 * strings, finite numbers, booleans and null, not too deep), so it can be
 * kept by reference instead of copied. Never throws.
 */
export function isPlainJson(value: unknown, depth = 0): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object":
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth >= MAX_DEPTH) return false;
  try {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) if (!isPlainJson(value[i], depth + 1)) return false;
      return true;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return false;
    for (const key in value) {
      const v = (value as Record<string, unknown>)[key];
      // An undefined property is left out by JSON.stringify, as it would be by a copy.
      if (v !== undefined && !isPlainJson(v, depth + 1)) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/** Keeps plain JSON by reference and copies anything else into JSON. */
export function asJson(value: unknown): Json {
  return isPlainJson(value) ? (value as Json) : toJson(value);
}

/** Fields of each record type that are not context. */
export const OWN_KEYS: Record<RecordType, readonly string[]> = {
  invocation: [
    "id",
    "type",
    "timestamp",
    "level",
    "message",
    "event",
    "logCount",
    "exceptionCount",
    "diagnosticCount",
    "tailAttributes",
    "preview",
    "extra",
    "traceId",
    "spanId",
    "limited",
    "limitedFields",
  ],
  log: ["id", "type", "timestamp", "level", "message", "logLevel", "args", "errors", "limited", "limitedFields"],
  exception: ["id", "type", "timestamp", "level", "message", "exceptionName", "stack", "limited", "limitedFields"],
  diagnostic: [
    "id",
    "type",
    "timestamp",
    "level",
    "message",
    "channel",
    "data",
    "traceId",
    "spanId",
    "limited",
    "limitedFields",
  ],
  span: [
    "id",
    "type",
    "timestamp",
    "level",
    "message",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "startTime",
    "endTime",
    "durationMs",
    "spanOutcome",
    "statusCode",
    "statusMessage",
    "attributes",
    "limited",
    "limitedFields",
  ],
};

/** The span context of a streamed record; empty for records from tail(). */
function traceMarks(record: LogRecord): string {
  if (record.traceId === undefined) return "";
  return `,"traceId":${q(record.traceId)}${record.spanId === undefined ? "" : `,"spanId":${q(record.spanId)}`}`;
}

function pick(record: object, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const r = record as Record<string, unknown>;
  for (const key of keys) {
    const value = r[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

const q = JSON.stringify;

/** The marks LIMITS leaves on a record it cut. */
function limitMarks(record: LogRecord): string {
  return record.limited ? `,"limited":true,"limitedFields":${q(record.limitedFields ?? [])}` : "";
}

/**
 * The record's own fields as an unclosed JSON object. Log and exception
 * records, the most numerous, are written out by hand: a few string escapes
 * instead of building and walking an object per record.
 */
function head(record: LogRecord): string {
  const base = `{"id":${q(record.id)},"type":"${record.type}","timestamp":${q(record.timestamp)},"level":"${record.level}","message":${q(record.message)}`;
  switch (record.type) {
    case "log": {
      let out = `${base},"logLevel":${q(record.logLevel)}`;
      if (record.args !== undefined) out += `,"args":${q(record.args)}`;
      if (record.errors !== undefined) out += `,"errors":${q(record.errors)}`;
      return out + traceMarks(record) + limitMarks(record);
    }
    case "exception": {
      const out = `${base},"exceptionName":${q(record.exceptionName)}`;
      return (
        (record.stack === undefined ? out : `${out},"stack":${q(record.stack)}`) +
        traceMarks(record) +
        limitMarks(record)
      );
    }
    default:
      return q(pick(record, OWN_KEYS[record.type])).slice(0, -1);
  }
}

/**
 * Serializes records, once each. The invocation context, the same for every
 * record of an invocation, becomes JSON once per invocation and is spliced
 * into each of its lines, so a log line costs little more than its message.
 */
export class RecordSerializer {
  private readonly contexts = new Map<string, { of: LogRecord; json: string }>();

  serialize(record: LogRecord): SerializedRecord {
    let line: string;
    try {
      let context = this.contexts.get(record.invocationId);
      // Ids are hashes: make sure a cached context really is this invocation's.
      if (context === undefined || !sameInvocation(context.of, record)) {
        context = { of: record, json: JSON.stringify(pick(record, CONTEXT_KEYS)).slice(1, -1) };
        this.contexts.set(record.invocationId, context);
      }
      line = `${head(record)},${context.json}}`;
    } catch {
      // Records are built from JSON values, so this is a last line of defence.
      line = JSON.stringify(toJson(record));
    }
    return serialized(record, line);
  }
}

/**
 * A serialized record. Its exact UTF-8 size is measured only when asked:
 * most batches are far enough from their limits that the bounds
 * `line.length <= bytes <= 3 * line.length` decide. Build it with
 * `serialized`, the one constructor.
 */
class Serialized implements SerializedRecord {
  constructor(
    readonly record: LogRecord,
    readonly line: string,
    private size: number,
  ) {}
  get bytes(): number {
    if (this.size >= 0) return this.size;
    const size = utf8Length(this.line);
    if (!Object.isFrozen(this)) this.size = size;
    return size;
  }
}

/**
 * The one way to make a SerializedRecord: `line` must be the record's JSON;
 * `bytes`, its UTF-8 length, when already known, else measured on first use.
 * Pass the item itself along (a spread copy would lose the lazy `bytes`).
 */
export function serialized(record: LogRecord, line: string, bytes = -1): SerializedRecord {
  return new Serialized(record, line, bytes);
}

function sameInvocation(a: LogRecord, b: LogRecord): boolean {
  return (
    a.eventTimestamp === b.eventTimestamp &&
    a.scriptName === b.scriptName &&
    a.url === b.url &&
    a.outcome === b.outcome &&
    a.status === b.status &&
    a.durableObjectId === b.durableObjectId &&
    a.eventType === b.eventType
  );
}

/** Serializes one record on its own. */
export function serializeRecord(record: LogRecord): SerializedRecord {
  return new RecordSerializer().serialize(record);
}

/**
 * 53-bit string hash (cyrb53). Not cryptographic: used for stable ids and
 * deterministic sampling.
 */
export function hash53(str: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < str.length; i++) {
    const ch = str.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}
