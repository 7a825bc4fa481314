import * as v from "valibot";
import type { Level } from "../src/record";
import { utf8Length } from "../src/text";
import { type Entry, jsonStringWithin, type MultiPayload, packBodies, sendBodies } from "./multi";
import { batchFromOptions, batchOptions, credentialOption, endpointOption, gzipOption, postPayload } from "./shared";
import { defineSink, type SerializedRecord } from "./types";

/** Datadog Logs API limits per request: 5 MB uncompressed, 1000 entries, 1 MB per log (taken as 10^6 bytes). */
export const DATADOG_MAX_REQUEST_BYTES = 5_000_000;
export const DATADOG_MAX_ENTRIES = 1000;
export const DATADOG_MAX_ENTRY_BYTES = 1_000_000;
/** Room kept in an entry for the fields around the record (tags, service, status, ...). */
const DATADOG_ENTRY_ROOM = 24 * 1024;

/** Datadog `status` for each record level. */
export const DATADOG_STATUS: Record<Level, string> = {
  debug: "debug",
  info: "info",
  log: "info",
  warn: "warning",
  error: "error",
};

/** One tag of the comma-separated `ddtags`: no comma, at most 200 characters (Datadog's tag limit). */
const tagSchema = v.pipe(
  v.string(),
  v.minLength(1, "a tag must not be empty"),
  v.maxLength(200, "a tag is at most 200 characters"),
  v.check((t) => !t.includes(","), "a tag must not contain a comma"),
);

/** `"env:prod,team:web"` or a list, as a list of trimmed tags. */
function tagList(input: string | string[]): string[] {
  const raw = typeof input === "string" ? input.split(",") : input;
  return raw.map((t) => t.trim()).filter((t) => t !== "");
}

/** A value usable inside `ddtags`: no commas or whitespace, within the tag length limit. */
function tagValue(key: string, value: string): string {
  return `${key}:${value.replace(/[,\s]+/g, "_")}`.slice(0, 200);
}

/** What every entry of one sink shares, from its options. */
interface EntryShape {
  /** `ddsource`, as JSON. */
  source: string;
  /** `,"hostname":...`, or "" when not set. */
  host: string;
  userTags: readonly string[];
  service: string | undefined;
}

/**
 * One Datadog log entry: the record under `worker`, with status, service and
 * tags, and copies of its message, HTTP and error fields as Datadog's standard
 * attributes, each only if the entry stays within 1 MB.
 */
function datadogEntry(item: SerializedRecord, shape: EntryShape): Entry {
  const r = item.record;
  const tags: string[] = [];
  if (r.scriptName) tags.push(tagValue("script", r.scriptName));
  tags.push(tagValue("outcome", r.outcome), tagValue("event_type", r.eventType));
  if (r.dispatchNamespace) tags.push(tagValue("dispatch_namespace", r.dispatchNamespace));
  for (const t of shape.userTags) tags.push(t);
  const service = shape.service ?? r.scriptName ?? "tailfan";
  let head =
    `{"ddsource":${shape.source},"ddtags":${JSON.stringify(tags.join(","))}${shape.host}` +
    `,"service":${JSON.stringify(service)},"status":"${DATADOG_STATUS[r.level] ?? "info"}"`;
  if (Number.isFinite(r.timestamp)) head += `,"timestamp":${r.timestamp}`;
  const tail = `,"worker":${item.line}}`;
  const fixed = utf8Length(head) + (tail.length - item.line.length) + item.bytes;
  let room = DATADOG_MAX_ENTRY_BYTES - fixed;
  let extras = "";
  const message = jsonStringWithin(r.message, room - ',"message":'.length);
  if (message !== null) {
    extras += `,"message":${message}`;
    room -= ',"message":'.length + utf8Length(message);
  }
  const add = (text: string) => {
    const size = utf8Length(text);
    if (size > room) return false;
    extras += text;
    room -= size;
    return true;
  };
  if (r.method !== undefined || r.url !== undefined || r.status !== undefined) {
    const http: Record<string, string | number> = {};
    if (r.method !== undefined) http.method = r.method;
    if (r.url !== undefined) http.url = r.url;
    if (r.status !== undefined) http.status_code = r.status;
    add(`,"http":${JSON.stringify(http)}`);
  }
  if (r.type === "exception") {
    const error = { kind: r.exceptionName, message: r.message };
    if (r.stack === undefined || !add(`,"error":${JSON.stringify({ ...error, stack: r.stack })}`))
      add(`,"error":${JSON.stringify(error)}`);
  }
  return { text: head + extras + tail, bytes: DATADOG_MAX_ENTRY_BYTES - room };
}

