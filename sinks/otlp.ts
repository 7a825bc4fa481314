import * as v from "valibot";
import { CONTEXT_KEYS, type Json, type Level, type LogRecord } from "../src/record";
import { VERSION } from "../src/version";
import {
  appendPath,
  type BodyPayload,
  batchFromOptions,
  batchOptions,
  bodySink,
  endpointOption,
  gzipOption,
  headersOption,
  type OkReader,
  parseJson,
} from "./shared";
import { defineSink, type SerializedRecord } from "./types";

/**
 * OTLP/HTTP logs in the JSON encoding (opentelemetry-proto
 * `ExportLogsServiceRequest`, proto3 JSON mapping with OTLP's exceptions):
 * field names lowerCamelCase, enums as integers, 64-bit integers as decimal
 * strings, trace and span ids as hex. Pure TypeScript apart from `fetch`, so
 * Node can import it (the wire test decodes its output with the official
 * protobuf types).
 */

/** An OTLP `AnyValue`: exactly one of these keys, or none for an empty value. */
export type AnyValue =
  | { stringValue: string }
  | { boolValue: boolean }
  | { intValue: string }
  | { doubleValue: number }
  | { arrayValue: { values: AnyValue[] } }
  | { kvlistValue: { values: KeyValue[] } }
  | Record<string, never>;

export interface KeyValue {
  key: string;
  value: AnyValue;
}

export interface OtlpLogRecord {
  timeUnixNano: string;
  observedTimeUnixNano: string;
  severityNumber: number;
  severityText: string;
  body: AnyValue;
  attributes: KeyValue[];
  /** Hex; only for records of the streaming tail, which knows their span context. */
  traceId?: string;
  spanId?: string;
}

export interface OtlpRequest {
  resourceLogs: {
    resource: { attributes: KeyValue[] };
    scopeLogs: { scope: { name: string; version: string }; logRecords: OtlpLogRecord[] }[];
  }[];
}

/** A request body ready to send, before optional gzip. */
export type OtlpPayload = BodyPayload;

/** OpenTelemetry `SeverityNumber`: DEBUG 5, INFO 9, WARN 13, ERROR 17. */
export const SEVERITY_NUMBER: Readonly<Record<Level, number>> = { debug: 5, info: 9, log: 9, warn: 13, error: 17 };

/** `faas.trigger` (semantic conventions: http, pubsub, timer, datasource, other) by event type. */
const FAAS_TRIGGER: Readonly<Record<string, string>> = {
  fetch: "http",
  scheduled: "timer",
  alarm: "timer",
  queue: "pubsub",
};

/**
 * Record fields with an OpenTelemetry semantic-convention name. Every other
 * field becomes `cloudflare.<snake_case>`. `timestamp`, `level` and `message`
 * are the log record's time, severity and body; `scriptName` is the resource.
 */
const SEMCONV: Readonly<Record<string, string>> = {
  id: "log.record.uid",
  invocationId: "faas.invocation_id",
  method: "http.request.method",
  url: "url.full",
  status: "http.response.status_code",
  colo: "cloud.region",
  country: "geo.country.iso_code",
  cron: "faas.cron",
  queue: "messaging.destination.name",
  batchSize: "messaging.batch.message_count",
  rpcMethod: "rpc.method",
  exceptionName: "exception.type",
  stack: "exception.stacktrace",
};

/** Fields carried elsewhere in the log record or the resource. */
const NOT_ATTRIBUTES = new Set(["timestamp", "level", "message", "scriptName", "traceId", "spanId"]);

/** Units in the name where the record's field has one. */
const RENAMED: Readonly<Record<string, string>> = {
  type: "cloudflare.record_type",
  cpuTime: "cloudflare.cpu_time_ms",
  wallTime: "cloudflare.wall_time_ms",
  eventTimestamp: "cloudflare.event_timestamp_ms",
  scheduledTime: "cloudflare.scheduled_time_ms",
};

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Attribute names already worked out: a record field's name is looked up once, not once per record. */
const NAMES = new Map<string, string>();

/** The attribute name of a record field. */
export function attributeName(field: string): string {
  let name = NAMES.get(field);
  if (name === undefined) {
    // Own keys only: a field named like an Object.prototype member ("constructor") is not a name in the tables.
    name =
      (Object.hasOwn(SEMCONV, field) ? SEMCONV[field] : undefined) ??
      (Object.hasOwn(RENAMED, field) ? RENAMED[field] : undefined) ??
      `cloudflare.${snake(field)}`;
    // Record fields are a fixed set plus what shaping adds: a bound keeps hostile names from growing it.
    if (NAMES.size < 1024) NAMES.set(field, name);
  }
  return name;
}

