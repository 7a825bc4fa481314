/**
 * The otlp_traces sink's JSON, from the synthetic streamed invocations (what
 * local workerd cannot emit: nested spans, renames, status updates, bigint
 * attributes, consumer and inherited spans), decoded through the official
 * `ExportTraceServiceRequest` protobuf type. The modules are loaded at run
 * time, as in otlp-wire.test.ts: the fixtures are typed against the Workers
 * types, which this Node-side project does not load.
 */
import { describe, expect, it } from "vitest";
import type { LogRecord, SerializedRecord, SpanRecord } from "../../src/record";
import { attrs, decodeTraces, spansOf } from "./traces-wire";

type Fixture = { onset: unknown; events: unknown[] };
const load = async <T>(path: string) => (await import(/* @vite-ignore */ path)) as T;
const fixtures = await load<Record<string, Fixture | Fixture[]>>("../fixtures/tail-stream.synthetic");
const { InvocationAssembly } = await load<{
  InvocationAssembly: new (onset: unknown) => { push(e: unknown): void; records(now?: number): LogRecord[] };
}>("../../src/stream/assemble");
const { serializeRecord } = await load<{ serializeRecord(r: LogRecord): SerializedRecord }>("../../src/json");
const { otlpTraceRequest } = await load<{
  otlpTraceRequest(batch: readonly SerializedRecord[], serviceName?: string): unknown;
}>("../../sinks/otlp-traces");

const records: LogRecord[] = Object.values(fixtures)
  .flatMap((f) => (Array.isArray(f) ? f : [f]))
  .filter((f): f is Fixture => typeof f === "object" && f !== null && "onset" in f)
  .flatMap((f) => {
    const a = new InvocationAssembly(f.onset);
    for (const e of f.events) a.push(e);
    return a.records(0);
  });
const spanRecords = records.filter((r): r is SpanRecord => r.type === "span");
const body = JSON.stringify(otlpTraceRequest(records.map(serializeRecord)));

describe("otlp_traces: synthetic streamed spans through the official protobuf types", () => {
  const spans = spansOf(decodeTraces(body));
  const byName = (name: string) => spans.find((s) => s.name === name);

  it("every span record decodes, and nothing else is in the request", () => {
    expect(spanRecords.length).toBeGreaterThan(10);
    expect(spans.map((s) => s.spanId).sort()).toEqual(spanRecords.map((s) => s.spanId).sort());
  });

  it("keeps parent links, kinds and status through protobuf", () => {
    const kv = byName("kv_get_bulk");
    const fetch = spans.find((s) => s.parentSpanId === kv?.spanId);
    expect(kv).toMatchObject({ parentSpanId: "a1a1a1a1a1a1a1a1", kind: "SPAN_KIND_CLIENT" });
    expect(fetch?.status).toEqual({ code: "STATUS_CODE_ERROR", message: "upstream answered 503" });
    expect(attrs(fetch ?? { attributes: [] })).toMatchObject({
      "http.request.method": "POST",
      "http.response.status_code": "503",
      "cloudflare.big": "9007199254740993",
    });
    const scheduled = spans.find((s) => s.spanId === "a1a1a1a1a1a1a1a1");
    expect(scheduled).toMatchObject({ kind: "SPAN_KIND_CONSUMER", parentSpanId: "" });
    expect(attrs(scheduled ?? { attributes: [] })).toMatchObject({ "faas.trigger": "timer", "faas.cron": "0 3 * * *" });
    expect(scheduled?.resource).toMatchObject({
      "service.name": "billing",
      "faas.version": "7d3c5b2e-0000-4000-8000-000000000001",
    });
    const rpc = spans.find((s) => s.spanId === "f6f6f6f6f6f6f6f6");
    expect(rpc).toMatchObject({ kind: "SPAN_KIND_SERVER", parentSpanId: "9999999999999999" });
    const hibernate = spanRecords.find((s) => s.eventType === "hibernate");
    expect(spans.find((s) => s.spanId === hibernate?.spanId)?.kind).toBe("SPAN_KIND_INTERNAL");
  });

  it("times are exact nanoseconds: start of every span, end never before it", () => {
    for (const s of spans) {
      const r = spanRecords.find((x) => x.spanId === s.spanId) as SpanRecord;
      expect(s.startTimeUnixNano).toBe(String(BigInt(r.startTime) * 1_000_000n));
      expect(s.endTimeUnixNano).toBe(String(BigInt(r.endTime) * 1_000_000n));
    }
  });
});
