/**
 * What the New Relic Log API (`POST /log/v1`) accepts in its detailed form,
 * written from "Introduction to the Log API" and "Log event data"
 * (docs.newrelic.com): a JSON array of `{ common?: { attributes? }, logs: [
 * { timestamp?, message?, attributes? } ] }`; timestamp an integer of epoch
 * ms (or s); "Payload total size: 1MB (10^6 bytes) maximum per POST";
 * at most 255 attributes per event, names at most 255 characters.
 */

export const NR_MAX_PAYLOAD_BYTES = 1_000_000;
const NR_MAX_ATTRIBUTES = 255;

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

/** Attribute names as New Relic stores them: nested objects flattened with dots. */
function flatten(obj: Record<string, unknown>, prefix: string, out: Set<string>): void {
  for (const [k, val] of Object.entries(obj)) {
    const name = prefix ? `${prefix}.${k}` : k;
    if (isObject(val)) flatten(val, name, out);
    else out.add(name);
  }
}

export function validateNewRelic(body: string, headers?: Record<string, string>): string[] {
  const problems: string[] = [];
  if (headers) {
    if (!headers["api-key"] && !headers["x-license-key"]) problems.push("missing Api-Key (or X-License-Key) header");
    if (!/^application\/json\b/i.test(headers["content-type"] ?? ""))
      problems.push("content-type is not application/json");
    const enc = headers["content-encoding"];
    if (enc !== undefined && enc !== "gzip") problems.push(`unsupported content-encoding ${enc}`);
  }
  const size = new TextEncoder().encode(body).byteLength;
  if (size > NR_MAX_PAYLOAD_BYTES) problems.push(`payload is ${size} bytes, over 1 MB (10^6 bytes)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    problems.push(`body is not JSON: ${err instanceof Error ? err.message : String(err)}`);
    return problems;
  }
  if (!Array.isArray(parsed)) {
    problems.push("body is not a JSON array of { common, logs } blocks");
    return problems;
  }
  if (parsed.length === 0) problems.push("empty array");
  parsed.forEach((block: unknown, b) => {
    const at = `[${b}]`;
    if (!isObject(block)) {
      problems.push(`${at}: not an object`);
      return;
    }
    const commonNames = new Set<string>();
    if ("common" in block) {
      const c = block.common;
      if (!isObject(c)) problems.push(`${at}.common: not an object`);
      else if ("attributes" in c) {
        if (!isObject(c.attributes)) problems.push(`${at}.common.attributes: not an object`);
        else flatten(c.attributes, "", commonNames);
      }
    }
    if (!Array.isArray(block.logs)) {
      problems.push(`${at}.logs: not an array`);
      return;
    }
    if (block.logs.length === 0) problems.push(`${at}.logs: empty`);
    block.logs.forEach((log: unknown, i) => {
      const la = `${at}.logs[${i}]`;
      if (!isObject(log)) {
        problems.push(`${la}: not an object`);
        return;
      }
      if ("timestamp" in log && (typeof log.timestamp !== "number" || !Number.isInteger(log.timestamp)))
        problems.push(`${la}.timestamp: must be an integer (epoch ms or s)`);
      if ("message" in log && typeof log.message !== "string") problems.push(`${la}.message: must be a string`);
      if (!("message" in log) && !("attributes" in log)) problems.push(`${la}: neither message nor attributes`);
      const names = new Set(commonNames);
      if ("attributes" in log) {
        if (!isObject(log.attributes)) problems.push(`${la}.attributes: not an object`);
        else flatten(log.attributes, "", names);
      }
      for (const k of Object.keys(log)) if (k !== "attributes") names.add(k);
      if (names.size > NR_MAX_ATTRIBUTES) problems.push(`${la}: ${names.size} attributes, over 255`);
      for (const name of names) if (name.length > 255) problems.push(`${la}: attribute name over 255 characters`);
    });
  });
  return problems;
}