/** A JSON value as an OTLP AnyValue: integers as intValue strings, other numbers as doubleValue, null as empty. */
export function anyValue(value: Json | undefined): AnyValue {
  if (value === null || value === undefined) return {};
  switch (typeof value) {
    case "string":
      return { stringValue: value };
    case "boolean":
      return { boolValue: value };
    case "number":
      if (Number.isSafeInteger(value)) return { intValue: String(value) };
      return { doubleValue: value };
  }
  if (Array.isArray(value)) return { arrayValue: { values: value.map(anyValue) } };
  // OTLP keys must not be empty; an empty key from application data is kept under a visible name.
  return {
    kvlistValue: {
      values: Object.entries(value).map(([key, x]) => ({ key: key === "" ? "(empty)" : key, value: anyValue(x) })),
    },
  };
}

/** Epoch milliseconds (possibly fractional) as decimal nanoseconds, exact for any integer ms. */
export function unixNano(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "0";
  const whole = Math.floor(ms);
  const frac = Math.round((ms - whole) * 1e6);
  return (BigInt(whole) * 1_000_000n + BigInt(frac)).toString();
}

/** The attributes of one record: semantic-convention names where they exist, `cloudflare.*` for the rest. */
export function recordAttributes(record: LogRecord): KeyValue[] {
  const out: KeyValue[] = [];
  const fields = record as unknown as Record<string, Json | undefined>;
  for (const field of Object.keys(fields)) {
    if (NOT_ATTRIBUTES.has(field)) continue;
    const value = fields[field];
    // Absent, null and empty values are left out rather than sent empty.
    if (value === undefined || value === null) continue;
    if (Array.isArray(value) && value.length === 0) continue;
    if (typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0) continue;
    out.push({ key: attributeName(field), value: anyValue(value) });
    if (field === "eventType")
      out.push({ key: "faas.trigger", value: { stringValue: FAAS_TRIGGER[value as string] ?? "other" } });
  }
  if (record.type === "exception") out.push({ key: "exception.message", value: { stringValue: record.message } });
  return out;
}

/** One record as an OTLP LogRecord. The runtime's time is both the event time and the observed time. */
export function logRecord(record: LogRecord): OtlpLogRecord {
  const time = unixNano(record.timestamp);
  const out: OtlpLogRecord = {
    timeUnixNano: time,
    observedTimeUnixNano: time,
    severityNumber: SEVERITY_NUMBER[record.level] ?? 0,
    severityText: record.level,
    body: { stringValue: record.message },
    attributes: recordAttributes(record),
  };
  // Ids the collector would refuse (not 32 and 16 hex digits) are left out rather than sent.
  if (record.traceId !== undefined && TRACE_ID.test(record.traceId)) {
    out.traceId = record.traceId.toLowerCase();
    if (record.spanId !== undefined && SPAN_ID.test(record.spanId)) out.spanId = record.spanId.toLowerCase();
  }
  return out;
}

/** W3C trace and span ids: 16 and 8 bytes as hex, not all zero. */
export const TRACE_ID = /^(?!0{32})[0-9a-fA-F]{32}$/;
export const SPAN_ID = /^(?!0{16})[0-9a-fA-F]{16}$/;

/** Resource attributes for one script's records. */
export function resourceAttributes(script: string | null, serviceName: string | undefined): KeyValue[] {
  const attrs: KeyValue[] = [
    { key: "service.name", value: { stringValue: serviceName ?? script ?? "tailfan" } },
    { key: "cloud.provider", value: { stringValue: "cloudflare" } },
    { key: "cloud.platform", value: { stringValue: "cloudflare.workers" } },
  ];
  if (script !== null) attrs.push({ key: "faas.name", value: { stringValue: script } });
  return attrs;
}

/** The request for a batch: one resourceLogs per script, in order of first appearance. */
export function otlpRequest(batch: readonly SerializedRecord[], serviceName?: string): OtlpRequest {
  const groups = new Map<string | null, OtlpLogRecord[]>();
  for (const item of batch) {
    const script = item.record.scriptName ?? null;
    let list = groups.get(script);
    if (!list) {
      list = [];
      groups.set(script, list);
    }
    list.push(logRecord(item.record));
  }
  return {
    resourceLogs: [...groups].map(([script, logRecords]) => ({
      resource: { attributes: resourceAttributes(script, serviceName) },
      scopeLogs: [{ scope: { name: "tailfan", version: VERSION }, logRecords }],
    })),
  };
}

const q = JSON.stringify;

