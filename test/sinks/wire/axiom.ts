/**
 * Checks an Axiom ingest body (NDJSON, `Content-Type: application/x-ndjson`) against
 * Axiom's documented rules. Returns the problems found; empty when the body is valid.
 */

/** Axiom's system-wide limits: 1 MB per event, 10,000 events per batch, 200-byte field names. */
const MAX_EVENT_BYTES = 1_000_000;
const MAX_EVENTS = 10_000;
const MAX_FIELD_NAME_BYTES = 200;
/** RFC 3339 date-time, the form Axiom reads `_time` in by default. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

const utf8 = (s: string) => new TextEncoder().encode(s).byteLength;

export function validateAxiom(body: string, headers?: Record<string, string>): string[] {
  const problems: string[] = [];
  if (headers) {
    if (!(headers["content-type"] ?? "").startsWith("application/x-ndjson"))
      problems.push(`content-type is ${headers["content-type"]}, expected application/x-ndjson`);
    if (!/^Bearer \S+$/.test(headers.authorization ?? "")) problems.push("authorization is not `Bearer <token>`");
  }
  if (body === "") return [...problems, "body is empty"];
  if (!body.endsWith("\n")) problems.push("NDJSON body does not end with a newline");
  const lines = body.replace(/\n$/, "").split("\n");
  if (lines.length > MAX_EVENTS) problems.push(`${lines.length} events, more than ${MAX_EVENTS}`);
  lines.forEach((line, i) => {
    const at = `line ${i + 1}`;
    if (utf8(line) > MAX_EVENT_BYTES) problems.push(`${at} is larger than ${MAX_EVENT_BYTES} bytes`);
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch {
      problems.push(`${at} is not JSON`);
      return;
    }
    if (typeof event !== "object" || event === null || Array.isArray(event)) {
      problems.push(`${at} is not a JSON object`);
      return;
    }
    const e = event as Record<string, unknown>;
    for (const k of Object.keys(e))
      if (utf8(k) > MAX_FIELD_NAME_BYTES) problems.push(`${at}: field name longer than ${MAX_FIELD_NAME_BYTES} bytes`);
    // `_time` is the event time; without it Axiom uses the ingest time, which is not what tailfan wants.
    const t = e._time;
    if (t === undefined) problems.push(`${at} has no _time`);
    else if (typeof t === "string") {
      if (!RFC3339.test(t) || Number.isNaN(Date.parse(t)))
        problems.push(`${at}: _time ${JSON.stringify(t)} is not RFC 3339`);
    } else if (typeof t !== "number" || !Number.isFinite(t) || t <= 0) problems.push(`${at}: _time is not a time`);
  });
  return problems;
}
