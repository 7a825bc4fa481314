/**
 * `format = "logpush"` on the http, r2 and kv sinks: one line per invocation
 * with exactly the fields of the Logpush `workers_trace_events` dataset.
 */
import { describe, expect, it } from "vitest";
import type { HttpPayload } from "../../sinks/http";
import { httpSink } from "../../sinks/http";
import type { KvEntry } from "../../sinks/kv";
import { kvSink } from "../../sinks/kv";
import { LOGPUSH_FIELDS } from "../../sinks/logpush";
import type { R2Payload } from "../../sinks/r2";
import { r2Sink } from "../../sinks/r2";
import { serializeRecord } from "../../src/json";
import { normalizeTraceItems } from "../../src/normalize";
import captured from "../fixtures/trace-items.json";
import { makeSink, must, parseNdjson, serialized, T0, traceItem } from "./helpers";

/**
 * The dataset's fields as its documentation lists them:
 * https://developers.cloudflare.com/logs/logpush/logpush-job/datasets/account/workers_trace_events/
 * (CPUTimeMs int, DispatchNamespace string, Entrypoint string, Event object,
 * EventTimestampMs int, EventType string, Exceptions array[object], Logs
 * array[object], Outcome string, ScriptName string, ScriptTags array[string],
 * ScriptVersion object, WallTimeMs int).
 */
const DATASET: Record<string, "int" | "string" | "object" | "array[object]" | "array[string]"> = {
  CPUTimeMs: "int",
  DispatchNamespace: "string",
  Entrypoint: "string",
  Event: "object",
  EventTimestampMs: "int",
  EventType: "string",
  Exceptions: "array[object]",
  Logs: "array[object]",
  Outcome: "string",
  ScriptName: "string",
  ScriptTags: "array[string]",
  ScriptVersion: "object",
  WallTimeMs: "int",
};
/** The dataset page's values of EventType. */
const EVENT_TYPES = ["fetch", "scheduled", "alarm", "queue", "email", "worker_rpc", "hibernatable_web_socket"];

function typeOf(x: unknown): string {
  if (Array.isArray(x)) return x.every((e) => typeof e === "string") && x.length > 0 ? "array[string]" : "array";
  if (typeof x === "number") return Number.isInteger(x) ? "int" : "number";
  return x === null ? "null" : typeof x;
}

function expectDatasetLine(line: Record<string, unknown>): void {
  expect(Object.keys(line).sort()).toEqual(Object.keys(DATASET).sort());
  for (const [field, type] of Object.entries(DATASET)) {
    const got = typeOf(line[field]);
    if (type === "array[object]") {
      expect(Array.isArray(line[field]), field).toBe(true);
      for (const x of line[field] as unknown[]) expect(typeOf(x), field).toBe("object");
    } else if (type === "array[string]")
      expect(got === "array[string]" || (line[field] as unknown[]).length === 0, field).toBe(true);
    else expect(got, field).toBe(type);
  }
  expect(EVENT_TYPES).toContain(line.EventType);
}

const throwing = () =>
  traceItem({
    script: "shop-api",
    path: "/checkout",
    status: 500,
    outcome: "exception",
    logs: [
      { level: "log", message: ["cart", { items: 3 }] },
      { level: "warn", message: ["slow upstream"] },
    ],
    exceptions: [{ name: "TypeError", message: "x is undefined" }],
  });

