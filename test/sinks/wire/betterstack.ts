/**
 * Checks a Better Stack ingest body against the documented rules of `POST https://<ingesting host>`:
 * Content-Type application/json (an object or an array of objects), application/x-ndjson or
 * application/msgpack; `dt` is the event time; 413 above 20 MiB. Returns the problems found.
 */

const MAX_REQUEST_BYTES = 20 * 1024 * 1024;

function dtProblem(dt: unknown): string | null {
  if (dt === undefined) return "has no dt";
  // `dt` may be a date-time string or a UNIX timestamp.
  if (typeof dt === "string") return Number.isNaN(Date.parse(dt)) ? `dt ${JSON.stringify(dt)} is not parseable` : null;
  if (typeof dt === "number") return Number.isFinite(dt) && dt > 0 ? null : "dt is not a positive time";
  return "dt is neither a string nor a number";
}

export function validateBetterStack(body: string, headers?: Record<string, string>): string[] {
  const problems: string[] = [];
  const type = headers?.["content-type"] ?? "";
  if (headers) {
    if (!/^application\/(json|x-ndjson)\b/.test(type))
      problems.push(`content-type is ${type}, expected application/json or application/x-ndjson`);
    if (!/^Bearer \S+$/.test(headers.authorization ?? "")) problems.push("authorization is not `Bearer <token>`");
  }
  if (new TextEncoder().encode(body).byteLength > MAX_REQUEST_BYTES) problems.push("body is over 20 MiB");
  let events: unknown[];
  if (type.startsWith("application/json")) {
    try {
      const doc = JSON.parse(body) as unknown;
      events = Array.isArray(doc) ? doc : [doc];
    } catch {
      return [...problems, "body is not JSON"];
    }
  } else {
    if (body === "") return [...problems, "body is empty"];
    events = [];
    const lines = body.split("\n").filter((l, i, all) => !(l === "" && i === all.length - 1));
    for (const [i, line] of lines.entries()) {
      try {
        events.push(JSON.parse(line));
      } catch {
        problems.push(`line ${i + 1} is not JSON`);
      }
    }
  }
  if (events.length === 0) problems.push("no events");
  events.forEach((e, i) => {
    if (typeof e !== "object" || e === null || Array.isArray(e)) {
      problems.push(`event ${i + 1} is not a JSON object`);
      return;
    }
    const p = dtProblem((e as Record<string, unknown>).dt);
    if (p) problems.push(`event ${i + 1} ${p}`);
  });
  return problems;
}
