/**
 * Checks a body against Sentry's envelope format, as Relay parses it:
 * https://develop.sentry.dev/sdk/data-model/envelopes/ (serialization) and
 * https://develop.sentry.dev/sdk/data-model/envelope-items/ (item rules).
 * Returns the problems found; empty when the envelope is valid.
 */

const HEX32 = /^[0-9a-f]{32}$/;
const UUID36 = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const LEVELS = ["fatal", "error", "warning", "info", "debug"];

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function parseJson(bytes: Uint8Array, what: string, problems: string[]): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch (err) {
    problems.push(`${what} is not JSON (${err instanceof Error ? err.message : String(err)})`);
    return undefined;
  }
}

/** Event payload rules: https://develop.sentry.dev/sdk/data-model/event-payloads/ */
function validateEvent(event: unknown, headerEventId: unknown, at: string, problems: string[]): void {
  if (!isObject(event)) {
    problems.push(`${at}: event payload must be a JSON object`);
    return;
  }
  // "event_id: Required. Hexadecimal string representing a uuid4 value ... 32 characters, no dashes".
  if (typeof event.event_id !== "string" || !HEX32.test(event.event_id))
    problems.push(`${at}: event_id must be 32 lowercase hex characters`);
  else if (headerEventId !== undefined && headerEventId !== event.event_id)
    problems.push(`${at}: event_id differs from the envelope header's event_id`);
  // "timestamp: Required. ... RFC 3339 string or a numeric (integer or float) value ... since the Unix epoch".
  const ts = event.timestamp;
  if (!(typeof ts === "number" && Number.isFinite(ts) && ts > 0) && !(typeof ts === "string" && RFC3339.test(ts)))
    problems.push(`${at}: timestamp must be epoch seconds or an RFC 3339 string`);
  else if (typeof ts === "number" && ts > 1e11) problems.push(`${at}: timestamp looks like milliseconds, not seconds`);
  // "platform: Required." ... level: one of fatal, error, warning, info, debug.
  if (typeof event.platform !== "string" || event.platform === "") problems.push(`${at}: platform is required`);
  if (event.level !== undefined && !LEVELS.includes(String(event.level)))
    problems.push(`${at}: level must be one of ${LEVELS.join(", ")}`);
  if (event.exception !== undefined) {
    const values = isObject(event.exception) ? event.exception.values : undefined;
    if (!Array.isArray(values) || values.length === 0)
      problems.push(`${at}: exception.values must be a non-empty list`);
    else
      values.forEach((value, i) => {
        // Exception interface: "at least one of type or value is required".
        if (!isObject(value) || (typeof value.type !== "string" && typeof value.value !== "string")) {
          problems.push(`${at}: exception.values[${i}] needs a type or a value`);
          return;
        }
        if (value.stacktrace !== undefined) {
          // Stack trace interface: "frames: Required. A non-empty list of stack frames", oldest call first.
          const frames = isObject(value.stacktrace) ? value.stacktrace.frames : undefined;
          if (!Array.isArray(frames) || frames.length === 0)
            problems.push(`${at}: exception.values[${i}].stacktrace.frames must be a non-empty list`);
          else
            frames.forEach((f, j) => {
              if (!isObject(f)) problems.push(`${at}: frame ${j} must be an object`);
              else if (f.lineno !== undefined && !(Number.isInteger(f.lineno) && (f.lineno as number) >= 0))
                problems.push(`${at}: frame ${j} lineno must be a non-negative integer`);
            });
        }
      });
  }
  if (event.tags !== undefined) {
    if (!isObject(event.tags)) problems.push(`${at}: tags must be an object`);
    else
      for (const [k, val] of Object.entries(event.tags)) {
        // Tags: keys at most 32 characters of a-zA-Z0-9_.:- ; values at most 200 characters, no line breaks.
        if (!/^[a-zA-Z0-9_.:-]{1,32}$/.test(k)) problems.push(`${at}: tag key ${JSON.stringify(k)} is not allowed`);
        if (typeof val !== "string" || val.length > 200 || /[\r\n]/.test(val))
          problems.push(`${at}: tag ${k} must be a string of at most 200 characters without line breaks`);
      }
  }
  if (event.release !== undefined && (typeof event.release !== "string" || /[\n\t/\\]/.test(event.release)))
    problems.push(`${at}: release must not contain line breaks, tabs or slashes`);
  if (event.environment !== undefined && (typeof event.environment !== "string" || /[\s/]/.test(event.environment)))
    problems.push(`${at}: environment must not contain spaces or slashes`);
}

