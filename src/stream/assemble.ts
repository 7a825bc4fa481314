/**
 * One streamed invocation's events assembled into records: the TraceItem
 * they stand for, normalized by the same code as tail()'s, each record given
 * its span context (trace id, span id), and one `span` record per span.
 * No I/O and no Workers-only import, so Node can run it too (the traces
 * wire test does).
 */
import { toJson } from "../json";
import { normalizeTraceItem } from "../normalize";
import { streamEvent, streamEventType } from "../normalize/events";
import {
  CONTEXT_KEYS,
  type EventType,
  type InvocationContext,
  type Json,
  type LogRecord,
  type SpanKind,
  type SpanRecord,
  type SpanStatusCode,
} from "../record";

type Event = TailStream.TailEvent<TailStream.EventType>;

interface OpenSpan {
  spanId: string;
  parentSpanId: string | null;
  name: string;
  kind: SpanKind;
  start: number;
  end: number | null;
  outcome: string | null;
  status: { code: SpanStatusCode; message?: string } | null;
  attributes: { [key: string]: Json };
}

interface Placed {
  timestamp: number;
  spanId: string | undefined;
}

/** A runtime timestamp (a Date; JSON fixtures carry an ISO string) as epoch ms. */
function ms(v: unknown, fallback: number): number {
  const t = v instanceof Date ? v.getTime() : typeof v === "string" ? Date.parse(v) : typeof v === "number" ? v : NaN;
  return Number.isFinite(t) ? t : fallback;
}

/** A runtime attribute value as JSON: bigints become decimal strings when unsafe, numbers otherwise. */
function attributeValue(v: unknown): Json {
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (Array.isArray(v)) return v.map(attributeValue);
  return toJson(v);
}

function addAttributes(to: { [key: string]: Json }, list: readonly TailStream.Attribute[] | undefined): void {
  if (!Array.isArray(list)) return;
  for (const a of list) {
    if (a && typeof a.name === "string" && a.name !== "") to[a.name] = attributeValue(a.value);
  }
}

/**
 * One invocation's events, assembled. `push` takes the events after the
 * onset in the runtime's order; after `outcome`, `records` gives the records.
 */
export class InvocationAssembly {
  readonly invocationId: string;
  readonly traceId: string;
  private readonly onset: TailStream.Onset;
  private readonly eventType: EventType;
  private readonly start: number;
  private readonly root: OpenSpan;
  private readonly spans = new Map<string, OpenSpan>();
  private readonly logs: (Placed & { level: string; message: unknown; errorInfo?: unknown })[] = [];
  private readonly exceptions: (Placed & { name: string; message: string; stack?: string })[] = [];
  private readonly diagnostics: (Placed & { channel: string; message: unknown })[] = [];
  private status: number | undefined;
  private truncated = false;
  private outcome: TailStream.Outcome | null = null;
  private end = 0;

  constructor(onset: TailStream.TailEvent<TailStream.Onset>, now = Date.now()) {
    this.onset = onset.event;
    this.invocationId = String(onset.invocationId);
    this.traceId = String(onset.spanContext?.traceId ?? "");
    this.start = ms(onset.timestamp, now);
    const { eventType, rootKind } = streamEventType(this.onset.info);
    this.eventType = eventType;
    this.root = {
      spanId: String(this.onset.spanId),
      parentSpanId: onset.spanContext?.spanId ?? null,
      name: "",
      kind: rootKind,
      start: this.start,
      end: null,
      outcome: null,
      status: null,
      attributes: {},
    };
    addAttributes(this.root.attributes, this.onset.attributes);
    this.spans.set(this.root.spanId, this.root);
  }

  /** Whether the outcome has arrived: the invocation is over. */
  get done(): boolean {
    return this.outcome !== null;
  }

  push(ev: Event): void {
    // The outcome ends the invocation: anything after it belongs to no record.
    if (this.outcome !== null) return;
    const e = ev.event;
    const at = ms(ev.timestamp, this.start);
    const spanId = ev.spanContext?.spanId;
    switch (e.type) {
      case "log":
        this.logs.push({ timestamp: at, spanId, level: e.level, message: e.message, errorInfo: e.errorInfo });
        if (e.truncated === true) this.truncated = true;
        return;
      case "exception":
        this.exceptions.push({
          timestamp: at,
          spanId,
          name: e.name,
          message: e.message,
          ...(e.stack !== undefined ? { stack: e.stack } : {}),
        });
        return;
      case "diagnosticChannel":
        this.diagnostics.push({ timestamp: at, spanId, channel: e.channel, message: e.message });
        return;
      case "spanOpen":
        this.openSpan(e, at, spanId);
        return;
      case "spanClose": {
        const span = spanId === undefined ? undefined : this.spans.get(spanId);
        if (span && span !== this.root) {
          span.end = at;
          span.outcome = e.outcome;
        }
        return;
      }
      case "spanUpdate":
        this.updateSpan(e, spanId);
        return;
      case "attributes": {
        const span = (spanId === undefined ? undefined : this.spans.get(spanId)) ?? this.root;
        addAttributes(span.attributes, e.info);
        return;
      }
      case "return":
        if (e.info?.type === "fetch") this.status = e.info.statusCode;
        return;
      case "streamDiagnostic":
        // The runtime dropped events of this invocation: say so, as tail() does for cut logs.
        this.truncated = true;
        return;
      case "outcome":
        this.outcome = e;
        this.end = at;
        return;
      default:
        return;
    }
  }

