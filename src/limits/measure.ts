/** Measuring JSON without writing it, and cutting a string to a byte and length budget with a visible marker. */

import type { Json } from "../record";
import { utf8Length } from "../text";

export const MARK = "…[truncated ";

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

export function jsonBytes(s: string): number {
  if (PLAIN_ASCII.test(s)) return s.length + 2;
  if (s.length > 128) return utf8Length(JSON.stringify(s));
  let n = 2;
  for (let i = 0; i < s.length; i++) n += widthAt(s, i);
  return n;
}

export interface Cut {
  /** Content bytes removed so far. */
  bytes: number;
  /** Sizes of the JSON of containers, measured once. */
  readonly sizes: Map<object, number>;
}

/** UTF-8 bytes of a plain JSON value as JSON.stringify writes it. */
export function measure(value: Json, cut: Cut): number {
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
export function sizeOfAny(value: unknown): number {
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
export function cutString(s: string, maxJsonBytes: number, maxUnits: number, cut: Cut): string {
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