/** An AnyValue as JSON, written directly: the same text as `JSON.stringify(anyValue(value))`. */
export function anyValueJson(value: Json | undefined): string {
  if (value === null || value === undefined) return "{}";
  switch (typeof value) {
    case "string":
      return `{"stringValue":${q(value)}}`;
    case "boolean":
      return value ? '{"boolValue":true}' : '{"boolValue":false}';
    case "number":
      if (Number.isSafeInteger(value)) return `{"intValue":"${String(value)}"}`;
      return `{"doubleValue":${q(value)}}`;
  }
  if (Array.isArray(value)) {
    let out = '{"arrayValue":{"values":[';
    for (let i = 0; i < value.length; i++) out += `${i > 0 ? "," : ""}${anyValueJson(value[i])}`;
    return `${out}]}}`;
  }
  let out = '{"kvlistValue":{"values":[';
  let first = true;
  for (const key of Object.keys(value)) {
    out += `${first ? "" : ","}{"key":${q(key === "" ? "(empty)" : key)},"value":${anyValueJson(value[key])}}`;
    first = false;
  }
  return `${out}]}}`;
}

const CONTEXT = new Set<string>(CONTEXT_KEYS);

/**
 * Writes a batch's OTLP JSON without building the request object. The
 * invocation context is the same for every record of an invocation, so each
 * context field's attribute text is kept from the record before and reused
 * while its value is the same.
 */
class OtlpWriter {
  private readonly last = new Map<string, { value: unknown; json: string }>();

  /** One attribute (`{"key":...,"value":...}`, with a leading comma unless first), or "" when left out. */
  private attribute(field: string, value: Json | undefined): string {
    // Absent, null and empty values are left out rather than sent empty.
    if (value === undefined || value === null) return "";
    if (typeof value === "object") {
      if (Array.isArray(value) ? value.length === 0 : Object.keys(value).length === 0) return "";
    }
    let json = `{"key":${q(attributeName(field))},"value":${anyValueJson(value)}}`;
    if (field === "eventType")
      json += `,{"key":"faas.trigger","value":{"stringValue":${q(FAAS_TRIGGER[value as string] ?? "other")}}}`;
    return json;
  }

  private attributes(record: LogRecord): string {
    const fields = record as unknown as Record<string, Json | undefined>;
    let out = "";
    for (const field of Object.keys(fields)) {
      if (NOT_ATTRIBUTES.has(field)) continue;
      const value = fields[field];
      let json: string;
      if (CONTEXT.has(field)) {
        const kept = this.last.get(field);
        if (kept !== undefined && kept.value === value) json = kept.json;
        else {
          json = this.attribute(field, value);
          this.last.set(field, { value, json });
        }
      } else json = this.attribute(field, value);
      if (json !== "") out += out === "" ? json : `,${json}`;
    }
    if (record.type === "exception") {
      const message = record.message === undefined ? "{}" : `{"stringValue":${q(record.message)}}`;
      const json = `{"key":"exception.message","value":${message}}`;
      out += out === "" ? json : `,${json}`;
    }
    return out;
  }

  /** One LogRecord; the same text as `JSON.stringify(logRecord(record))`. */
  logRecord(record: LogRecord): string {
    const time = unixNano(record.timestamp);
    let out = `{"timeUnixNano":"${time}","observedTimeUnixNano":"${time}","severityNumber":${SEVERITY_NUMBER[record.level] ?? 0}`;
    if (record.level !== undefined) out += `,"severityText":${q(record.level)}`;
    out += record.message === undefined ? ',"body":{}' : `,"body":{"stringValue":${q(record.message)}}`;
    out += `,"attributes":[${this.attributes(record)}]`;
    if (record.traceId !== undefined && TRACE_ID.test(record.traceId)) {
      out += `,"traceId":${q(record.traceId.toLowerCase())}`;
      if (record.spanId !== undefined && SPAN_ID.test(record.spanId))
        out += `,"spanId":${q(record.spanId.toLowerCase())}`;
    }
    return `${out}}`;
  }
}

/**
 * The request body for a batch: the same text as
 * `JSON.stringify(otlpRequest(batch, serviceName))`, written directly.
 */
export function otlpBody(batch: readonly SerializedRecord[], serviceName?: string): string {
  const writer = new OtlpWriter();
  const groups = new Map<string | null, string>();
  for (const item of batch) {
    const script = item.record.scriptName ?? null;
    const json = writer.logRecord(item.record);
    const list = groups.get(script);
    groups.set(script, list === undefined ? json : `${list},${json}`);
  }
  const scope = `"scopeLogs":[{"scope":{"name":"tailfan","version":${q(VERSION)}},"logRecords":[`;
  let out = '{"resourceLogs":[';
  let first = true;
  for (const [script, logRecords] of groups) {
    const resource = q(resourceAttributes(script, serviceName));
    out += `${first ? "" : ","}{"resource":{"attributes":${resource}},${scope}${logRecords}]}]}`;
    first = false;
  }
  return `${out}]}`;
}

/**
 * Reads an `ExportLogsServiceResponse`. `partialSuccess.rejectedLogRecords > 0`
 * means the collector refused that many records for good (the spec forbids
 * retrying them) without saying which; an `errorMessage` alone is a warning.
 * Returns what to warn about, or null.
 */