  /** A span the runtime opened; its opening event is reported in its parent's context. */
  private openSpan(e: TailStream.SpanOpen, at: number, parentSpanId: string | undefined): void {
    const span: OpenSpan = {
      spanId: String(e.spanId),
      parentSpanId: parentSpanId ?? this.root.spanId,
      name: String(e.name),
      // Spans the runtime opens inside an invocation are its calls out: subrequests and bindings.
      kind: "client",
      start: at,
      end: null,
      outcome: null,
      status: null,
      attributes: {},
    };
    if (e.info?.type === "attributes") addAttributes(span.attributes, e.info.info);
    else if (e.info?.type === "fetch") {
      span.attributes["http.request.method"] = e.info.method;
      span.attributes["url.full"] = e.info.url;
    }
    this.spans.set(span.spanId, span);
  }

  private updateSpan(e: TailStream.SpanUpdate, spanId: string | undefined): void {
    const span = spanId === undefined ? undefined : this.spans.get(spanId);
    if (!span) return;
    if (e.info.type === "name") span.name = String(e.info.name);
    else if (e.info.type === "status") span.status = { ...e.info.status };
  }

  /** The TraceItem these events stand for, in the shape tail() receives. */
  traceItem(): Record<string, unknown> {
    const o = this.onset;
    const item: Record<string, unknown> = {
      event: streamEvent(o.info, this.status),
      eventTimestamp: this.start,
      logs: this.logs.map((l) => ({
        timestamp: l.timestamp,
        level: l.level,
        message: l.message,
        ...(l.errorInfo !== undefined ? { errorInfo: l.errorInfo } : {}),
      })),
      exceptions: this.exceptions.map(({ spanId: _, ...x }) => x),
      diagnosticsChannelEvents: this.diagnostics.map(({ spanId: _, ...d }) => d),
      scriptName: o.scriptName ?? null,
      entrypoint: o.entrypoint ?? null,
      scriptVersion: o.scriptVersion ?? null,
      dispatchNamespace: o.dispatchNamespace ?? null,
      scriptTags: o.scriptTags ?? [],
      durableObjectId: o.durableObjectId ?? null,
      outcome: this.outcome?.outcome ?? "unknown",
      executionModel: o.executionModel ?? null,
      truncated: this.truncated,
      cpuTime: this.outcome?.cpuTime ?? 0,
      wallTime: this.outcome?.wallTime ?? 0,
    };
    if (o.preview !== undefined) item.preview = o.preview;
    return item;
  }

  /**
   * The invocation's records: tail()'s records of the equivalent TraceItem,
   * keyed by the runtime's invocation id and carrying their span context,
   * then one span record per span, the invocation's own first.
   */
  records(now = Date.now()): LogRecord[] {
    const records = normalizeTraceItem(this.traceItem(), 0, now, this.eventType);
    const placed: (Placed | undefined)[] = [undefined, ...this.logs, ...this.exceptions, ...this.diagnostics];
    const id = this.invocationId;
    for (let i = 0; i < records.length; i++) {
      const r = records[i] as LogRecord;
      r.invocationId = id;
      r.id = `${id}-${i}`;
      r.traceId = this.traceId;
      r.spanId = placed[i]?.spanId ?? this.root.spanId;
    }
    const first = records[0];
    if (!first) return records;
    // The invocation span: named and described by its invocation record.
    const root = this.root;
    root.end = this.end;
    root.outcome = first.outcome;
    if (root.name === "") root.name = first.method ?? first.eventType;
    const rootAttrs: { [key: string]: Json } = { "faas.invocation_id": id };
    if (first.method !== undefined) rootAttrs["http.request.method"] = first.method;
    if (first.url !== undefined) rootAttrs["url.full"] = first.url;
    if (first.status !== undefined) rootAttrs["http.response.status_code"] = first.status;
    if (first.cron !== undefined) rootAttrs["faas.cron"] = first.cron;
    if (first.queue !== undefined) rootAttrs["messaging.destination.name"] = first.queue;
    root.attributes = { ...rootAttrs, ...root.attributes };
    // An uncaught exception fails the span even when the invocation's outcome is ok (a rejected waitUntil).
    if (root.status === null && (first.level === "error" || first.outcome !== "ok" || this.exceptions.length > 0)) {
      const ex = this.exceptions[0];
      root.status = { code: "error", message: ex ? `${ex.name}: ${ex.message}` : first.outcome };
    }
    let seq = records.length;
    for (const span of this.spans.values()) records.push(this.spanRecord(span, first, `${id}-${seq++}`));
    return records;
  }

  private spanRecord(span: OpenSpan, ctx: LogRecord, id: string): SpanRecord {
    // A span the runtime never closed ends with the invocation.
    const end = Math.max(span.start, span.end ?? this.end);
    const outcome = span.outcome ?? (span === this.root ? ctx.outcome : "unknown");
    const status = span.status ?? (outcome === "ok" || outcome === "unknown" ? null : { code: "error" as const });
    const durationMs = end - span.start;
    const rec: SpanRecord = {
      ...contextOf(ctx),
      id,
      type: "span",
      timestamp: span.start,
      level: status?.code === "error" ? "warn" : "debug",
      message: `span ${span.name} ${durationMs}ms ${outcome}`,
      traceId: this.traceId,
      spanId: span.spanId,
      parentSpanId: span.parentSpanId,
      name: span.name,
      kind: span.kind,
      startTime: span.start,
      endTime: end,
      durationMs,
      spanOutcome: outcome,
      statusCode: status?.code ?? "unset",
      attributes: span.attributes,
    };
    if (status?.message !== undefined) rec.statusMessage = status.message;
    return rec;
  }
}

/** The invocation context of a record: what every record of the invocation carries. */
function contextOf(r: LogRecord): InvocationContext {
  const out: Record<string, unknown> = {};
  for (const k of CONTEXT_KEYS) if (r[k] !== undefined) out[k] = r[k];
  return out as unknown as InvocationContext;
}
