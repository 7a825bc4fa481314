import { describe, expect, it } from "vitest";
import { type OtlpTracePayload, otlpTraceRequest, otlpTracesSink } from "../../sinks/otlp-traces";
import { serializeRecord } from "../../src/json";
import type { SerializedRecord } from "../../src/record";
import { InvocationAssembly } from "../../src/stream";
import { queueCutShort, rpcInherited, type StreamFixture, scheduledWithSpans } from "../fixtures/tail-stream.synthetic";
import { sinkContract } from "./contract";
import { makeSink, received, receiverUrl, someRecords } from "./helpers";

const base = receiverUrl();

/** The records of synthetic streamed invocations, serialized. */
function streamed(...fixtures: StreamFixture[]): SerializedRecord[] {
  return fixtures.flatMap((f) => {
    const a = new InvocationAssembly(f.onset);
    for (const e of f.events) a.push(e);
    return a.records(0).map(serializeRecord);
  });
}
const spans = () => streamed(scheduledWithSpans);

sinkContract({
  def: otlpTracesSink,
  valid: { endpoint: `${base}/ok/contract-traces` },
  resolved: {
    endpoint: `${base}/ok/contract-traces`,
    headers: {},
    gzip: true,
    gzipMinBytes: 32768,
    maxRecords: 1000,
    maxBytes: 1024 * 1024,
  },
  invalid: [
    { name: "a relative endpoint", options: { endpoint: "/otlp" }, path: "endpoint" },
    { name: "gzip as a string", options: { endpoint: `${base}/ok/x`, gzip: "yes" }, path: "gzip" },
    { name: "maxRecords 0", options: { endpoint: `${base}/ok/x`, maxRecords: 0 }, path: "maxRecords" },
  ],
  rejecting: [
    { name: "the endpoint refuses connections", options: { endpoint: "http://127.0.0.1:1" }, records: spans },
    { name: "the endpoint answers 503", options: { endpoint: `${base}/status/503/contract-traces` }, records: spans },
    { name: "the endpoint answers 400", options: { endpoint: `${base}/status/400/contract-traces` }, records: spans },
  ],
  // The contract's abort test sends records of tail(), which hold no span: nothing is sent, so nothing to abort.
  abortIsHonoured: false,
});

describe("otlp_traces sink", () => {
  it("sends span records only, to /v1/traces, one resourceSpans per script version", async () => {
    const label = "traces-send";
    const { sink } = makeSink<OtlpTracePayload>(otlpTracesSink, { endpoint: `${base}/ok/${label}`, gzip: false });
    const records = [...someRecords(2, "tail-only"), ...streamed(scheduledWithSpans, queueCutShort, rpcInherited)];
    const payload = sink.encode(records);
    expect(payload.spans).toBe(records.filter((r) => r.record.type === "span").length);
    expect(await sink.send(payload, new AbortController().signal)).toMatchObject({ outcome: "ok", status: 200 });
    const [req] = await received(label);
    expect(req?.path).toBe(`/ok/${label}/v1/traces`);
    expect(req?.headers["content-type"]).toBe("application/json");
    const body = JSON.parse(req?.body ?? "{}") as ReturnType<typeof otlpTraceRequest>;
    const services = body.resourceSpans.map((r) =>
      Object.fromEntries(r.resource.attributes.map((a) => [a.key, Object.values(a.value)[0]])),
    );
    expect(services).toEqual([
      {
        "service.name": "billing",
        "cloud.provider": "cloudflare",
        "cloud.platform": "cloudflare.workers",
        "faas.name": "billing",
        "faas.version": "7d3c5b2e-0000-4000-8000-000000000001",
      },
      {
        "service.name": "mailer",
        "cloud.provider": "cloudflare",
        "cloud.platform": "cloudflare.workers",
        "faas.name": "mailer",
      },
      {
        "service.name": "users",
        "cloud.provider": "cloudflare",
        "cloud.platform": "cloudflare.workers",
        "faas.name": "users",
      },
    ]);
  });

  it("a batch with no span sends nothing and counts as delivered", async () => {
    const label = "traces-none";
    const { sink } = makeSink<OtlpTracePayload>(otlpTracesSink, { endpoint: `${base}/ok/${label}` });
    const payload = sink.encode(someRecords(3, "tail-only"));
    expect(payload).toEqual({ body: null, spans: 0 });
    expect(await sink.send(payload, new AbortController().signal)).toEqual({ outcome: "ok" });
    expect(await received(label)).toEqual([]);
  });

  it("a span whose ids are not W3C ids is left out rather than failing the batch at the collector", () => {
    const good = spans();
    const bad = good.map((s) =>
      s.record.type === "span" && s.record.parentSpanId === null
        ? serializeRecord({ ...s.record, traceId: "local" })
        : s,
    );
    const count = (rs: SerializedRecord[]) =>
      otlpTraceRequest(rs).resourceSpans.reduce((n, r) => n + (r.scopeSpans[0]?.spans.length ?? 0), 0);
    expect(count(bad)).toBe(count(good) - 1);
  });

  it("an abort mid-send turns into a retry", async () => {
    const { sink } = makeSink<OtlpTracePayload>(otlpTracesSink, { endpoint: `${base}/hang/traces-abort` });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new DOMException("test aborted", "AbortError")), 50);
    const result = await sink.send(sink.encode(spans()), controller.signal);
    expect(result.outcome).not.toBe("ok");
  });
});
