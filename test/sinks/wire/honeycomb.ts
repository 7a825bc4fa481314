/**
 * Checks a Honeycomb batch body against the documented rules of `POST /1/batch/<dataset>`:
 * a JSON array of one or more events, each `{"data": {...}}` with `time` (RFC 3339; optional
 * for Honeycomb, which then uses the arrival time, but required here: tailfan always sends the
 * event time) and optional `samplerate` (a positive integer). Returns the problems found.
 */

/** libhoney's apiMaxBatchSize: 5 MB per batch request. */
const MAX_BATCH_BYTES = 5_000_000;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const KEYS = new Set(["data", "time", "samplerate"]);

export function validateHoneycomb(body: string, headers?: Record<string, string>): string[] {
  const problems: string[] = [];
  if (headers) {
    if (!(headers["content-type"] ?? "").startsWith("application/json"))
      problems.push(`content-type is ${headers["content-type"]}, expected application/json`);
    if (!headers["x-honeycomb-team"]) problems.push("x-honeycomb-team header is missing");
  }
  if (new TextEncoder().encode(body).byteLength > MAX_BATCH_BYTES) problems.push("body is over 5 MB");
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return [...problems, "body is not JSON"];
  }
  if (!Array.isArray(doc)) return [...problems, "body is not a JSON array"];
  if (doc.length === 0) problems.push("the array is empty (one or more events are required)");
  doc.forEach((e, i) => {
    const at = `event ${i}`;
    if (typeof e !== "object" || e === null || Array.isArray(e)) {
      problems.push(`${at} is not an object`);
      return;
    }
    const ev = e as Record<string, unknown>;
    for (const k of Object.keys(ev)) if (!KEYS.has(k)) problems.push(`${at} has an unknown key ${JSON.stringify(k)}`);
    const data = ev.data;
    if (typeof data !== "object" || data === null || Array.isArray(data)) problems.push(`${at}.data is not an object`);
    if (ev.time === undefined) problems.push(`${at} has no time`);
    else if (typeof ev.time !== "string" || !RFC3339.test(ev.time) || Number.isNaN(Date.parse(ev.time)))
      problems.push(`${at}.time is not RFC 3339`);
    if (ev.samplerate !== undefined && !(Number.isInteger(ev.samplerate) && (ev.samplerate as number) >= 1))
      problems.push(`${at}.samplerate is not a positive integer`);
  });
  return problems;
}