export const datadogSink = defineSink({
  type: "datadog",
  description: "Sends records to the Datadog Logs API (v2) as JSON log entries with status, service and tags.",
  writesLine: true,
  options: v.strictObject({
    /** Datadog API key, sent as `DD-API-KEY`. Default: the secret `DD_API_KEY`. */
    apiKey: credentialOption,
    /**
     * Datadog site: `datadoghq.com` (US1), `us3.datadoghq.com`, `us5.datadoghq.com`, `datadoghq.eu`,
     * `ap1.datadoghq.com`, `ap2.datadoghq.com`, `ddog-gov.com`, ... Default `datadoghq.com`.
     */
    site: v.optional(
      v.pipe(
        v.string(),
        v.regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/, "must be a Datadog site such as datadoghq.com or datadoghq.eu"),
        v.check((s) => !s.startsWith("app."), 'is the site without "app." (datadoghq.eu, not app.datadoghq.eu)'),
      ),
      "datadoghq.com",
    ),
    /** Full intake URL, overriding `site` (proxies, tests). Default: from `site`, `https://http-intake.logs.<site>/api/v2/logs`. */
    endpoint: endpointOption.optional,
    /** `service` of every entry. Default: the record's script name, else `tailfan`. */
    service: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(100, "is at most 100 characters"))),
    /** `ddsource` of every entry. Default `cloudflare`. */
    ddsource: v.optional(
      v.pipe(v.string(), v.minLength(1), v.maxLength(100, "is at most 100 characters")),
      "cloudflare",
    ),
    /**
     * Extra tags, as `"env:prod,team:web"` or `["env:prod", "team:web"]`, added after the automatic
     * `script:`, `outcome:`, `event_type:` (and `dispatch_namespace:`) tags. Default none.
     */
    ddtags: v.optional(
      v.pipe(
        v.union([v.string(), v.array(v.string())], "must be a string or a list of strings"),
        v.transform(tagList),
        v.array(tagSchema),
        v.maxLength(100, "at most 100 tags"),
      ),
      [],
    ),
    /** `hostname` of every entry. Default: not set. */
    hostname: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(255, "is at most 255 characters"))),
    gzip: gzipOption(true),
    // Entries are somewhat larger than their records (message, tags): a batch whose entries would
    // pass Datadog's 5 MB is sent as several requests.
    ...batchOptions(
      { maxRecords: 1000, maxBytes: 3_000_000 },
      { maxRecords: DATADOG_MAX_ENTRIES, maxBytes: DATADOG_MAX_REQUEST_BYTES },
    ),
  }),
  batch: batchFromOptions(DATADOG_MAX_ENTRY_BYTES - DATADOG_ENTRY_ROOM),
  defaultSecrets: { apiKey: "DD_API_KEY" },
  create(o) {
    const url = o.endpoint ?? `https://http-intake.logs.${o.site}/api/v2/logs`;
    const shape: EntryShape = {
      source: JSON.stringify(o.ddsource),
      host: o.hostname === undefined ? "" : `,"hostname":${JSON.stringify(o.hostname)}`,
      userTags: o.ddtags,
      service: o.service,
    };
    return {
      encode(batch): MultiPayload {
        const entries = batch.map((item) => datadogEntry(item, shape));
        const bodies = packBodies(
          entries,
          { maxEntries: DATADOG_MAX_ENTRIES, maxBytes: DATADOG_MAX_REQUEST_BYTES },
          { open: "[", sep: ",", close: "]" },
        );
        return { bodies, records: batch.length };
      },
      send(payload, signal) {
        const headers = { "dd-api-key": o.apiKey };
        return sendBodies(payload, (body) =>
          postPayload({ url, body, contentType: "application/json", headers, gzip: o.gzip }, signal),
        );
      },
    };
  },
});
