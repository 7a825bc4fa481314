/**
 * Checks a Loki push body against the documented rules of `POST /loki/api/v1/push`
 * (JSON form). Returns the problems found; empty when the body is valid.
 */

/** Prometheus data model, which Loki follows: label names match [a-zA-Z_][a-zA-Z0-9_]*; `__` prefixes are reserved. */
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Loki's defaults: max_label_names_per_series 15, max_label_value_length 2048. */
const MAX_LABELS = 15;
const MAX_LABEL_VALUE = 2048;
/** Timestamps are Unix epoch nanoseconds as strings; 10^18 ns is 2001-09-09, 10^19 ns is 2286. */
const MIN_NS = 10n ** 18n;
const MAX_NS = 10n ** 19n;

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

export function validateLoki(body: string, headers?: Record<string, string>): string[] {
  const problems: string[] = [];
  // The JSON push body must be sent as application/json (the default is snappy protobuf).
  if (headers && !(headers["content-type"] ?? "").startsWith("application/json"))
    problems.push(`content-type is ${headers["content-type"]}, expected application/json`);
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (err) {
    return [...problems, `body is not JSON: ${String(err)}`];
  }
  // Body: {"streams": [{"stream": {labels}, "values": [["<ns>", "<line>"(, {metadata})], ...]}]}
  if (!isObject(doc)) return [...problems, "body is not a JSON object"];
  const streams = doc.streams;
  if (!Array.isArray(streams)) return [...problems, "streams is not an array"];
  if (streams.length === 0) problems.push("streams is empty");
  const seen = new Set<string>();
  streams.forEach((s, si) => {
    const at = `streams[${si}]`;
    if (!isObject(s)) {
      problems.push(`${at} is not an object`);
      return;
    }
    // "at least one label pair is required per stream"
    const labels = s.stream;
    if (!isObject(labels)) problems.push(`${at}.stream is not an object of labels`);
    else {
      const names = Object.keys(labels);
      if (names.length === 0) problems.push(`${at}.stream has no labels`);
      if (names.length > MAX_LABELS) problems.push(`${at}.stream has ${names.length} labels, more than ${MAX_LABELS}`);
      for (const name of names) {
        if (!LABEL_NAME.test(name)) problems.push(`${at}.stream: label name ${JSON.stringify(name)} is not valid`);
        if (name.startsWith("__")) problems.push(`${at}.stream: label name ${name} is reserved`);
        const value = labels[name];
        if (typeof value !== "string") problems.push(`${at}.stream.${name} is not a string`);
        else if (value === "") problems.push(`${at}.stream.${name} is empty`);
        else if (value.length > MAX_LABEL_VALUE)
          problems.push(`${at}.stream.${name} is longer than ${MAX_LABEL_VALUE}`);
      }
      const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
      if (seen.has(key)) problems.push(`${at}.stream repeats the labels of an earlier stream`);
      seen.add(key);
    }
    const values = s.values;
    if (!Array.isArray(values)) {
      problems.push(`${at}.values is not an array`);
      return;
    }
    if (values.length === 0) problems.push(`${at}.values is empty`);
    let previous: bigint | null = null;
    values.forEach((entry, vi) => {
      const vat = `${at}.values[${vi}]`;
      if (!Array.isArray(entry) || entry.length < 2 || entry.length > 3) {
        problems.push(`${vat} is not ["<ns>", "<line>"] or ["<ns>", "<line>", {metadata}]`);
        return;
      }
      const [ts, line, metadata] = entry;
      if (typeof ts !== "string" || !/^\d+$/.test(ts)) {
        problems.push(`${vat}[0] is not a string of digits (Unix nanoseconds)`);
      } else {
        const ns = BigInt(ts);
        if (ns < MIN_NS || ns >= MAX_NS) problems.push(`${vat}[0] ${ts} is not in the nanosecond range`);
        if (previous !== null && ns < previous) problems.push(`${vat}[0] is older than the entry before it`);
        previous = ns;
      }
      if (typeof line !== "string") problems.push(`${vat}[1] is not a string`);
      if (entry.length === 3) {
        // Structured metadata: an object of string values.
        if (!isObject(metadata) || Object.values(metadata).some((x) => typeof x !== "string"))
          problems.push(`${vat}[2] is not an object of strings`);
      }
    });
  });
  return problems;
}
