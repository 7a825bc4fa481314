/**
 * Grafana Loki (and Grafana Cloud Logs): `POST <endpoint>/loki/api/v1/push`
 * with the JSON push body `{"streams":[{"stream":{labels},"values":[["<ns>","<line>"]]}]}`.
 * Labels are a few low-cardinality record fields; the line is the whole record JSON.
 */
import * as v from "valibot";
import {
  batchFromOptions,
  batchOptions,
  credentialOption,
  endpointOption,
  gzipOption,
  headerSafe,
  postPayload,
  truncateUtf8,
} from "./shared";
import { defineSink, type LogRecord, type SerializedRecord } from "./types";

/** A push body ready to send, before optional gzip. */
export interface LokiPayload {
  body: string;
  /** Streams in the body (distinct label sets). */
  streams: number;
  records: number;
}

/** Record fields that may become labels: each takes a small, bounded set of values. */
const LABEL_FIELDS = {
  script: (r: LogRecord) => r.scriptName,
  outcome: (r: LogRecord) => r.outcome,
  level: (r: LogRecord) => r.level,
  eventType: (r: LogRecord) => r.eventType,
  type: (r: LogRecord) => r.type,
  entrypoint: (r: LogRecord) => r.entrypoint,
  executionModel: (r: LogRecord) => r.executionModel,
  dispatchNamespace: (r: LogRecord) => r.dispatchNamespace,
  method: (r: LogRecord) => r.method,
  status: (r: LogRecord) => (r.status === undefined ? undefined : String(r.status)),
  colo: (r: LogRecord) => r.colo,
  country: (r: LogRecord) => r.country,
  cron: (r: LogRecord) => r.cron,
  queue: (r: LogRecord) => r.queue,
  rpcMethod: (r: LogRecord) => r.rpcMethod,
} satisfies Record<string, (r: LogRecord) => string | null | undefined>;

type LabelField = keyof typeof LABEL_FIELDS;
const LABEL_NAMES = Object.keys(LABEL_FIELDS) as LabelField[];

/** Fields that are present on every record, so a stream always has at least one label. */
const ALWAYS_PRESENT: readonly LabelField[] = ["outcome", "level", "eventType", "type"];

/**
 * Fields that are (nearly) unique per record or invocation. As labels they would
 * create a stream per value, which Loki's docs warn against; they stay in the line,
 * where `| json` finds them.
 */
const HIGH_CARDINALITY = new Set([
  "id",
  "invocationId",
  "timestamp",
  "eventTimestamp",
  "message",
  "url",
  "durableObjectId",
  "scriptVersion",
  "scheduledTime",
  "cpuTime",
  "wallTime",
  "mailFrom",
  "rcptTo",
  "rawSize",
  "batchSize",
  "stack",
  "args",
  "errors",
  "event",
  "data",
]);

/** Loki's default `max_label_names_per_series`. */
const MAX_LABELS = 15;
/** Loki's default `max_label_value_length` (bytes). */
const MAX_LABEL_VALUE_BYTES = 2048;
/**
 * Loki's default `max_line_size` (256KB, parsed as 256000 bytes); Grafana Cloud uses
 * the same. A longer line would be refused, so such a record fails on its own.
 */
const MAX_LINE_BYTES = 256_000;

/** Prometheus label name rule, which Loki applies; names starting with `__` are reserved. */
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const labelField = v.pipe(
  v.string(),
  v.check((f) => f !== "scriptName", 'use "script" for the script name'),
  v.check(
    (f) => !HIGH_CARDINALITY.has(f),
    "is a high-cardinality field (a new value for nearly every record or invocation); as a label it would create a stream per value. It stays in the log line: query it with `| json`",
  ),
  v.check(
    (f) => f === "scriptName" || HIGH_CARDINALITY.has(f) || (LABEL_NAMES as string[]).includes(f),
    `is not a label field; choose from ${LABEL_NAMES.join(", ")}`,
  ),
);

/** Epoch ms as a decimal string of Unix nanoseconds, built from digits (no float beyond 2^53). */
export function unixNanos(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return "0";
  // Year 9999 at most: keeps the integer part exact and the string plain digits.
  const clamped = Math.min(ms, 253_402_300_799_999);
  let whole = Math.floor(clamped);
  let frac = Math.round((clamped - whole) * 1e6);
  if (frac >= 1e6) {
    whole += 1;
    frac = 0;
  }
  const fracDigits = String(frac).padStart(6, "0");
  return whole === 0 ? String(frac) : `${whole}${fracDigits}`;
}

/** Base64 of the UTF-8 bytes (RFC 7617 basic credentials). */
function base64Utf8(s: string): string {
  let bin = "";
  for (const b of new TextEncoder().encode(s)) bin += String.fromCharCode(b);
  return btoa(bin);
}

function endpointUrl(endpoint: string): string {
  const url = new URL(endpoint);
  const path = url.pathname.replace(/\/+$/, "");
  url.pathname = path.endsWith("/loki/api/v1/push") ? path : `${path}/loki/api/v1/push`;
  return url.toString();
}