describe("format = logpush", () => {
  it("the encoder writes the dataset's fields and nothing else", () => {
    expect([...LOGPUSH_FIELDS].sort()).toEqual(Object.keys(DATASET).sort());
  });

  it("http: one NDJSON line per invocation, each record of it in Logs or Exceptions", () => {
    const { sink } = makeSink<HttpPayload>(httpSink, { url: "https://logs.example.com/in", format: "logpush" });
    const batch = serialized([throwing(), traceItem({ script: "shop-api", path: "/ok" })]);
    const payload = sink.encode(batch);
    expect(payload.contentType).toBe("application/x-ndjson");
    expect(payload.records).toBe(batch.length);
    const lines = parseNdjson(payload.body) as Record<string, unknown>[];
    expect(lines).toHaveLength(2);
    for (const line of lines) expectDatasetLine(line);
    const [first] = lines as [Record<string, unknown>];
    expect(first).toMatchObject({
      ScriptName: "shop-api",
      Outcome: "exception",
      EventType: "fetch",
      EventTimestampMs: T0,
      CPUTimeMs: 1,
      WallTimeMs: 2,
      Event: { Request: { URL: "https://shop.example.com/checkout", Method: "GET" }, Response: { Status: 500 } },
      Exceptions: [{ Name: "TypeError", Message: "x is undefined", TimestampMs: T0 + 50 }],
      Logs: [
        { Level: "log", Message: ["cart", { items: 3 }], TimestampMs: T0 + 1 },
        { Level: "warn", Message: ["slow upstream"], TimestampMs: T0 + 2 },
      ],
    });
  });

  it("takes the Ray ID from the cf-ray header, and the event type's own names", () => {
    const item = traceItem({ path: "/x" });
    (item.event as { request: { headers: Record<string, string> } }).request.headers["cf-ray"] = "8f1c2d3e4a5b6c7d-DFW";
    const { sink } = makeSink<HttpPayload>(httpSink, { url: "https://logs.example.com/in", format: "logpush" });
    const [line] = parseNdjson(sink.encode(serialized([item])).body) as [Record<string, unknown>];
    expect((line.Event as { RayID: string }).RayID).toBe("8f1c2d3e4a5b6c7d");
    const rpc = normalizeTraceItems([captured.rpc]).map(serializeRecord);
    const [rpcLine] = parseNdjson(sink.encode(rpc).body) as [Record<string, unknown>];
    expectDatasetLine(rpcLine);
    expect(rpcLine).toMatchObject({ EventType: "worker_rpc", Event: { RpcMethod: "greet" } });
    const cron = normalizeTraceItems([captured.scheduled]).map(serializeRecord);
    const [cronLine] = parseNdjson(sink.encode(cron).body) as [Record<string, unknown>];
    expectDatasetLine(cronLine);
    expect(cronLine.EventType).toBe("scheduled");
    expect((cronLine.Event as { Cron: string }).Cron).toBe(captured.scheduled.event.cron);
  });

  it("a sink that took only some of an invocation's records still writes the invocation's fields", () => {
    const records = serialized([throwing()]).filter((r) => r.record.type === "exception");
    const { sink } = makeSink<HttpPayload>(httpSink, { url: "https://logs.example.com/in", format: "logpush" });
    const [line] = parseNdjson(sink.encode(records).body) as [Record<string, unknown>];
    expectDatasetLine(line);
    expect(line).toMatchObject({
      ScriptName: "shop-api",
      Outcome: "exception",
      Logs: [],
      Event: { Response: { Status: 500 } },
    });
  });

  it("r2: the object holds one dataset line per invocation under the same dated key", () => {
    const { sink } = makeSink<R2Payload>(r2Sink, { binding: "LOGS_R2", format: "logpush" });
    const batch = serialized([throwing(), traceItem({ path: "/a" }), traceItem({ path: "/b" })]);
    const payload = sink.encode(batch);
    expect(payload.key).toMatch(/^logs\/2025\/03\/14\/15\/\d+_\d+_.+\.ndjson\.gz$/);
    const lines = parseNdjson(payload.body) as Record<string, unknown>[];
    expect(lines).toHaveLength(3);
    for (const line of lines) expectDatasetLine(line);
    expect(payload.customMetadata.count).toBe(String(batch.length));
  });

  it("kv: one entry per invocation whose value is its dataset line", () => {
    const { sink } = makeSink<KvEntry[]>(kvSink, { binding: "LOGS_KV", format: "logpush" });
    const entries = sink.encode(serialized([throwing(), traceItem({ path: "/a" })]));
    expect(entries).toHaveLength(2);
    for (const e of entries) {
      const lines = parseNdjson(e.value) as Record<string, unknown>[];
      expect(lines).toHaveLength(1);
      expectDatasetLine(must(lines[0]));
    }
  });

  it("leaves diagnostics-channel records out: the dataset has no field for them", () => {
    const records = normalizeTraceItems([captured["diagnostics-channel"]]).map(serializeRecord);
    expect(records.some((r) => r.record.type === "diagnostic")).toBe(true);
    const { sink } = makeSink<HttpPayload>(httpSink, { url: "https://logs.example.com/in", format: "logpush" });
    const [line, ...more] = parseNdjson(sink.encode(records).body) as Record<string, unknown>[];
    expect(more).toEqual([]);
    expectDatasetLine(must(line));
    expect(JSON.stringify(line)).not.toContain(
      String(records.find((r) => r.record.type === "diagnostic")?.record.message),
    );
  });

  it("the ndjson format of r2 and kv stays the record lines", () => {
    const { sink } = makeSink<R2Payload>(r2Sink, { binding: "LOGS_R2" });
    const batch = serialized([throwing()]);
    expect(parseNdjson(sink.encode(batch).body)).toHaveLength(batch.length);
  });
});
