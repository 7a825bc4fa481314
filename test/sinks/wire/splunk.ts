/**
 * What Splunk's HTTP Event Collector accepts on `/services/collector/event`,
 * written from "Format events for HTTP Event Collector" (help.splunk.com):
 * a batch is JSON event objects one after another ("stacked"), each with
 * `event`; `time` is epoch seconds, fractional allowed (`<sec>.<ms>`);
 * `host`, `source`, `sourcetype`, `index` are strings; `fields` is a flat
 * object of string (or string array) values for indexed fields.
 */

/** Latest plausible epoch-seconds value (year 5138); a millisecond timestamp is ~1.7e12. */
const MAX_EPOCH_SECONDS = 1e11;
const META = ["host", "source", "sourcetype", "index"];

/** Splits stacked JSON values (whitespace between them allowed); reports trailing garbage. */
export function splitStackedJson(body: string): { values: string[]; problems: string[] } {
  const values: string[] = [];
  const problems: string[] = [];
  let i = 0;
  const n = body.length;
  while (i < n) {
    while (i < n && /\s/.test(body[i] as string)) i++;
    if (i >= n) break;
    if (body[i] !== "{") {
      problems.push(`garbage at offset ${i}: ${JSON.stringify(body.slice(i, i + 20))}`);
      break;
    }
    let depth = 0;
    let inString = false;
    let j = i;
    for (; j < n; j++) {
      const c = body[j];
      if (inString) {
        if (c === "\\") j++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        depth--;
        if (depth === 0) break;
      }
    }
    if (j >= n) {
      problems.push(`unterminated JSON object at offset ${i}`);
      break;
    }
    values.push(body.slice(i, j + 1));
    i = j + 1;
  }
  return { values, problems };
}

export function validateSplunk(body: string, headers?: Record<string, string>): string[] {
  const problems: string[] = [];
  if (headers) {
    // "Authorization: Splunk <hec_token>"
    if (!/^Splunk \S+$/.test(headers.authorization ?? ""))
      problems.push("authorization header is not `Splunk <token>`");
    const enc = headers["content-encoding"];
    if (enc !== undefined && enc !== "gzip") problems.push(`unsupported content-encoding ${enc}`);
  }
  const { values, problems: framing } = splitStackedJson(body);
  problems.push(...framing);
  // HEC answers "No data" (code 5) to an empty request.
  if (values.length === 0) problems.push("no events");
  values.forEach((text, k) => {
    const at = `event ${k}`;
    let e: unknown;
    try {
      e = JSON.parse(text);
    } catch (err) {
      problems.push(`${at}: not JSON: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (typeof e !== "object" || e === null || Array.isArray(e)) {
      problems.push(`${at}: not an object`);
      return;
    }
    const o = e as Record<string, unknown>;
    // "Event field is required" (code 12) / "Event field cannot be blank" (code 13).
    if (!("event" in o)) problems.push(`${at}: no event field`);
    else if (o.event === null || o.event === "") problems.push(`${at}: blank event field`);
    if ("time" in o) {
      const t = typeof o.time === "string" && /^\d+(\.\d+)?$/.test(o.time) ? Number(o.time) : o.time;
      if (typeof t !== "number" || !Number.isFinite(t) || t < 0) problems.push(`${at}.time: not epoch seconds`);
      else if (t > MAX_EPOCH_SECONDS) problems.push(`${at}.time: ${t} looks like milliseconds, not seconds`);
    }
    for (const m of META) if (m in o && typeof o[m] !== "string") problems.push(`${at}.${m}: must be a string`);
    if ("fields" in o) {
      const f = o.fields;
      if (typeof f !== "object" || f === null || Array.isArray(f)) problems.push(`${at}.fields: must be an object`);
      else
        for (const [key, val] of Object.entries(f)) {
          const flat = typeof val === "string" || (Array.isArray(val) && val.every((x) => typeof x === "string"));
          if (!flat) problems.push(`${at}.fields.${key}: must be a string or a list of strings`);
        }
    }
  });
  return problems;
}
