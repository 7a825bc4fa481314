/**
 * The event kinds tailfan knows, one entry each: how to recognise it (the
 * runtime's class name, or its shape in JSON), the context fields it gives
 * every record of the invocation, its summary line, its part of the
 * invocation id, and what the streaming tail calls it. EVENT_TYPES and the
 * EventType union derive from this table.
 */
import type { InvocationContext, SpanKind } from "../record";
import { arr, bool, copyFields, get, isObj, num, type Obj, str, timeOf } from "./read";

/**
 * The streaming tail's onset infos, by type, as the Workers types declare
 * them (TailStream.Onset["info"]). Written out so that code running in Node
 * (the traces wire test) can import the normalizer without those types.
 */
interface StreamInfos {
  fetch: { method: string; url: string; cfJson?: object; headers: readonly { name: string; value: string }[] };
  jsrpc: object;
  scheduled: { scheduledTime: Date; cron: string };
  alarm: { scheduledTime: Date };
  queue: { queueName: string; batchSize: number };
  email: { mailFrom: string; rcptTo: string; rawSize: number };
  trace: { traces: readonly (string | null)[] };
  hibernatableWebSocket: {
    info: { type: "message" } | { type: "error" } | { type: "close"; code: number; wasClean: boolean };
  };
  onHibernate: { reason: string };
  custom: object;
  connect: object;
}
type InfoType = keyof StreamInfos;
type OnsetInfo = { [T in InfoType]: { readonly type: T } & Readonly<StreamInfos[T]> }[InfoType];

/** The streaming tail's side of a kind: its onset info and the TraceItem `event` that info stands for. */
interface StreamSide<T extends InfoType> {
  info: T;
  /** The invocation's own span: `server` for requests, `consumer` for deliveries. */
  rootKind: SpanKind;
  /** The TraceItem `event` the onset's info stands for, in the shape tail() receives. */
  event(info: Extract<OnsetInfo, { type: T }>, status: number | undefined): unknown;
}

export interface EventKind {
  /** Class name of the event info object the runtime hands tail(): the surest hint. */
  runtimeClass: string;
  /** Recognises the event from its JSON shape (captures, replays lose the class); null: it cannot be. */
  recognise: ((event: Obj) => boolean) | null;
  /** Copies the event's fields that every record of the invocation carries. */
  context?(event: Obj, ctx: InvocationContext): void;
  /** The invocation record's message, the outcome left out. */
  summary(ctx: InvocationContext): string;
  /** What tells this invocation from others of its script at the same time: part of the invocation id. */
  idPart?(ctx: InvocationContext): string | undefined;
  stream: { [T in InfoType]: StreamSide<T> }[InfoType];
}

const stream = <T extends InfoType>(
  info: T,
  rootKind: SpanKind,
  event: StreamSide<T>["event"] = () => ({}),
): StreamSide<T> => ({ info, rootKind, event });

/** The fields a scheduled or an alarm event carries. */
function scheduledContext(event: Obj, ctx: InvocationContext): void {
  copyFields(ctx, event, { cron: ["cron", str], scheduledTime: ["scheduledTime", timeOf] });
}

function fetchContext(event: Obj, ctx: InvocationContext): void {
  const request = get(event, "request");
  if (isObj(request)) {
    copyFields(ctx, request, { method: ["method", str], url: ["url", str] });
    const cf = get(request, "cf");
    if (isObj(cf)) copyFields(ctx, cf, { colo: ["colo", str], country: ["country", str] });
  }
  const response = get(event, "response");
  if (isObj(response)) copyFields(ctx, response, { status: ["status", num] });
}

function fetchFromStream(info: Extract<OnsetInfo, { type: "fetch" }>, status: number | undefined): unknown {
  const headers: Record<string, string> = {};
  for (const h of Array.isArray(info.headers) ? info.headers : []) {
    const name = String(h.name).toLowerCase();
    headers[name] = name in headers ? `${headers[name]}, ${h.value}` : String(h.value);
  }
  return {
    request: { method: info.method, url: info.url, headers, ...(info.cfJson ? { cf: info.cfJson } : {}) },
    ...(status !== undefined ? { response: { status } } : {}),
  };
}