export function validateSentry(body: string, headers?: Record<string, string>): string[] {
  const problems: string[] = [];
  if (headers) {
    const auth = headers["x-sentry-auth"];
    // Authentication: "X-Sentry-Auth: Sentry sentry_version=7, sentry_key=<public key>, sentry_client=<name/version>".
    if (auth === undefined) problems.push("X-Sentry-Auth header is missing");
    else {
      if (!/^Sentry /.test(auth)) problems.push("X-Sentry-Auth must start with 'Sentry '");
      if (!/sentry_version=7(,|$)/.test(auth)) problems.push("X-Sentry-Auth needs sentry_version=7");
      if (!/sentry_key=[^,\s]+/.test(auth)) problems.push("X-Sentry-Auth needs sentry_key");
    }
  }
  const bytes = new TextEncoder().encode(body);
  const NL = 10;
  let pos = 0;
  const readLine = (): Uint8Array | undefined => {
    if (pos >= bytes.length) return undefined;
    let end = bytes.indexOf(NL, pos);
    if (end < 0) end = bytes.length;
    const line = bytes.subarray(pos, end);
    pos = end + 1;
    return line;
  };
  // "Envelope = Headers { "\n" Item } [ "\n" ]": the first line is the envelope header, a JSON object.
  const headerLine = readLine();
  if (headerLine === undefined || headerLine.length === 0) return [...problems, "envelope header line is missing"];
  if (headerLine.includes(13)) problems.push("header line contains \\r (newlines must be \\n only)");
  const header = parseJson(headerLine, "envelope header", problems);
  if (header !== undefined && !isObject(header)) problems.push("envelope header must be a JSON object");
  const h = isObject(header) ? header : {};
  if (
    h.event_id !== undefined &&
    (typeof h.event_id !== "string" || !(HEX32.test(h.event_id) || UUID36.test(h.event_id)))
  )
    problems.push("envelope header event_id must be a UUID (32 hex characters)");
  if (h.sent_at !== undefined && (typeof h.sent_at !== "string" || !RFC3339.test(h.sent_at)))
    problems.push("envelope header sent_at must be an RFC 3339 timestamp");
  if (h.dsn !== undefined && typeof h.dsn !== "string") problems.push("envelope header dsn must be a string");

  const types: string[] = [];
  let events = 0;
  let n = 0;
  while (pos < bytes.length) {
    const at = `item ${n}`;
    const itemHeaderLine = readLine();
    if (itemHeaderLine === undefined) break;
    // A single trailing newline after the last item is allowed; an empty header line elsewhere is not.
    if (itemHeaderLine.length === 0) {
      if (pos >= bytes.length) break;
      problems.push(`${at}: empty item header line`);
      continue;
    }
    const itemHeader = parseJson(itemHeaderLine, `${at} header`, problems);
    if (!isObject(itemHeader)) {
      if (itemHeader !== undefined) problems.push(`${at}: item header must be a JSON object`);
      break;
    }
    // Item headers: "type: String, required".
    if (typeof itemHeader.type !== "string" || itemHeader.type === "") problems.push(`${at}: item header needs a type`);
    else types.push(itemHeader.type);
    let payload: Uint8Array;
    if (itemHeader.length !== undefined) {
      // "length: int, recommended. The length of the payload in bytes ... the payload is followed by a newline or EOF".
      const length = itemHeader.length;
      if (typeof length !== "number" || !Number.isInteger(length) || length < 0) {
        problems.push(`${at}: length must be a non-negative integer`);
        break;
      }
      if (pos + length > bytes.length) {
        problems.push(`${at}: length ${length} runs past the end of the body (${bytes.length - pos} bytes left)`);
        break;
      }
      payload = bytes.subarray(pos, pos + length);
      pos += length;
      if (pos < bytes.length) {
        if (bytes[pos] !== NL) problems.push(`${at}: payload of length ${length} is not followed by a newline`);
        pos++;
      }
    } else {
      payload = readLine() ?? new Uint8Array();
    }
    if (itemHeader.type === "event") {
      events++;
      // "Event: ... the envelope header must contain event_id"; at most one event per envelope.
      if (typeof h.event_id !== "string")
        problems.push(`${at}: an envelope with an event needs event_id in its header`);
      const event = parseJson(payload, `${at} payload`, problems);
      if (event !== undefined) validateEvent(event, h.event_id, at, problems);
    }
    n++;
  }
  if (n === 0) problems.push("envelope has no items");
  if (events > 1) problems.push(`envelope holds ${events} events; at most one is allowed`);
  // "SDKs MUST NOT combine different types of telemetry data in the same envelope."
  if (new Set(types).size > 1) problems.push(`envelope mixes item types: ${[...new Set(types)].join(", ")}`);
  return problems;
}