export function partialSuccess(
  response: unknown,
  field: "rejectedLogRecords" | "rejectedSpans" | "rejectedDataPoints" = "rejectedLogRecords",
): { rejected: number; message: string } | null {
  if (!response || typeof response !== "object") return null;
  const p = (response as { partialSuccess?: unknown }).partialSuccess;
  if (!p || typeof p !== "object") return null;
  const { [field]: rejectedCount, errorMessage } = p as Record<string, unknown>;
  // int64 in proto3 JSON: a decimal string, though some servers send a number.
  const rejected = Number(rejectedCount ?? 0);
  const message = typeof errorMessage === "string" ? errorMessage.replace(/\s+/g, " ").trim().slice(0, 200) : "";
  if (!(rejected > 0) && !message) return null;
  return { rejected: Number.isFinite(rejected) && rejected > 0 ? rejected : 0, message };
}

/** The three OTLP/HTTP signals tailfan sends: each sink type's path and what a partial success counts. */
const SIGNALS = {
  logs: { type: "otlp", path: "/v1/logs", field: "rejectedLogRecords", items: "log record(s)" },
  traces: { type: "otlp_traces", path: "/v1/traces", field: "rejectedSpans", items: "span(s)" },
  metrics: { type: "otlp_metrics", path: "/v1/metrics", field: "rejectedDataPoints", items: "data point(s)" },
} as const;

export type OtlpSignal = keyof typeof SIGNALS;

/** The warning logged for a partial success, naming the sink. */
export function partialSuccessWarning(
  sink: string,
  p: { rejected: number; message: string },
  signal: OtlpSignal = "logs",
): string {
  const { type, items } = SIGNALS[signal];
  const what =
    p.rejected > 0
      ? `the collector rejected ${p.rejected} ${items} of this batch (not retried, per the OTLP spec)`
      : "the collector accepted the batch with a warning";
  return `tailfan: sink "${sink}" (${type}): ${what}${p.message ? `: ${p.message}` : ""}`;
}

/**
 * How every OTLP sink posts one signal: to `<endpoint>/v1/<signal>`, JSON,
 * gzipped from `gzipMinBytes`, and a 2xx with a partial success is ok (the
 * accepted items must not be sent again, and which were rejected is unknown)
 * with a warning.
 */
export function otlpPost(
  sink: string,
  signal: OtlpSignal,
  o: { endpoint: string; headers: Record<string, string>; gzip: boolean; gzipMinBytes?: number },
): {
  url: string;
  contentType: string;
  headers: Record<string, string>;
  gzip: boolean;
  gzipMinBytes?: number;
  onOk: OkReader;
} {
  const { path, field } = SIGNALS[signal];
  return {
    url: appendPath(o.endpoint, path),
    contentType: "application/json",
    headers: o.headers,
    gzip: o.gzip,
    ...(o.gzipMinBytes === undefined ? {} : { gzipMinBytes: o.gzipMinBytes }),
    onOk(text, response) {
      const partial = partialSuccess(parseJson(text), field);
      if (partial) console.warn(partialSuccessWarning(sink, partial, signal));
      return { outcome: "ok", status: response.status };
    },
  };
}

export const otlpSink = defineSink({
  type: "otlp",
  description: "Sends records as OTLP/HTTP JSON logs to an OpenTelemetry Collector or any OTLP backend.",
  options: v.strictObject({
    /** Base URL of the OTLP/HTTP receiver, e.g. `https://otel.example.com:4318`; `/v1/logs` is appended. Required. */
    endpoint: endpointOption.required,
    /** Extra request headers (auth, tenant); values may reference secrets as `${NAME}`. Default none. */
    headers: headersOption,
    /** `service.name` of every record. Default: the producer's script name, else `tailfan`. */
    serviceName: v.optional(v.pipe(v.string(), v.minLength(1, "must not be empty"))),
    gzip: gzipOption(true),
    /**
     * With `gzip`: bodies smaller than this many bytes go uncompressed, which every OTLP receiver takes (it is
     * the exporters' default); setting up the compression costs more CPU than one invocation's body is worth.
     * `0` gzips every body. Default `32768`.
     */
    gzipMinBytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0)), 32 * 1024),
    // The OTLP JSON is about twice as long as the record JSON that maxBytes counts.
    ...batchOptions({ maxRecords: 1000, maxBytes: 1024 * 1024 }, { maxBytes: 50 * 1024 * 1024 }),
  }),
  batch: batchFromOptions(),
  create(o, ctx) {
    const { onOk, ...post } = otlpPost(ctx.name, "logs", o);
    return bodySink((batch) => otlpBody(batch, o.serviceName), { ...post, onOk: () => onOk });
  },
});