function webSocketContext(event: Obj, ctx: InvocationContext): void {
  const ws = get(event, "getWebSocketEvent");
  if (!isObj(ws)) return;
  copyFields(ctx, ws, {
    webSocketEventType: ["webSocketEventType", str],
    webSocketCode: ["code", num],
    webSocketClean: ["wasClean", bool],
  });
}

/**
 * The kinds, in the order EVENT_TYPES lists them. Recognition from JSON tries
 * them in this order too; the shapes do not overlap in anything the runtime sends.
 */
export const EVENT_KINDS = {
  fetch: {
    runtimeClass: "FetchEventInfo",
    recognise: (e) => "request" in e,
    context: fetchContext,
    summary: (c) => `${c.method ?? "?"} ${c.url ?? "?"} ${c.status ?? "-"}`,
    idPart: (c) => c.url,
    stream: stream("fetch", "server", fetchFromStream),
  },
  scheduled: {
    runtimeClass: "ScheduledEventInfo",
    recognise: (e) => "cron" in e,
    context: scheduledContext,
    summary: (c) => `scheduled "${c.cron ?? ""}"`,
    idPart: (c) => c.cron,
    stream: stream("scheduled", "consumer", (info) => ({ cron: info.cron, scheduledTime: info.scheduledTime })),
  },
  alarm: {
    runtimeClass: "AlarmEventInfo",
    recognise: (e) => "scheduledTime" in e,
    context: scheduledContext,
    summary: () => "alarm",
    idPart: (c) => c.cron,
    stream: stream("alarm", "consumer", (info) => ({ scheduledTime: info.scheduledTime })),
  },
  queue: {
    runtimeClass: "QueueEventInfo",
    recognise: (e) => "queue" in e && "batchSize" in e,
    context: (event, ctx) => copyFields(ctx, event, { queue: ["queue", str], batchSize: ["batchSize", num] }),
    summary: (c) => `queue ${c.queue ?? "?"} (${c.batchSize ?? 0} messages)`,
    idPart: (c) => c.queue,
    stream: stream("queue", "consumer", (info) => ({ queue: info.queueName, batchSize: info.batchSize })),
  },
  email: {
    runtimeClass: "EmailEventInfo",
    recognise: (e) => "mailFrom" in e || "rcptTo" in e,
    context: (event, ctx) =>
      copyFields(ctx, event, { mailFrom: ["mailFrom", str], rcptTo: ["rcptTo", str], rawSize: ["rawSize", num] }),
    summary: (c) => `email from ${c.mailFrom ?? "?"} to ${c.rcptTo ?? "?"}`,
    stream: stream("email", "consumer", (info) => ({
      mailFrom: info.mailFrom,
      rcptTo: info.rcptTo,
      rawSize: info.rawSize,
    })),
  },
  rpc: {
    runtimeClass: "JsRpcEventInfo",
    recognise: (e) => "rpcMethod" in e,
    context: (event, ctx) => copyFields(ctx, event, { rpcMethod: ["rpcMethod", str] }),
    summary: (c) => `rpc ${c.rpcMethod ?? "?"}`,
    idPart: (c) => c.rpcMethod,
    stream: stream("jsrpc", "server"),
  },
  websocket: {
    runtimeClass: "HibernatableWebSocketEventInfo",
    recognise: (e) => "getWebSocketEvent" in e,
    context: webSocketContext,
    summary: (c) => `websocket ${c.webSocketEventType ?? "?"}`,
    stream: stream("hibernatableWebSocket", "server", ({ info: ws }) => ({
      getWebSocketEvent: {
        webSocketEventType: ws?.type,
        ...(ws?.type === "close" ? { code: ws.code, wasClean: ws.wasClean } : {}),
      },
    })),
  },
  tail: {
    runtimeClass: "TailEventInfo",
    recognise: (e) => "consumedEvents" in e,
    context(event, ctx) {
      // Array.from, not map: a sparse array must not leave holes in the record.
      ctx.tailScripts = Array.from(arr(get(event, "consumedEvents")), (c) =>
        isObj(c) ? str(get(c, "scriptName")) : null,
      );
    },
    summary: (c) => `tail of ${c.tailScripts?.length ?? 0} events`,
    stream: stream("trace", "consumer", (info) => ({
      consumedEvents: (Array.isArray(info.traces) ? info.traces : []).map((scriptName) => ({ scriptName })),
    })),
  },
  // Connect and custom events carry no fields; without the runtime class
  // (JSON captures, replays) they cannot be told apart: an empty event reads as custom.
  connect: {
    runtimeClass: "ConnectEventInfo",
    recognise: null,
    summary: () => "connect",
    stream: stream("connect", "server"),
  },
  hibernate: {
    runtimeClass: "OnHibernateEventInfo",
    recognise: (e) => "reason" in e && Object.keys(e).length === 1,
    context: (event, ctx) => copyFields(ctx, event, { hibernateReason: ["reason", str] }),
    summary: (c) => `hibernate ${c.hibernateReason ?? "?"}`,
    stream: stream("onHibernate", "internal", (info) => ({ reason: info.reason })),
  },
  custom: {
    runtimeClass: "CustomEventInfo",
    recognise: (e) => Object.keys(e).length === 0,
    summary: () => "custom",
    stream: stream("custom", "internal"),
  },
} as const satisfies Record<string, EventKind>;

