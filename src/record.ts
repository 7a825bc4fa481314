/**
 * The LogRecord: one line a log backend stores. Field names here are the
 * names that routes, sink options and README.md refer to; keep them stable.
 */

/** Record kinds: one `invocation` per TraceItem, one `log` per console call, one `span` per streamed span, ... */
export type RecordType = "invocation" | "log" | "exception" | "diagnostic" | "span";

export const RECORD_TYPES: readonly RecordType[] = ["invocation", "log", "exception", "diagnostic", "span"];

/** Levels in ascending severity; `log` ranks with `info`. */
export type Level = "debug" | "info" | "log" | "warn" | "error";

export const LEVELS: readonly Level[] = ["debug", "info", "log", "warn", "error"];

const LEVEL_RANK: Record<Level, number> = { debug: 0, info: 1, log: 1, warn: 2, error: 3 };

export function levelRank(level: Level): number {
  return LEVEL_RANK[level];
}

import type { EventType } from "./normalize/events";

export { EVENT_TYPES, type EventType } from "./normalize/events";

/** A JSON value: what every record is made of, so `JSON.stringify` never throws on it. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

export interface ScriptVersionInfo {
  id?: string;
  tag?: string;
  message?: string;
}

/**
 * The invocation context every record carries. Event fields that do not apply
 * to an invocation's event type are absent (not null), so they cost nothing.
 */
export interface InvocationContext {
  /** Ties the records of one invocation together; derived from the TraceItem, so stable across replays. */
  invocationId: string;
  scriptName: string | null;
  scriptVersion: ScriptVersionInfo | null;
  entrypoint: string | null;
  executionModel: string | null;
  dispatchNamespace: string | null;
  scriptTags: string[];
  durableObjectId: string | null;
  outcome: string;
  eventType: EventType;
  /** Epoch ms at which the runtime received the event. */
  eventTimestamp: number | null;
  cpuTime: number;
  wallTime: number;
  /** The runtime cut this invocation's logs (over 256 KiB). */
  truncated: boolean;
  // fetch
  method?: string;
  url?: string;
  status?: number;
  colo?: string;
  country?: string;
  // scheduled, alarm
  cron?: string;
  scheduledTime?: number;
  // queue
  queue?: string;
  batchSize?: number;
  // email
  mailFrom?: string;
  rcptTo?: string;
  rawSize?: number;
  // rpc
  rpcMethod?: string;
  // hibernatable WebSocket
  webSocketEventType?: string;
  webSocketCode?: number;
  webSocketClean?: boolean;
  // hibernate
  hibernateReason?: string;
  // tail
  tailScripts?: (string | null)[];
}

/** Every context field, checked by the compiler: a new one must be listed here. */
const CONTEXT_FIELDS: Record<keyof InvocationContext, true> = {
  invocationId: true,
  scriptName: true,
  scriptVersion: true,
  entrypoint: true,
  executionModel: true,
  dispatchNamespace: true,
  scriptTags: true,
  durableObjectId: true,
  outcome: true,
  eventType: true,
  eventTimestamp: true,
  cpuTime: true,
  wallTime: true,
  truncated: true,
  method: true,
  url: true,
  status: true,
  colo: true,
  country: true,
  cron: true,
  scheduledTime: true,
  queue: true,
  batchSize: true,
  mailFrom: true,
  rcptTo: true,
  rawSize: true,
  rpcMethod: true,
  webSocketEventType: true,
  webSocketCode: true,
  webSocketClean: true,
  hibernateReason: true,
  tailScripts: true,
};

/** The invocation context's field names, in record order: shared by every record of an invocation. */
export const CONTEXT_KEYS = Object.keys(CONTEXT_FIELDS) as (keyof InvocationContext)[];

interface RecordBase extends InvocationContext {
  /** `<invocationId>-<position>`: stable, so at-least-once duplicates can be spotted. */
  id: string;
  type: RecordType;
  /** Epoch ms from the runtime. */
  timestamp: number;
  level: Level;
  /** Human-readable line. */
  message: string;
  /** W3C trace id (32 hex digits): known only for records from the streaming tail (`tailStream`). */
  traceId?: string;
  /** The span (16 hex digits) the record happened in: the invocation's own span or a subrequest's; `tailStream` only. */
  spanId?: string;
  /** tailfan cut this record to fit LIMITS; absent when nothing was cut. */
  limited?: true;
  /** Top-level fields that were cut, in record order. */
  limitedFields?: string[];
}

export interface InvocationRecord extends RecordBase {
  type: "invocation";
  /** The event exactly as the runtime sent it (headers, cf, ...), as JSON. */
  event: Json;
  logCount: number;
  exceptionCount: number;
  diagnosticCount: number;
  tailAttributes?: { [key: string]: Json };
  preview?: Json;
  /** TraceItem fields this version does not know yet, kept as they came. */
  extra?: { [key: string]: Json };
}

export interface LogLineRecord extends RecordBase {
  type: "log";
  /** The console method as the runtime reported it (`log`, `info`, `debug`, `warn`, `error`, ...). */
  logLevel: string;
  /** The console arguments, when any was not a string (objects stay queryable). */
  args?: Json[];
  /** Errors passed to console.*, with name, message and stack. */
  errors?: Json[];
}

export interface ExceptionRecord extends RecordBase {
  type: "exception";
  exceptionName: string;
  stack?: string;
}

export interface DiagnosticRecord extends RecordBase {
  type: "diagnostic";
  channel: string;
  data: Json;
}

/** OpenTelemetry span kinds, lower case. */
export type SpanKind = "server" | "client" | "internal" | "consumer";

/** Span status, as the runtime and OpenTelemetry have it. */
export type SpanStatusCode = "unset" | "ok" | "error";

/**
 * One span of a streamed invocation: the invocation's own (kind `server` or
 * `consumer`) or one the runtime opened inside it (a subrequest, a binding call).
 */
export interface SpanRecord extends RecordBase {
  type: "span";
  traceId: string;
  spanId: string;
  /** The span this one runs in; null for the root of a trace. */
  parentSpanId: string | null;
  name: string;
  kind: SpanKind;
  /** Epoch ms (also `timestamp`). */
  startTime: number;
  /** Epoch ms; the start time when the runtime never closed the span. */
  endTime: number;
  durationMs: number;
  /** The runtime's outcome of the span (`ok`, `exception`, `canceled`, ...). */
  spanOutcome: string;
  statusCode: SpanStatusCode;
  statusMessage?: string;
  /** The runtime's span attributes, with their OpenTelemetry names (`http.request.method`, `url.full`, ...). */
  attributes: { [key: string]: Json };
}

export type LogRecord = InvocationRecord | LogLineRecord | ExceptionRecord | DiagnosticRecord | SpanRecord;

/** A record and its JSON line, serialized once and shared by every sink. */
export interface SerializedRecord {
  readonly record: LogRecord;
  /** `JSON.stringify(record)`, no trailing newline. */
  readonly line: string;
  /** UTF-8 length of `line` (may be measured lazily: `line.length <= bytes <= 3 * line.length`). */
  readonly bytes: number;
}
