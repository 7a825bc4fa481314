/**
 * The streaming tail's assembly, fed with the synthetic TailStream fixtures
 * (what local workerd does not emit; the end-to-end test covers what it
 * does), and the tailStream handler delivering into the real local R2.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import { normalizeTraceItem } from "../../src/normalize";
import type { LogRecord, SpanRecord } from "../../src/record";
import { handleTailStream, InvocationAssembly } from "../../src/stream";
import {
  otherEvents,
  ownInvocation,
  queueCutShort,
  rpcInherited,
  type StreamFixture,
  scheduledWithSpans,
} from "../fixtures/tail-stream.synthetic";

const vars = env as unknown as Record<string, unknown>;

function assemble(f: StreamFixture): { assembly: InvocationAssembly; records: LogRecord[] } {
  const assembly = new InvocationAssembly(f.onset);
  for (const e of f.events) assembly.push(e);
  return { assembly, records: assembly.records(0) };
}
const spansOf = (rs: LogRecord[]) => rs.filter((r): r is SpanRecord => r.type === "span");

describe("streaming tail assembly (synthetic TailStream fixtures)", () => {
  it("gives the records tail() gives for the equivalent TraceItem, keyed by the runtime's invocation id", () => {
    const { assembly, records } = assemble(scheduledWithSpans);
    expect(assembly.done).toBe(true);
    const classic = normalizeTraceItem(assembly.traceItem(), 0, 0);
    const streamed = records.filter((r) => r.type !== "span");
    expect(streamed).toHaveLength(classic.length);
    for (let i = 0; i < classic.length; i++) {
      const { id: _a, invocationId: _b, traceId: _c, spanId: _d, ...rest } = streamed[i] as LogRecord;
      const { id: _e, invocationId: _f, ...want } = classic[i] as LogRecord;
      expect(rest).toEqual(want);
      expect(streamed[i]?.id).toBe(`inv-scheduled-1-${i}`);
    }
    expect(streamed.map((r) => r.type)).toEqual(["invocation", "log", "exception", "diagnostic"]);
    const inv = streamed[0];
    expect(inv).toMatchObject({
      eventType: "scheduled",
      cron: "0 3 * * *",
      scriptName: "billing",
      scriptVersion: { id: "7d3c5b2e-0000-4000-8000-000000000001", tag: "v42" },
      scriptTags: ["team:payments"],
      entrypoint: "default",
      cpuTime: 3,
      wallTime: 17,
      outcome: "ok",
      exceptionCount: 1,
      diagnosticCount: 1,
    });
  });

  it("nests spans by their parents, applies renames and status updates, keeps every attribute", () => {
    const { records } = assemble(scheduledWithSpans);
    const [root, kv, fetch] = spansOf(records);
    expect(root).toMatchObject({ spanId: "a1a1a1a1a1a1a1a1", parentSpanId: null, kind: "consumer", name: "scheduled" });
    expect(root?.attributes).toMatchObject({ "cloudflare.ray_id": "8f00aa11bb22cc33", "faas.cron": "0 3 * * *" });
    expect(kv).toMatchObject({
      spanId: "b2b2b2b2b2b2b2b2",
      parentSpanId: "a1a1a1a1a1a1a1a1",
      name: "kv_get_bulk",
      kind: "client",
      durationMs: 7,
      statusCode: "unset",
      attributes: { "db.system": "cloudflare-kv", "db.operation.name": "get", "cloudflare.kv.keys": ["a", "b"] },
    });
    expect(fetch).toMatchObject({
      parentSpanId: "b2b2b2b2b2b2b2b2",
      statusCode: "error",
      statusMessage: "upstream answered 503",
      level: "warn",
      attributes: {
        "http.request.method": "POST",
        "url.full": "https://api.example.com/charge",
        "http.response.status_code": 503,
        // Past 2^53: kept exact, as a string.
        "cloudflare.big": "9007199254740993",
      },
    });
    // The invocation's exception makes its span an error, though the outcome is ok.
    expect(root).toMatchObject({ statusCode: "error", statusMessage: "ChargeError: card declined", durationMs: 12 });
    // Every record of the invocation shares its trace; logs sit in the span they were written in.
    for (const r of records) expect(r.traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(records.find((r) => r.type === "log")?.spanId).toBe("a1a1a1a1a1a1a1a1");
  });

  it("a span never closed ends with the invocation; dropped events and a cut log mark it truncated", () => {
    const { records } = assemble(queueCutShort);
    const inv = records[0];
    expect(inv).toMatchObject({
      eventType: "queue",
      queue: "outbox",
      batchSize: 25,
      truncated: true,
      outcome: "exceededCpu",
    });
    expect(inv?.level).toBe("error");
    const [root, open] = spansOf(records);
    expect(open).toMatchObject({ name: "r2_put", spanOutcome: "unknown", endTime: root?.endTime, statusCode: "unset" });
    expect(root).toMatchObject({ kind: "consumer", spanOutcome: "exceededCpu", statusCode: "error", durationMs: 40 });
  });

  it("an inherited span context makes the invocation's span a child of the caller's", () => {
    const { records } = assemble(rpcInherited);
    expect(records[0]).toMatchObject({ eventType: "rpc", entrypoint: "UserService" });
    const [root] = spansOf(records);
    expect(root).toMatchObject({ kind: "server", parentSpanId: "9999999999999999", name: "rpc", statusCode: "unset" });
  });

  it("maps every other event type to the fields tail() reads", () => {
    const got = otherEvents.map((f) => {
      const r = assemble(f).records[0] as unknown as Record<string, unknown>;
      return [
        r.eventType,
        r.mailFrom ?? r.webSocketCode ?? r.tailScripts ?? r.hibernateReason ?? r.scheduledTime ?? null,
      ];
    });
    expect(got).toEqual([
      ["email", "a@example.com"],
      ["alarm", Date.UTC(2025, 2, 14, 15, 9, 26, 530)],
      ["websocket", 1006],
      ["tail", ["shop", null]],
      ["hibernate", "inactive"],
      ["connect", null],
    ]);
  });

  it("ignores events after the outcome and survives malformed events without throwing", () => {
    const assembly = new InvocationAssembly(rpcInherited.onset);
    for (const e of rpcInherited.events) assembly.push(e);
    const before = assembly.records(0).length;
    assembly.push({ ...rpcInherited.events[0], event: { type: "log", level: "log", message: ["late"] } } as never);
    expect(assembly.records(0)).toHaveLength(before);
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const handler = handleTailStream(null as never, vars, createExecutionContext());
    expect(() => (handler as (e: unknown) => unknown)(null)).not.toThrow();
    expect(() => (handler as (e: unknown) => unknown)({ event: null })).not.toThrow();
    errors.mockRestore();
  });
});

describe("tailStream handler", () => {
  async function stream(f: StreamFixture, e: Record<string, unknown>) {
    const ctx = createExecutionContext();
    const handler = worker.tailStream?.(f.onset, e as never, ctx) as TailStream.TailEventHandler;
    expect(typeof handler).toBe("function");
    for (const ev of f.events) await handler(ev);
    await waitOnExecutionContext(ctx);
  }
  async function archived(prefix: string): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    const { objects } = await env.LOGS_R2.list({ prefix });
    for (const o of objects) {
      const obj = await env.LOGS_R2.get(o.key);
      const text = obj ? await new Response(obj.body.pipeThrough(new DecompressionStream("gzip"))).text() : "";
      for (const l of text.split("\n")) if (l) out.push(JSON.parse(l) as LogRecord);
    }
    return out;
  }
  const sinks = (prefix: string) =>
    JSON.stringify([{ name: "archive", type: "r2", binding: "LOGS_R2", prefix, gzip: true }]);

  it("delivers an invocation's records, spans included, through tail()'s delivery into the real R2", async () => {
    await stream(scheduledWithSpans, {
      ...vars,
      SINKS: sinks("stream-a"),
      ROUTES: JSON.stringify([{ sinks: ["archive"] }]),
    });
    const lines = await archived("stream-a/");
    expect(lines.map((r) => r.type)).toEqual(["invocation", "log", "exception", "diagnostic", "span", "span", "span"]);
    // The JSON lines keep the span context of every record type.
    for (const r of lines) expect(r.traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(lines.filter((r) => r.spanId === undefined)).toEqual([]);
  });

  it("routes spans by type like any record, and scrubs their attributes", async () => {
    const secretRun: StreamFixture = {
      onset: rpcInherited.onset,
      events: [
        {
          ...rpcInherited.events[0],
          event: {
            type: "spanOpen",
            name: "fetch",
            spanId: "abababababababab",
            info: { type: "fetch", method: "GET", url: "https://x.example/?api_key=s3cr3t-v4lue", headers: [] },
          },
        } as TailStream.TailEvent<TailStream.SpanOpen>,
        ...rpcInherited.events,
      ],
    };
    await stream(secretRun, {
      ...vars,
      SINKS: sinks("stream-b"),
      ROUTES: JSON.stringify([{ sinks: ["archive"], types: ["span"] }]),
    });
    const lines = await archived("stream-b/");
    expect(lines.map((r) => r.type)).toEqual(["span", "span"]);
    expect(JSON.stringify(lines)).not.toContain("s3cr3t-v4lue");
    expect(String((lines[1] as SpanRecord).attributes["url.full"])).toContain("api_key=");
  });

  it("drops tailfan's own streamed invocation (loop guard)", async () => {
    await stream(ownInvocation, {
      ...vars,
      SINKS: sinks("stream-c"),
      ROUTES: JSON.stringify([{ sinks: ["archive"] }]),
    });
    expect(await archived("stream-c/")).toEqual([]);
  });
});