/** Event types tailfan recognises; `none` has no event, anything else arrives as `unknown` with the raw event kept. */
export type EventType = keyof typeof EVENT_KINDS | "none" | "unknown";

export const EVENT_TYPES: readonly EventType[] = [
  ...(Object.keys(EVENT_KINDS) as (keyof typeof EVENT_KINDS)[]),
  "none",
  "unknown",
];

const KINDS = Object.entries(EVENT_KINDS) as [keyof typeof EVENT_KINDS, EventKind][];
const BY_CLASS = new Map(KINDS.map(([type, kind]) => [kind.runtimeClass, type]));
const BY_STREAM_INFO = new Map<string, [keyof typeof EVENT_KINDS, EventKind]>(
  KINDS.map(([type, kind]) => [kind.stream.info, [type, kind]]),
);

/** The kind of a known event type; undefined for `none` and `unknown`. */
export function eventKind(type: EventType): EventKind | undefined {
  return type === "none" || type === "unknown" ? undefined : EVENT_KINDS[type];
}

function className(event: Obj): unknown {
  return (Object.getPrototypeOf(event) as { constructor?: { name?: unknown } } | null)?.constructor?.name;
}

/** An event info object made by the runtime (its class name is known), not user data. */
export function isRuntimeEvent(event: unknown): boolean {
  if (!isObj(event)) return false;
  const name = className(event);
  return typeof name === "string" && BY_CLASS.has(name);
}

/** Recognises the event type from the runtime class name or, for JSON input, the event's shape. */
export function detectEventType(event: unknown): EventType {
  if (event === null || event === undefined) return "none";
  if (!isObj(event)) return "unknown";
  const name = className(event);
  const byClass = typeof name === "string" ? BY_CLASS.get(name) : undefined;
  if (byClass) return byClass;
  for (const [type, kind] of KINDS) if (kind.recognise?.(event)) return type;
  return "unknown";
}

/** The invocation record's message: the kind's summary, then the outcome. */
export function invocationSummary(ctx: InvocationContext): string {
  const kind = eventKind(ctx.eventType);
  return `${kind ? kind.summary(ctx) : ctx.eventType} ${ctx.outcome}`;
}

/** The event type of a streaming tail onset's info, and its invocation span's kind. */
export function streamEventType(info: OnsetInfo | undefined): { eventType: EventType; rootKind: SpanKind } {
  const found = info ? BY_STREAM_INFO.get(info.type) : undefined;
  if (!found) return { eventType: "unknown", rootKind: "internal" };
  return { eventType: found[0], rootKind: found[1].stream.rootKind };
}

/** The TraceItem `event` a streaming tail onset's info stands for, in the shape tail() receives. */
export function streamEvent(info: OnsetInfo | undefined, status: number | undefined): unknown {
  if (!info) return null;
  const found = BY_STREAM_INFO.get(info.type);
  if (!found) return {};
  // The entry was found by this info's own type, so its builder takes this info.
  return (found[1].stream.event as (i: OnsetInfo, s: number | undefined) => unknown)(info, status);
}
