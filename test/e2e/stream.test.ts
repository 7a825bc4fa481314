/**
 * The streaming tail end to end on the real runtime: a producer runs in
 * workerd with `streamingTails: ["tailfan"]`, and is tailed the classic way
 * (`tails`) at the same time. tailfan's `tailStream` handler assembles each
 * invocation's events into records that go through the same delivery: to an
 * R2 archive, the otlp logs sink and the otlp_traces sink, whose body is
 * decoded through the official protobuf definitions.
 */
import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogRecord, SpanRecord } from "../../src/record";
import { type Receiver, startReceiver } from "../support/receiver";
import { type Bundle, bundleTailfan, readNdjsonObjects, until } from "./helpers";
import { attrs, decodeTraces, spansOf } from "./traces-wire";

let mf: Miniflare;
let receiver: Receiver;
let bundle: Bundle;

const SINKS = [
  { name: "archive", type: "r2", binding: "LOGS_R2", prefix: "stream" },
  { name: "otel", type: "otlp", endpoint: "", gzip: false },
  { name: "traces", type: "otlp_traces", endpoint: "", gzip: true },
];
const ROUTES = [
  { sinks: ["archive"] },
  { sinks: ["otel"], types: ["invocation", "log", "exception"] },
  { sinks: ["traces"], types: ["span"] },
];

beforeAll(async () => {
  receiver = await startReceiver();
  bundle = await bundleTailfan();
  const sinks = SINKS.map((s) =>
    s.name === "otel"
      ? { ...s, endpoint: `${receiver.url}/ok/logs` }
      : s.name === "traces"
        ? { ...s, endpoint: `${receiver.url}/ok/traces` }
        : s,
  );
  mf = new Miniflare(
    convertV4MiniflareOptions({
      workers: [
        {
          name: "producer",
          modules: true,
          scriptPath: join(import.meta.dirname, "stream-producer.js"),
          compatibilityDate: "2025-11-01",
          bindings: { UPSTREAM: receiver.url },
          tails: ["tailfan"],
          streamingTails: ["tailfan"],
        },
        {
          name: "tailfan",
          modules: true,
          scriptPath: bundle.script,
          modulesRoot: bundle.dir,
          compatibilityDate: "2025-11-01",
          bindings: { SINKS: JSON.stringify(sinks), ROUTES: JSON.stringify(ROUTES) },
          r2Buckets: ["LOGS_R2"],
        },
      ],
    }),
  );
  await mf.ready;
});

afterAll(async () => {
  await mf?.dispose();
  await receiver?.close();
  bundle?.remove();
});

async function hit(path: string) {
  const res = await mf.dispatchFetch(`http://localhost${path}`, {
    headers: { authorization: "Bearer producer-stream-secret" },
  });
  await res.arrayBuffer();
  return res.status;
}

async function archived(): Promise<LogRecord[]> {
  return readNdjsonObjects<LogRecord>(await mf.getR2Bucket("LOGS_R2", "tailfan"), "stream/");
}

/** What a record says, without what only one of the two tails can know (ids, span context, raw event). */
function gist(r: LogRecord): Record<string, unknown> {
  const g: Record<string, unknown> = { type: r.type, level: r.level, message: r.message, scriptName: r.scriptName };
  for (const k of ["outcome", "eventType", "method", "url", "status", "logLevel", "args", "exceptionName"] as const) {
    const value = (r as unknown as Record<string, unknown>)[k];
    if (value !== undefined) g[k] = value;
  }
  return g;
}
const byText = (a: Record<string, unknown>, b: Record<string, unknown>) =>
  JSON.stringify(a).localeCompare(JSON.stringify(b));

