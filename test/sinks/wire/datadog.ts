/**
 * What the Datadog Logs API v2 (`POST /api/v2/logs`) accepts, written from
 * https://docs.datadoghq.com/api/latest/logs/#send-logs and the log status
 * remapper page. Returns the problems found; empty when the body is valid.
 */

/** "Maximum content size per payload (uncompressed): 5MB" (taken as 5 * 10^6 bytes, the stricter reading). */
export const DD_MAX_PAYLOAD_BYTES = 5_000_000;
/** "Maximum array size if sending multiple logs in an array: 1000 entries". */
export const DD_MAX_ENTRIES = 1000;
/** "Maximum size for a single log: 1MB" (larger logs are accepted but truncated; 10^6 bytes, the stricter reading). */
export const DD_MAX_ENTRY_BYTES = 1_000_000;
/** Status values the status remapper maps as named (canonical names; integers 0-7 are syslog severities). */
const DD_STATUSES = new Set([
  "emerg",
  "emergency",
  "alert",
  "critical",
  "error",
  "warning",
  "notice",
  "info",
  "debug",
  "ok",
]);
/** Reserved attributes that must be strings (HTTPLogItem: ddsource, ddtags, hostname, message, service). */
const STRING_FIELDS = ["ddsource", "ddtags", "hostname", "message", "service"];

const utf8 = (s: string) => new TextEncoder().encode(s).byteLength;

export function validateDatadog(body: string, headers?: Record<string, string>): string[] {
  const problems: string[] = [];
  if (headers) {
    // Auth: "DD-API-KEY" header (required). Body: JSON; gzip allowed with Content-Encoding.
    if (!headers["dd-api-key"]) problems.push("missing DD-API-KEY header");
    if (!/^application\/json\b/i.test(headers["content-type"] ?? ""))
      problems.push("content-type is not application/json");
    const enc = headers["content-encoding"];
    if (enc !== undefined && enc !== "gzip" && enc !== "deflate") problems.push(`unsupported content-encoding ${enc}`);
  }
  const size = utf8(body);
  if (size > DD_MAX_PAYLOAD_BYTES) problems.push(`payload is ${size} bytes uncompressed, over 5 MB`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    problems.push(`body is not JSON: ${err instanceof Error ? err.message : String(err)}`);
    return problems;
  }
  if (!Array.isArray(parsed)) {
    problems.push("body is not a JSON array of log entries");
    return problems;
  }
  if (parsed.length === 0) problems.push("empty array: no log entries");
  if (parsed.length > DD_MAX_ENTRIES) problems.push(`${parsed.length} entries, over the 1000-entry limit`);
  parsed.forEach((entry: unknown, i) => {
    const at = `[${i}]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      problems.push(`${at}: entry is not an object`);
      return;
    }
    const e = entry as Record<string, unknown>;
    const entryBytes = utf8(JSON.stringify(e));
    if (entryBytes > DD_MAX_ENTRY_BYTES) problems.push(`${at}: entry is ${entryBytes} bytes, over 1 MB`);
    // HTTPLogItem: `message` is required.
    if (!("message" in e)) problems.push(`${at}: no message`);
    for (const f of STRING_FIELDS)
      if (f in e && typeof e[f] !== "string") problems.push(`${at}.${f}: must be a string, got ${typeof e[f]}`);
    if ("status" in e) {
      const s = e.status;
      const ok =
        (typeof s === "string" && DD_STATUSES.has(s)) ||
        (typeof s === "number" && Number.isInteger(s) && s >= 0 && s <= 7);
      if (!ok) problems.push(`${at}.status: ${JSON.stringify(s)} is not a Datadog status (or syslog severity 0-7)`);
    }
    if (typeof e.ddtags === "string" && e.ddtags !== "") {
      // ddtags: "tags for the log, comma-separated"; each tag at most 200 characters.
      e.ddtags.split(",").forEach((tag, j) => {
        if (tag === "") problems.push(`${at}.ddtags[${j}]: empty tag`);
        else if (tag.length > 200) problems.push(`${at}.ddtags[${j}]: tag over 200 characters`);
        else if (/\s/.test(tag)) problems.push(`${at}.ddtags[${j}]: tag with whitespace`);
      });
    }
    if ("timestamp" in e && typeof e.timestamp !== "number" && typeof e.timestamp !== "string")
      problems.push(`${at}.timestamp: must be epoch ms or a date string`);
  });
  return problems;
}
