/**
 * The webhook alert sink's body, as docs/sinks.md (`webhook`) documents it:
 * one JSON object per event. This is tailfan's own format, so the validator
 * is written from that table: every field present with its type, nothing else.
 */
const EVENTS = ["new", "update", "threshold", "resolved"];
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Problems with one webhook body; empty when it is valid. */
export function validateWebhook(body: string, headers?: Record<string, string>): string[] {
  const problems: string[] = [];
  if (headers && headers["content-type"] !== "application/json") problems.push("content-type must be application/json");
  let b: Record<string, unknown>;
  try {
    b = JSON.parse(body) as Record<string, unknown>;
  } catch {
    return ["body is not JSON"];
  }
  if (b === null || typeof b !== "object" || Array.isArray(b)) return ["body must be a JSON object"];
  const allowed = new Set([
    "type",
    "event",
    "rule",
    "fingerprint",
    "group",
    "message",
    "script",
    "level",
    "count",
    "windowMinutes",
    "total",
    "firstSeen",
    "lastSeen",
    "threshold",
  ]);
  for (const k of Object.keys(b)) if (!allowed.has(k)) problems.push(`unknown field ${k}`);
  if (b.type !== "tailfan.alert") problems.push('type must be "tailfan.alert"');
  if (!EVENTS.includes(b.event as string)) problems.push(`event must be one of ${EVENTS.join(", ")}`);
  for (const k of ["rule", "message", "script", "level"])
    if (typeof b[k] !== "string") problems.push(`${k} must be a string`);
  if (typeof b.fingerprint !== "string" || !/^[0-9a-f]{14}$/.test(b.fingerprint))
    problems.push("fingerprint must be 14 hex digits");
  for (const k of ["count", "windowMinutes", "total"])
    if (!Number.isInteger(b[k]) || (b[k] as number) < 0) problems.push(`${k} must be a non-negative integer`);
  for (const k of ["firstSeen", "lastSeen"])
    if (typeof b[k] !== "string" || !RFC3339.test(b[k] as string)) problems.push(`${k} must be an RFC 3339 time`);
  const group = b.group as Record<string, unknown> | undefined;
  if (group === null || typeof group !== "object" || Array.isArray(group)) problems.push("group must be an object");
  else
    for (const [k, val] of Object.entries(group))
      if (typeof val !== "string") problems.push(`group.${k} must be a string`);
  if (b.threshold !== undefined) {
    const t = b.threshold as Record<string, unknown>;
    if (!Number.isInteger(t?.count) || !Number.isInteger(t?.minutes))
      problems.push("threshold must be { count, minutes }");
  }
  return problems;
}
