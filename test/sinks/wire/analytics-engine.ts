/**
 * Workers Analytics Engine data points, checked against the documented
 * limits (https://developers.cloudflare.com/analytics/analytics-engine/limits/)
 * and the shape `writeDataPoint` takes
 * (https://developers.cloudflare.com/analytics/analytics-engine/get-started/#4-write-data-from-your-worker).
 *
 * The binding is not HTTP: `body` is the JSON of what the sink hands to
 * `writeDataPoint` in one send, an array of data points (or one data point).
 */

/** "Analytics Engine will accept up to twenty blobs, twenty doubles, and one index per call to writeDataPoint." */
const MAX_BLOBS = 20;
const MAX_DOUBLES = 20;
const MAX_INDEXES = 1;
/** "The total size of all blobs in a request must not exceed 16 KB" (per data point); 16 000 is the safer reading. */
const MAX_BLOB_BYTES_TOTAL = 16_000;
/** "Each index must not be more than 96 bytes." */
const MAX_INDEX_BYTES = 96;
/** "You can write a maximum of 250 data points per Worker invocation." */
const MAX_POINTS_PER_INVOCATION = 250;

const FIELDS = new Set(["blobs", "doubles", "indexes"]);

const utf8 = (s: string) => new TextEncoder().encode(s).byteLength;

/** Problems with one data point; empty when `writeDataPoint` takes it within the limits. */
export function validateDataPoint(point: unknown, at = "point"): string[] {
  const problems: string[] = [];
  if (typeof point !== "object" || point === null || Array.isArray(point)) return [`${at}: not an object`];
  const p = point as Record<string, unknown>;
  for (const key of Object.keys(p)) if (!FIELDS.has(key)) problems.push(`${at}.${key}: not a data point field`);

  if (p.blobs !== undefined) {
    if (!Array.isArray(p.blobs)) problems.push(`${at}.blobs: not an array`);
    else {
      if (p.blobs.length > MAX_BLOBS) problems.push(`${at}.blobs: ${p.blobs.length} blobs, at most ${MAX_BLOBS}`);
      let total = 0;
      p.blobs.forEach((b, i) => {
        // Blobs are strings, ArrayBuffers or null; JSON carries strings and null.
        if (typeof b === "string") total += utf8(b);
        else if (b instanceof ArrayBuffer) total += b.byteLength;
        else if (b !== null) problems.push(`${at}.blobs[${i}]: not a string, ArrayBuffer or null`);
      });
      if (total > MAX_BLOB_BYTES_TOTAL) {
        problems.push(`${at}.blobs: ${total} bytes in all, at most ${MAX_BLOB_BYTES_TOTAL}`);
      }
    }
  }

  if (p.doubles !== undefined) {
    if (!Array.isArray(p.doubles)) problems.push(`${at}.doubles: not an array`);
    else {
      if (p.doubles.length > MAX_DOUBLES) {
        problems.push(`${at}.doubles: ${p.doubles.length} doubles, at most ${MAX_DOUBLES}`);
      }
      p.doubles.forEach((d, i) => {
        if (typeof d !== "number" || !Number.isFinite(d)) problems.push(`${at}.doubles[${i}]: not a finite number`);
      });
    }
  }

  if (p.indexes !== undefined) {
    if (!Array.isArray(p.indexes)) problems.push(`${at}.indexes: not an array`);
    else {
      if (p.indexes.length > MAX_INDEXES) {
        problems.push(`${at}.indexes: ${p.indexes.length} indexes, at most ${MAX_INDEXES}`);
      }
      p.indexes.forEach((x, i) => {
        const size = typeof x === "string" ? utf8(x) : x instanceof ArrayBuffer ? x.byteLength : -1;
        if (size < 0 && x !== null) problems.push(`${at}.indexes[${i}]: not a string, ArrayBuffer or null`);
        else if (size > MAX_INDEX_BYTES)
          problems.push(`${at}.indexes[${i}]: ${size} bytes, at most ${MAX_INDEX_BYTES}`);
      });
    }
  }
  return problems;
}

/** Problems with the data points of one send; empty when valid. */
export function validateAnalyticsEngine(body: string, _headers?: Record<string, string>): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    return [`not JSON: ${err instanceof Error ? err.message : String(err)}`];
  }
  const points = Array.isArray(parsed) ? parsed : [parsed];
  const problems: string[] = [];
  if (points.length > MAX_POINTS_PER_INVOCATION) {
    problems.push(`${points.length} data points, at most ${MAX_POINTS_PER_INVOCATION} per Worker invocation`);
  }
  points.forEach((p, i) => {
    problems.push(...validateDataPoint(p, `[${i}]`));
  });
  return problems;
}
