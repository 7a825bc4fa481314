/**
 * Careful reads of what the runtime (or a JSON capture) hands over: any
 * field may be missing, of another type, or a getter that throws.
 */

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null;
}
export function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}
export function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}
/**
 * Times every backend can store: from September 2001 to April 2262 (int64 nanoseconds end
 * in April 2262). Anything else from a malformed item is not a time.
 */
const MIN_TIME = 1_000_000_000_000;
const MAX_TIME = 9_223_372_036_854;
export function time(v: unknown): number | null {
  const t = num(v);
  return t !== null && t >= MIN_TIME && t <= MAX_TIME ? t : null;
}
/** A time as epoch ms, a Date or an ISO string. */
export function timeOf(v: unknown): number | undefined {
  let t: unknown = v;
  if (v instanceof Date) t = v.getTime();
  else if (typeof v === "string") t = Date.parse(v);
  return time(t) ?? undefined;
}
export function get(o: Obj, key: string): unknown {
  try {
    return o[key];
  } catch {
    return undefined;
  }
}
export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
export function bool(v: unknown): boolean | null {
  return typeof v === "boolean" ? v : null;
}

/** For each field of `to`: the key it is read from and how; a value the reader refuses (null) leaves it absent. */
export type FieldReads<T> = { [K in keyof T]?: [key: string, read: (v: unknown) => T[K] | null | undefined] };

/** Copies the fields `reads` names from `from` to `to`, in the order `reads` lists them. */
export function copyFields<T extends object>(to: T, from: Obj, reads: FieldReads<T>): void {
  for (const [field, [key, read]] of Object.entries(reads) as [keyof T & string, [string, (v: unknown) => unknown]][]) {
    const value = read(get(from, key));
    if (value !== null && value !== undefined) (to as Record<string, unknown>)[field] = value;
  }
}
