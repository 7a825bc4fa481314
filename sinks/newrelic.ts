import * as v from "valibot";
import { utf8Length } from "../src/text";
import { type Entry, jsonStringWithin, type MultiPayload, packBodies, sendBodies } from "./multi";
import { batchFromOptions, batchOptions, credentialOption, endpointOption, gzipOption, postPayload } from "./shared";
import { defineSink, type SerializedRecord } from "./types";

/** New Relic Log API: "Payload total size: 1MB (10^6 bytes) maximum per POST" (whether before or after gzip is not stated: we keep the uncompressed body within it). */
export const NEWRELIC_MAX_REQUEST_BYTES = 1_000_000;
/** Most bytes of JSON the `common` block may take, so a record always fits in a request with it. */
const NEWRELIC_COMMON_MAX_BYTES = 4096;
/** Room per log for `timestamp`, the framing and the request's `common` block. */
const NEWRELIC_RECORD_ROOM = NEWRELIC_COMMON_MAX_BYTES + 1024;

export const NEWRELIC_ENDPOINTS = {
  US: "https://log-api.newrelic.com/log/v1",
  EU: "https://log-api.eu.newrelic.com/log/v1",
} as const;

/** New Relic flattens nested attributes into dotted names of at most 255 characters. */
const NEWRELIC_MAX_NAME = 255;

/** The longest dotted name `value` flattens to under `prefix`, stopping early once past the limit. */
function longestName(value: unknown, prefix: number): number {
  if (value === null || typeof value !== "object") return prefix;
  let longest = prefix;
  for (const key of Object.keys(value)) {
    const n = longestName((value as Record<string, unknown>)[key], prefix + (prefix > 0 ? 1 : 0) + key.length);
    if (n > longest) longest = n;
    if (longest > NEWRELIC_MAX_NAME) return longest;
  }
  return longest;
}

/**
 * The record as attributes: its JSON line, except that a top-level field
 * whose flattened names would pass 255 characters is sent as a JSON string.
 */
function withinNameLimit(item: SerializedRecord): string {
  const record = item.record as unknown as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(record)) {
    const value = record[key];
    if (value === null || typeof value !== "object") continue;
    if (longestName(value, key.length) <= NEWRELIC_MAX_NAME) continue;
    copy ??= { ...record };
    copy[key] = JSON.stringify(value);
  }
  return copy ? JSON.stringify(copy) : item.line;
}

export const newrelicSink = defineSink({
  type: "newrelic",
  description: "Sends records to the New Relic Log API, each record's fields as the log's attributes.",
  options: v.strictObject({
    /** License key (or Insert key), sent as `Api-Key`. Default: the secret `NEW_RELIC_LICENSE_KEY`. */
    apiKey: credentialOption,
    /** Data center of the account: `US` or `EU`. Default `US`. */
    region: v.optional(v.picklist(["US", "EU"], 'must be "US" or "EU"'), "US"),
    /** Full Log API URL, overriding `region` (FedRAMP, proxies, tests). Default: the region's endpoint. */
    endpoint: endpointOption.optional,
    /** `logtype` attribute of every log (New Relic's handle for parsing rules and queries). Default `cloudflare-workers`. */
    logtype: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(255)), "cloudflare-workers"),
    /** Extra attributes shared by every log of a request (sent in `common`), such as `{ environment = "prod" }`. Default none. */
    attributes: v.optional(
      v.pipe(
        v.record(
          v.pipe(v.string(), v.minLength(1), v.maxLength(255, "attribute names are at most 255 characters")),
          v.union([v.string(), v.number(), v.boolean()], "must be a string, number or boolean"),
        ),
        v.check(
          (a) => utf8Length(JSON.stringify(a)) <= NEWRELIC_COMMON_MAX_BYTES - 300,
          `must be at most ${NEWRELIC_COMMON_MAX_BYTES - 300} bytes of JSON`,
        ),
      ),
      {},
    ),
    gzip: gzipOption(true),
    // Logs are larger than their records (the message is repeated): a batch whose body would pass
    // 1 MB is sent as several requests.
    ...batchOptions(
      { maxRecords: 1000, maxBytes: 500_000 },
      { maxRecords: 10_000, maxBytes: NEWRELIC_MAX_REQUEST_BYTES },
    ),
  }),
  batch: batchFromOptions(NEWRELIC_MAX_REQUEST_BYTES - NEWRELIC_RECORD_ROOM),
  defaultSecrets: { apiKey: "NEW_RELIC_LICENSE_KEY" },
  create(o) {
    const url = o.endpoint ?? NEWRELIC_ENDPOINTS[o.region];
    const common = JSON.stringify({ attributes: { logtype: o.logtype, ...o.attributes } });
    const open = `[{"common":${common},"logs":[`;
    const close = "]}]";
    const maxLogBytes = NEWRELIC_MAX_REQUEST_BYTES - utf8Length(open) - close.length;

    function entry(item: SerializedRecord): Entry {
      const r = item.record;
      const head = Number.isFinite(r.timestamp) ? `{"timestamp":${Math.round(r.timestamp)},"message":` : `{"message":`;
      const attributes = withinNameLimit(item);
      const tail = `,"attributes":${attributes}}`;
      const fixed =
        utf8Length(head) +
        (tail.length - attributes.length) +
        (attributes === item.line ? item.bytes : utf8Length(attributes));
      // The message is also in the attributes; its copy is cut if the log would not fit in one request.
      const message = jsonStringWithin(r.message, maxLogBytes - fixed) ?? '""';
      return { text: head + message + tail, bytes: fixed + utf8Length(message) };
    }

    return {
      encode(batch): MultiPayload {
        const bodies = packBodies(
          batch.map(entry),
          { maxEntries: Number.POSITIVE_INFINITY, maxBytes: NEWRELIC_MAX_REQUEST_BYTES },
          { open, sep: ",", close },
        );
        return { bodies, records: batch.length };
      },
      send(payload, signal) {
        const headers = { "api-key": o.apiKey };
        return sendBodies(payload, (body) =>
          postPayload({ url, body, contentType: "application/json", headers, gzip: o.gzip }, signal),
        );
      },
    };
  },
});
