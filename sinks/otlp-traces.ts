import type { Json, SpanKind, SpanRecord, SpanStatusCode } from "../src/record";
import { VERSION } from "../src/version";
import { anyValue, type KeyValue, otlpPost, otlpSink, resourceAttributes, SPAN_ID, TRACE_ID, unixNano } from "./otlp";
import { postPayload } from "./shared";
import { defineSink, type SendResult, type SerializedRecord } from "./types";

/**
 * OTLP/HTTP traces in the JSON encoding (opentelemetry-proto
 * `ExportTraceServiceRequest`): the `span` records of the streaming tail,
 * with the same options and conventions as the `otlp` logs sink.
 */

/** OpenTelemetry `SpanKind`: INTERNAL 1, SERVER 2, CLIENT 3, PRODUCER 4, CONSUMER 5. */
export const SPAN_KIND: Readonly<Record<SpanKind, number>> = { internal: 1, server: 2, client: 3, consumer: 5 };

/** OpenTelemetry `StatusCode`: UNSET 0, OK 1, ERROR 2. */
export const STATUS_CODE: Readonly<Record<SpanStatusCode, number>> = { unset: 0, ok: 1, error: 2 };

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: KeyValue[];
  status: { code: number; message?: string };
}

export interface OtlpTraceRequest {
  resourceSpans: {
    resource: { attributes: KeyValue[] };
    scopeSpans: { scope: { name: string; version: string }; spans: OtlpSpan[] }[];
  }[];
}

/** `faas.trigger` by event type, as the logs sink names it. */
const FAAS_TRIGGER: Readonly<Record<string, string>> = {
  fetch: "http",
  scheduled: "timer",
  alarm: "timer",
  queue: "pubsub",
};

function attributes(span: SpanRecord): KeyValue[] {
  const out: KeyValue[] = [];
  for (const [key, value] of Object.entries(span.attributes)) out.push({ key, value: anyValue(value as Json) });
  const add = (key: string, value: Json | undefined) => {
    if (value !== undefined && value !== null && !(key in span.attributes)) out.push({ key, value: anyValue(value) });
  };
  add("cloudflare.outcome", span.spanOutcome);
  if (span.parentSpanId === null || span.kind === "server" || span.kind === "consumer") {
    // The invocation's own span describes the invocation.
    add("faas.trigger", FAAS_TRIGGER[span.eventType] ?? "other");
    add("faas.invocation_id", span.invocationId);
    add("cloudflare.event_type", span.eventType);
    add("cloudflare.entrypoint", span.entrypoint);
    add("cloud.region", span.colo);
  }
  return out;
}

/** One span record as an OTLP Span; null when its ids are not W3C ids (a collector would refuse the batch). */
export function otlpSpan(span: SpanRecord): OtlpSpan | null {
  if (!TRACE_ID.test(span.traceId) || !SPAN_ID.test(span.spanId)) return null;
  const out: OtlpSpan = {
    traceId: span.traceId.toLowerCase(),
    spanId: span.spanId.toLowerCase(),
    name: span.name,
    kind: SPAN_KIND[span.kind] ?? 0,
    startTimeUnixNano: unixNano(span.startTime),
    endTimeUnixNano: unixNano(span.endTime),
    attributes: attributes(span),
    status: { code: STATUS_CODE[span.statusCode] ?? 0 },
  };
  if (span.parentSpanId !== null && SPAN_ID.test(span.parentSpanId)) out.parentSpanId = span.parentSpanId.toLowerCase();
  if (span.statusMessage !== undefined && span.statusCode === "error") out.status.message = span.statusMessage;
  return out;
}

/** The resource of a script version: the logs sink's, plus `faas.version`. */
function resourceOf(span: SpanRecord, serviceName: string | undefined): KeyValue[] {
  const attrs = resourceAttributes(span.scriptName, serviceName);
  const version = span.scriptVersion?.id;
  if (version !== undefined) attrs.push({ key: "faas.version", value: { stringValue: version } });
  return attrs;
}

/** The request for a batch: its span records, one resourceSpans per script version. Other records are skipped. */
export function otlpTraceRequest(batch: readonly SerializedRecord[], serviceName?: string): OtlpTraceRequest {
  const groups = new Map<string, { resource: KeyValue[]; spans: OtlpSpan[] }>();
  for (const { record } of batch) {
    if (record.type !== "span") continue;
    const span = otlpSpan(record);
    if (span === null) continue;
    const key = `${record.scriptName}\u0000${record.scriptVersion?.id ?? ""}`;
    let group = groups.get(key);
    if (!group) {
      group = { resource: resourceOf(record, serviceName), spans: [] };
      groups.set(key, group);
    }
    group.spans.push(span);
  }
  return {
    resourceSpans: [...groups.values()].map((g) => ({
      resource: { attributes: g.resource },
      scopeSpans: [{ scope: { name: "tailfan", version: VERSION }, spans: g.spans }],
    })),
  };
}

export interface OtlpTracePayload {
  /** Null when the batch held no span to send. */
  body: string | null;
  spans: number;
}

export const otlpTracesSink = defineSink({
  type: "otlp_traces",
  description:
    "Sends the streaming tail's span records as OTLP/HTTP JSON traces to an OpenTelemetry Collector or any OTLP backend.",
  // The logs sink's options, unchanged; `/v1/traces` is appended to the endpoint.
  options: otlpSink.options,
  batch: otlpSink.batch,
  create(o, ctx) {
    const post = otlpPost(ctx.name, "traces", o);
    return {
      encode(batch): OtlpTracePayload {
        const request = otlpTraceRequest(batch, o.serviceName);
        const spans = request.resourceSpans.reduce((n, r) => n + (r.scopeSpans[0]?.spans.length ?? 0), 0);
        return { body: spans === 0 ? null : JSON.stringify(request), spans };
      },
      async send(payload, signal): Promise<SendResult> {
        // Records that are not spans have nothing to say as a trace: taken, nothing sent.
        if (payload.body === null) return { outcome: "ok" };
        return postPayload({ ...post, body: payload.body }, signal);
      },
    };
  },
});
