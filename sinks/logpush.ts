/**
 * `format = "logpush"` (http, r2, kv): the records of one invocation
 * regrouped into one line with the field names and shapes of the Logpush
 * `workers_trace_events` dataset, so queries and dashboards written for
 * Logpush keep working. docs/logpush.md gives each field's source.
 *
 * Records are regrouped within one batch: an invocation whose records a
 * batch limit splits (more than `maxRecords`, or over `maxBytes`) gives one
 * line per batch it spans, each with the invocation's fields.
 */
import type { LogRecord, SerializedRecord } from "./types";

/** The dataset's fields, in the order the dataset page lists them. */
export const LOGPUSH_FIELDS = [
  "CPUTimeMs",
  "DispatchNamespace",
  "Entrypoint",
  "Event",
  "EventTimestampMs",
  "EventType",
  "Exceptions",
  "Logs",
  "Outcome",
  "ScriptName",
  "ScriptTags",
  "ScriptVersion",
  "WallTimeMs",
] as const;

export type LogpushLine = Record<(typeof LOGPUSH_FIELDS)[number], unknown>;

/** tailfan's event type names where the dataset has its own. */
const EVENT_TYPES: Record<string, string> = { rpc: "worker_rpc", websocket: "hibernatable_web_socket" };

/** Event fields of the event types other than fetch: tailfan's context fields under the dataset's casing. */
const EVENT_FIELDS: [keyof LogRecord, string][] = [
  ["cron", "Cron"],
  ["scheduledTime", "ScheduledTimeMs"],
  ["queue", "Queue"],
  ["batchSize", "BatchSize"],
  ["mailFrom", "MailFrom"],
  ["rcptTo", "RcptTo"],
  ["rawSize", "RawSize"],
  ["rpcMethod", "RpcMethod"],
  ["webSocketEventType", "WebSocketEventType"],
  ["webSocketCode", "Code"],
  ["webSocketClean", "WasClean"],
  ["hibernateReason", "Reason"],
  ["tailScripts", "ConsumedScripts"],
];

const int = (n: unknown) => (typeof n === "number" && Number.isFinite(n) ? Math.round(n) : 0);

/** The Ray ID of a fetch event: the `cf-ray` request header without its data-centre suffix. */
function rayIdOf(invocation: LogRecord | undefined): string | undefined {
  if (invocation?.type !== "invocation") return undefined;
  const headers = (invocation.event as { request?: { headers?: Record<string, unknown> } } | null)?.request?.headers;
  const ray = headers?.["cf-ray"];
  return typeof ray === "string" && ray !== "" ? (ray.split("-")[0] as string) : undefined;
}

function eventOf(r: LogRecord, invocation: LogRecord | undefined): Record<string, unknown> {
  if (r.eventType === "fetch") {
    const event: Record<string, unknown> = {};
    const ray = rayIdOf(invocation);
    if (ray !== undefined) event.RayID = ray;
    const request: Record<string, unknown> = {};
    if (r.url !== undefined) request.URL = r.url;
    if (r.method !== undefined) request.Method = r.method;
    event.Request = request;
    if (r.status !== undefined) event.Response = { Status: r.status };
    return event;
  }
  const event: Record<string, unknown> = {};
  for (const [field, name] of EVENT_FIELDS) if (r[field] !== undefined) event[name] = r[field];
  return event;
}

/** One invocation's records (in batch order) as one dataset line. */
export function logpushLine(records: readonly LogRecord[]): LogpushLine {
  const r = records[0] as LogRecord;
  const invocation = records.find((x) => x.type === "invocation");
  const logs: unknown[] = [];
  const exceptions: unknown[] = [];
  for (const x of records) {
    if (x.type === "log") {
      logs.push({ Level: x.logLevel, Message: x.args ?? [x.message], TimestampMs: int(x.timestamp) });
    } else if (x.type === "exception") {
      exceptions.push({ Name: x.exceptionName, Message: x.message, TimestampMs: int(x.timestamp) });
    }
  }
  const v = r.scriptVersion;
  return {
    CPUTimeMs: int(r.cpuTime),
    DispatchNamespace: r.dispatchNamespace ?? "",
    Entrypoint: r.entrypoint ?? "",
    Event: eventOf(r, invocation),
    EventTimestampMs: int(r.eventTimestamp ?? invocation?.timestamp ?? r.timestamp),
    EventType: EVENT_TYPES[r.eventType] ?? r.eventType,
    Exceptions: exceptions,
    Logs: logs,
    Outcome: r.outcome,
    ScriptName: r.scriptName ?? "",
    ScriptTags: r.scriptTags ?? [],
    ScriptVersion: v
      ? { ID: v.id ?? "", Tag: v.tag ?? "", Message: v.message ?? "" }
      : { ID: "", Tag: "", Message: "" },
    WallTimeMs: int(r.wallTime),
  };
}

/** A batch's records grouped by invocation, in order of first appearance. */
export function byInvocation(batch: readonly SerializedRecord[]): SerializedRecord[][] {
  const groups = new Map<string, SerializedRecord[]>();
  for (const item of batch) {
    const list = groups.get(item.record.invocationId);
    if (list) list.push(item);
    else groups.set(item.record.invocationId, [item]);
  }
  return [...groups.values()];
}

/** NDJSON of the batch in the dataset's shape: one line per invocation. */
export function logpushNdjson(batch: readonly SerializedRecord[]): string {
  let out = "";
  for (const group of byInvocation(batch)) out += `${JSON.stringify(logpushLine(group.map((i) => i.record)))}\n`;
  return out;
}

/** Why a sink in this format takes no shaping. */
export const LOGPUSH_NO_SHAPING =
  "format = \"logpush\" writes the dataset's own fields, not the record's JSON, so shaping does not apply; remove the shaping or the format";
