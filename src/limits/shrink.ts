/**
 * Shrinking a plain JSON value to a byte budget, keeping its type: the
 * biggest parts are cut first and to the same size, dropped elements and
 * keys leave a marker saying how many went.
 */
import { setOwn } from "../json";
import type { Json } from "../record";
import { utf8Length } from "../text";
import { type Cut, cutString, jsonBytes, MARK, measure } from "./measure";

/**
 * The largest share `cap` such that giving each item `min(size, cap)` fits
 * `budget`: small items are kept whole, the biggest are cut first and to
 * the same size. Infinity when everything fits.
 */
export function waterLevel(sizes: readonly number[], budget: number): number {
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
export function itemMarker(dropped: number): string {
  return `${MARK}${dropped} items]`;
}

/** Cuts a plain JSON value to at most `budget` bytes of JSON, keeping its type (strings, arrays, objects). */
export function shrink(value: Json, budget: number, cut: Cut): Json {
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
    setOwn(out, key, (sizes[i] as number) <= cap ? value : shrink(value, cap, cut));
  }
  if (keep < n) {
    for (let i = keep; i < n; i++) cut.bytes += (keyBytes[i] as number) + (sizes[i] as number) + 1;
    if (!Object.hasOwn(out, "…")) setOwn(out, "…", keyMarker(n - keep));
  }
  return out;
}

/** A placeholder of the same type, for when even a cut value does not fit. */
export function placeholder(value: Json, cut: Cut): Json {
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
