import type { Json, LogRecord, SerializedRecord } from "./record";

/** How deep a nested value is copied before it is replaced by a marker. */
export const MAX_DEPTH = 16;

/**
 * Copies any value into plain JSON: cycles, BigInts, Dates, functions, getters
 * that throw and runtime objects all become something `JSON.stringify` takes.
 * Never throws.
 */
export function toJson(value: unknown, depth = 0, seen?: Set<object>): Json {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? value : String(value);
    case "bigint":
      return value.toString();
    case "undefined":
    case "function":
    case "symbol":
      return null;
  }
  if (value === null) return null;
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
      out[key] = toJson(v, depth + 1, visited);
    }
    return out;
  } catch {
    return "[Unserializable]";
  } finally {
    visited.delete(obj);
  }
}

/** UTF-8 byte length of a JS string, without encoding it. */
export function utf8Length(s: string): number {
  let bytes = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        // A surrogate pair: 4 bytes for 2 UTF-16 units.
        bytes += 2;
        i++;
      } else bytes += 2;
    } else bytes += 2;
  }
  return bytes;
}

/** Serializes a record once; the line is then shared by every sink and format. */
export function serializeRecord(record: LogRecord): SerializedRecord {
  let line: string;
  try {
    line = JSON.stringify(record);
  } catch {
    // Records are built from JSON values, so this is a last line of defence.
    line = JSON.stringify(toJson(record));
  }
  return { record, line, bytes: utf8Length(line) };
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