export const lokiSink = defineSink({
  type: "loki",
  description: "Pushes records to Grafana Loki / Grafana Cloud Logs as JSON streams with low-cardinality labels.",
  writesLine: true,
  options: v.pipe(
    v.strictObject({
      /**
       * Loki base URL, e.g. `https://logs-prod-012.grafana.net` (Grafana Cloud: the URL shown on the
       * stack's Loki page) or `http://loki:3100`; `/loki/api/v1/push` is appended. Required.
       */
      endpoint: endpointOption.required,
      /**
       * Credential. With `username`: HTTP basic auth `username:apiKey` (Grafana Cloud: the numeric
       * user / instance id and an access policy token with `logs:write`). Without `username`:
       * `Authorization: Bearer <apiKey>`. Unset or empty: no Authorization header (a Loki without
       * auth). Default: the secret `LOKI_API_KEY` when it is set.
       */
      apiKey: v.optional(v.pipe(v.string(), headerSafe)),
      /** Basic-auth user; when set, basic auth is used instead of a bearer token. Default none. */
      username: v.optional(
        v.pipe(
          v.string(),
          v.minLength(1, "must not be empty"),
          v.check((s) => !s.includes(":"), "must not contain a colon (basic auth)"),
          headerSafe,
        ),
      ),
      /** Tenant id, sent as `X-Scope-OrgID` (multi-tenant Loki). Default none. */
      tenant: v.optional(credentialOption),
      /**
       * Record fields used as stream labels. Keep them few and low-cardinality; high-cardinality
       * fields (id, invocationId, url, ...) are refused. Default `["script", "outcome", "level", "eventType"]`.
       */
      labels: v.optional(
        v.pipe(
          v.array(labelField),
          v.check((a) => new Set(a).size === a.length, "must not list a field twice"),
        ),
        ["script", "outcome", "level", "eventType"],
      ),
      /** Fixed labels added to every stream, e.g. `{ job = "tailfan", env = "prod" }`. Default `{}`. */
      staticLabels: v.optional(
        v.record(
          v.pipe(
            v.string(),
            v.regex(LABEL_NAME, "must be a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            v.check((k) => !k.startsWith("__"), "must not start with __ (reserved by Loki)"),
          ),
          v.pipe(
            v.string(),
            v.minLength(1, "must not be empty"),
            v.maxLength(MAX_LABEL_VALUE_BYTES, `must be at most ${MAX_LABEL_VALUE_BYTES} characters`),
          ),
        ),
        {},
      ),
      gzip: gzipOption(true),
      ...batchOptions({ maxRecords: 1000, maxBytes: 1024 * 1024 }, { maxBytes: 8 * 1024 * 1024 }),
    }),
    v.forward(
      v.check(
        (o) => o.labels.some((l) => ALWAYS_PRESENT.includes(l as LabelField)) || Object.keys(o.staticLabels).length > 0,
        `must include one of ${ALWAYS_PRESENT.join(", ")}, or set staticLabels: Loki refuses a stream without labels`,
      ),
      ["labels"],
    ),
    v.forward(
      v.check(
        (o) => !Object.keys(o.staticLabels).some((k) => o.labels.includes(k)),
        "a static label has the same name as a record label",
      ),
      ["staticLabels"],
    ),
    v.forward(
      v.check(
        (o) => o.labels.length + Object.keys(o.staticLabels).length <= MAX_LABELS,
        `labels and staticLabels together must be at most ${MAX_LABELS} (Loki's max_label_names_per_series)`,
      ),
      ["labels"],
    ),
  ),
  batch: batchFromOptions(MAX_LINE_BYTES),
  defaultSecrets: { apiKey: "LOKI_API_KEY" },
  create(o) {
    const fields = o.labels as LabelField[];
    const url = endpointUrl(o.endpoint);
    const headers: Record<string, string> = {};
    if (o.apiKey) {
      headers.authorization =
        o.username !== undefined ? `Basic ${base64Utf8(`${o.username}:${o.apiKey}`)}` : `Bearer ${o.apiKey}`;
    }
    if (o.tenant !== undefined) headers["x-scope-orgid"] = o.tenant;

    const labelsOf = (record: LogRecord): Record<string, string> => {
      const labels: Record<string, string> = {};
      for (const field of fields) {
        const value = LABEL_FIELDS[field](record);
        // Loki drops empty label values; leave the label out instead.
        if (typeof value === "string" && value !== "") labels[field] = truncateUtf8(value, MAX_LABEL_VALUE_BYTES);
      }
      for (const [k, value] of Object.entries(o.staticLabels)) labels[k] = value;
      return labels;
    };

    return {
      encode(batch: readonly SerializedRecord[]): LokiPayload {
        const streams = new Map<string, { labels: string; entries: { ms: number; i: number }[] }>();
        batch.forEach((item, i) => {
          const labels = JSON.stringify(labelsOf(item.record));
          let stream = streams.get(labels);
          if (!stream) {
            stream = { labels, entries: [] };
            streams.set(labels, stream);
          }
          const ms = item.record.timestamp;
          stream.entries.push({ ms: Number.isFinite(ms) ? ms : 0, i });
        });
        let body = '{"streams":[';
        let first = true;
        for (const stream of streams.values()) {
          // Oldest first within a stream; equal times keep batch order (sort is stable).
          stream.entries.sort((a, b) => a.ms - b.ms);
          body += `${first ? "" : ","}{"stream":${stream.labels},"values":[`;
          first = false;
          stream.entries.forEach((e, n) => {
            const line = (batch[e.i] as SerializedRecord).line;
            body += `${n > 0 ? "," : ""}["${unixNanos(e.ms)}",${JSON.stringify(line)}]`;
          });
          body += "]}";
        }
        body += "]}";
        return { body, streams: streams.size, records: batch.length };
      },
      send(payload, signal) {
        return postPayload({ url, body: payload.body, contentType: "application/json", headers, gzip: o.gzip }, signal);
      },
    };
  },
});