describe("producer with streamingTails → workerd → tailfan's tailStream → R2, OTLP logs, OTLP traces", () => {
  const traffic = ["/ok?n=1", "/throw?n=2", "/sub"];
  // Per invocation, tail() gives: /ok invocation + log; /throw invocation + warn + exception; /sub invocation + info.
  const classic = 2 + 3 + 2;
  // The streaming tail gives the same, plus a span per invocation and the subrequest's span.
  const streamed = classic + 3 + 1;
  let all: LogRecord[] = [];
  let fromStream: LogRecord[] = [];
  let fromTail: LogRecord[] = [];

  beforeAll(async () => {
    for (const path of traffic) await hit(path);
    all = await until(
      "both tails' records in the R2 archive",
      archived,
      (rs) => rs.length >= classic + streamed,
      20_000,
      (rs) => `${rs.length} records`,
    );
    // Every span at the traces receiver, every log record at the logs receiver (both tails send logs).
    await until(
      "the traces and logs requests",
      () => receiver.received,
      (rs) =>
        rs.filter((r) => r.label === "traces").reduce((n, r) => n + spansOf(decodeTraces(r.body)).length, 0) >= 4 &&
        rs.filter((r) => r.label === "logs").reduce((n, r) => n + (r.body.match(/"timeUnixNano"/g)?.length ?? 0), 0) >=
          classic * 2,
    );
    // Then a moment more, so that a record delivered twice would show.
    await new Promise((r) => setTimeout(r, 500));
    all = await archived();
    fromStream = all.filter((r) => r.traceId !== undefined);
    fromTail = all.filter((r) => r.traceId === undefined);
  });

  it("the streaming tail gives tail()'s records for the same invocations, and the spans besides", () => {
    expect(fromTail).toHaveLength(classic);
    expect(fromStream).toHaveLength(streamed);
    const nonSpan = fromStream.filter((r) => r.type !== "span");
    expect(nonSpan.map(gist).sort(byText)).toEqual(fromTail.map(gist).sort(byText));
    expect(fromStream.filter((r) => r.type === "span")).toHaveLength(4);
    // Ids are unique and keyed by the runtime's invocation id.
    expect(new Set(fromStream.map((r) => r.id)).size).toBe(fromStream.length);
    for (const r of fromStream) expect(r.id).toMatch(new RegExp(`^${r.invocationId}-\\d+$`));
  });

  it("every streamed record carries the trace id of its invocation and the span it happened in", () => {
    const byInvocation = new Map<string, LogRecord[]>();
    for (const r of fromStream) byInvocation.set(r.invocationId, [...(byInvocation.get(r.invocationId) ?? []), r]);
    expect(byInvocation.size).toBe(3);
    for (const records of byInvocation.values()) {
      const traceIds = new Set(records.map((r) => r.traceId));
      expect(traceIds.size).toBe(1);
      expect([...traceIds][0]).toMatch(/^[0-9a-f]{32}$/);
      const root = records.find((r): r is SpanRecord => r.type === "span" && r.kind === "server");
      expect(root?.parentSpanId).toBeNull();
      for (const r of records.filter((x) => x.type !== "span")) expect(r.spanId).toBe(root?.spanId);
    }
  });

  it("the subrequest is a client span under the invocation's span, its URL scrubbed like any record", () => {
    const spans = fromStream.filter((r): r is SpanRecord => r.type === "span");
    const sub = spans.find((s) => s.kind === "client");
    const root = spans.find((s) => s.kind === "server" && s.url?.endsWith("/sub"));
    expect(sub).toBeDefined();
    expect(sub?.parentSpanId).toBe(root?.spanId);
    expect(sub?.traceId).toBe(root?.traceId);
    expect(sub?.name).toBe("fetch");
    expect(sub?.attributes["http.request.method"]).toBe("GET");
    expect(String(sub?.attributes["url.full"])).toContain("/ok/upstream?token=");
    expect(JSON.stringify(all)).not.toContain("sub-secret-token");
    // The onset's request headers are scrubbed as tail()'s are.
    expect(JSON.stringify(all)).not.toContain("producer-stream-secret");
    expect(receiver.received.some((r) => r.body.includes("producer-stream-secret"))).toBe(false);
    expect(sub?.startTime).toBeGreaterThanOrEqual(root?.startTime ?? Infinity);
    expect(sub?.endTime).toBeLessThanOrEqual(root?.endTime ?? -Infinity);
    // The invocation answered 502: its span is an error, the subrequest's is not.
    expect(root?.statusCode).toBe("error");
    expect(sub?.statusCode).toBe("unset");
  });

  it("the traces sink's body decodes as an ExportTraceServiceRequest: ids, parents, kinds, status, resource", () => {
    const bodies = receiver.received.filter((r) => r.label === "traces");
    for (const b of bodies) expect(b.path).toBe("/ok/traces/v1/traces");
    const spans = bodies.flatMap((b) => spansOf(decodeTraces(b.body)));
    const recorded = fromStream.filter((r): r is SpanRecord => r.type === "span");
    expect(spans.map((s) => s.spanId).sort()).toEqual(recorded.map((s) => s.spanId).sort());
    for (const s of spans) {
      const r = recorded.find((x) => x.spanId === s.spanId) as SpanRecord;
      expect(s.traceId).toBe(r.traceId);
      expect(s.parentSpanId).toBe(r.parentSpanId ?? "");
      expect(s.name).toBe(r.name);
      expect(s.kind).toBe(r.kind === "server" ? "SPAN_KIND_SERVER" : "SPAN_KIND_CLIENT");
      expect(s.startTimeUnixNano).toBe(String(BigInt(r.startTime) * 1_000_000n));
      expect(BigInt(s.endTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(s.startTimeUnixNano));
      // Local workerd names no script in the onset (nor in tail()'s TraceItems): service.name falls back to tailfan.
      expect(s.resource).toEqual({
        "service.name": r.scriptName ?? "tailfan",
        "cloud.provider": "cloudflare",
        "cloud.platform": "cloudflare.workers",
        ...(r.scriptName !== null ? { "faas.name": r.scriptName } : {}),
      });
    }
    const thrown = spans.find((s) => attrs(s)["url.full"] === "http://localhost/throw?n=2");
    expect(thrown?.status).toMatchObject({ code: "STATUS_CODE_ERROR", message: "Error: checkout failed for 2" });
    expect(attrs(thrown ?? { attributes: [] })).toMatchObject({
      "http.request.method": "GET",
      "faas.trigger": "http",
      "cloudflare.outcome": "exception",
    });
    const ok = spans.find((s) => attrs(s)["url.full"] === "http://localhost/ok?n=1");
    expect(attrs(ok ?? { attributes: [] })["http.response.status_code"]).toBe("200");
    expect(ok?.status.code).toBe("STATUS_CODE_UNSET");
  });

  it("the logs sink carries each streamed log's trace id and span id, and none for tail()'s", () => {
    const bodies = receiver.received.filter((r) => r.label === "logs");
    const logs = bodies.flatMap((b) =>
      (
        JSON.parse(b.body) as {
          resourceLogs: {
            scopeLogs: { logRecords: { body: { stringValue: string }; traceId?: string; spanId?: string }[] }[];
          }[];
        }
      ).resourceLogs.flatMap((rl) => rl.scopeLogs.flatMap((sl) => sl.logRecords)),
    );
    expect(logs).toHaveLength(classic * 2);
    const withIds = logs.filter((l) => l.traceId !== undefined);
    expect(withIds).toHaveLength(classic);
    for (const l of withIds) {
      const r = fromStream.find((x) => x.message === l.body.stringValue && x.type !== "span");
      expect(l.traceId).toBe(r?.traceId);
      expect(l.spanId).toBe(r?.spanId);
    }
  });
});
