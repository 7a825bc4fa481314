import { describe, expect, it } from "vitest";
import { toJson } from "../../src/json";
import { detectEventType, invocationLevel, normalizeTraceItem, normalizeTraceItems } from "../../src/normalize";
import { EVENT_KINDS, type EventKind, streamEvent, streamEventType } from "../../src/normalize/events";
import { CONTEXT_KEYS, EVENT_TYPES, type EventType, type InvocationRecord, type LogRecord } from "../../src/record";
import { utf8Length } from "../../src/text";
import captured from "../fixtures/trace-items.json";
import synthetic from "../fixtures/trace-items.synthetic.json";

/** Real TraceItems captured from workerd, and hand-written ones for what it cannot emit locally. */
const fixtures: Record<string, unknown> = { ...captured, ...synthetic };
delete fixtures._comment;

function fixture(label: string): Record<string, unknown> {
  const item = fixtures[label];
  if (!item) throw new Error(`no fixture ${label}`);
  return item as Record<string, unknown>;
}

function normalize(label: string) {
  const records = normalizeTraceItem(fixture(label));
  const [invocation, ...rest] = records;
  return { records, invocation: invocation as InvocationRecord, rest };
}

describe("normalize: every fixture", () => {
  for (const label of Object.keys(fixtures)) {
    it(`${label}: one invocation record, one record per log, exception and diagnostic, all plain JSON`, () => {
      const item = fixture(label);
      const { records, invocation, rest } = normalize(label);
      const count = (k: string) => (item[k] as unknown[] | undefined)?.length ?? 0;
      expect(invocation.type).toBe("invocation");
      expect(rest.map((r) => r.type)).toEqual([
        ...Array(count("logs")).fill("log"),
        ...Array(count("exceptions")).fill("exception"),
        ...Array(count("diagnosticsChannelEvents")).fill("diagnostic"),
      ]);
      // The raw event is kept whole on the invocation record.
      expect(invocation.event).toEqual(item.event ?? null);
      // Every record carries the invocation's context, and ids are unique.
      for (const r of records) {
        for (const f of CONTEXT_KEYS) expect(r[f], `${r.type}.${f}`).toEqual(invocation[f]);
        expect(r.id.startsWith(`${invocation.invocationId}-`)).toBe(true);
      }
      expect(new Set(records.map((r) => r.id)).size).toBe(records.length);
      // Plain JSON: survives a round trip unchanged.
      expect(JSON.parse(JSON.stringify(records))).toEqual(records);
      // Normalizing is deterministic.
      expect(normalizeTraceItem(item)).toEqual(records);
    });
  }
});

describe("normalize: event types and their fields", () => {
  it("fetch: method, url, status, colo, country, headers as redacted by the runtime", () => {
    const { invocation } = normalize("fetch-post");
    expect(invocation).toMatchObject({
      eventType: "fetch",
      method: "POST",
      status: 201,
      colo: "DFW",
      country: "US",
      level: "info",
    });
    expect(invocation.url).toMatch(/\/post\?token=/);
    const headers = (invocation.event as { request: { headers: Record<string, string> } }).request.headers;
    expect(headers.authorization).toBe("REDACTED");
    expect(invocation.message).toMatch(/^POST http:\/\/127\.0\.0\.1:8787\/post\?\S+ 201 ok$/);
  });

  it("fetch: a thrown exception has no status, outcome exception, level error, and an exception record", () => {
    const { invocation, rest } = normalize("fetch-exception");
    expect(invocation).toMatchObject({ outcome: "exception", level: "error", exceptionCount: 1 });
    expect(invocation.status).toBeUndefined();
    expect(rest[0]).toMatchObject({ type: "exception", level: "error", exceptionName: "Error" });
    expect(rest[0]?.type === "exception" && rest[0].stack).toContain("producer.js");
  });

  it("fetch: 5xx raises the level to error and 4xx to warn", () => {
    expect(normalize("fetch-500").invocation).toMatchObject({ status: 500, outcome: "ok", level: "error" });
    expect(normalize("fetch-404").invocation).toMatchObject({ status: 404, outcome: "ok", level: "warn" });
  });

  it("scheduled: cron and scheduled time", () => {
    expect(normalize("scheduled").invocation).toMatchObject({
      eventType: "scheduled",
      cron: "*/5 * * * *",
      scheduledTime: 1735689600000,
    });
  });

  it("alarm: the scheduled time (a Date in the runtime) becomes epoch ms, with Durable Object context", () => {
    const { invocation } = normalize("alarm");
    const raw = (fixture("alarm").event as { scheduledTime: string }).scheduledTime;
    expect(invocation).toMatchObject({ eventType: "alarm", executionModel: "durableObject", entrypoint: "Counter" });
    expect(invocation.scheduledTime).toBe(Date.parse(raw));
    expect(invocation.durableObjectId).toMatch(/^[0-9a-f]{64}$/);
  });

  it("queue: queue name and batch size", () => {
    expect(normalize("queue").invocation).toMatchObject({
      eventType: "queue",
      queue: "q1",
      batchSize: 2,
      message: "queue q1 (2 messages) ok",
    });
  });

  it("rpc: method and entrypoint, for a WorkerEntrypoint and a Durable Object", () => {
    expect(normalize("rpc").invocation).toMatchObject({ eventType: "rpc", rpcMethod: "greet", entrypoint: "Api" });
    expect(normalize("rpc-do").invocation).toMatchObject({
      eventType: "rpc",
      rpcMethod: "add",
      executionModel: "durableObject",
    });
  });

  it("email: sender, recipient, size", () => {
    expect(normalize("email").invocation).toMatchObject({
      eventType: "email",
      mailFrom: "a@example.com",
      rcptTo: "b@example.com",
      rawSize: 225,
    });
  });

  it("tail: the consumed events' script names", () => {
    expect(normalize("tail").invocation).toMatchObject({ eventType: "tail", tailScripts: [null] });
  });

  it("hibernatable WebSocket: event type, close code and cleanliness", () => {
    expect(normalize("websocket-message").invocation).toMatchObject({
      eventType: "websocket",
      webSocketEventType: "message",
    });
    expect(normalize("websocket-close").invocation).toMatchObject({
      webSocketEventType: "close",
      webSocketCode: 1000,
      webSocketClean: true,
    });
    expect(normalize("websocket-error").invocation).toMatchObject({ webSocketEventType: "error" });
  });

  it("hibernate, custom, connect (as JSON), null and unknown future events", () => {
    expect(normalize("hibernate").invocation).toMatchObject({ eventType: "hibernate", hibernateReason: "inactive" });
    expect(normalize("custom").invocation.eventType).toBe("custom");
    // Without the runtime's class, an empty event cannot be told from custom; the e2e test sees "connect" live.
    expect(normalize("connect").invocation.eventType).toBe("custom");
    const none = normalize("null-event").invocation;
    expect(none).toMatchObject({ eventType: "none", event: null, eventTimestamp: null });
    expect(none.timestamp).toBe((fixture("null-event").logs as { timestamp: number }[])[0]?.timestamp);
    const future = normalize("future-event").invocation;
    expect(future).toMatchObject({
      eventType: "unknown",
      event: { somethingNew: { x: 1 } },
      extra: { futureField: { a: 1 } },
    });
  });

  it("recognises runtime event classes by name", () => {
    class ConnectEventInfo {}
    class HibernatableWebSocketEventInfo {}
    expect(detectEventType(new ConnectEventInfo())).toBe("connect");
    expect(detectEventType(new HibernatableWebSocketEventInfo())).toBe("websocket");
  });

  it("diagnostics channel events become diagnostic records with channel and data", () => {
    const { rest } = normalize("diagnostics-channel");
    const diags = rest.filter((r) => r.type === "diagnostic");
    expect(diags).toHaveLength(2);
    const item = fixture("diagnostics-channel").diagnosticsChannelEvents as { channel: string; message: unknown }[];
    expect(diags.map((d) => d.type === "diagnostic" && [d.channel, d.data])).toEqual(
      item.map((d) => [d.channel, d.message]),
    );
  });

  it("keeps truncated, scriptVersion, scriptTags, tailAttributes, preview and dispatchNamespace", () => {
    expect(normalize("fetch-truncated").records.every((r) => r.truncated)).toBe(true);
    const sv = fixture("script-version").scriptVersion;
    expect(normalize("script-version").invocation.scriptVersion).toEqual(sv);
    expect(normalize("script-tags").invocation.scriptTags).toEqual(fixture("script-tags").scriptTags);
    const tp = normalize("tail-attributes-preview").invocation;
    expect(tp.tailAttributes).toEqual(fixture("tail-attributes-preview").tailAttributes);
    expect(tp.preview).toEqual(fixture("tail-attributes-preview").preview);
  });

  it("Workers for Platforms: both TraceItems are kept, with distinct invocation ids", () => {
    const records = normalizeTraceItems([fixture("wfp-dispatcher"), fixture("wfp-user-worker")]);
    const invocations = records.filter((r) => r.type === "invocation");
    expect(invocations.map((r) => [r.scriptName, r.dispatchNamespace])).toEqual([
      [fixture("wfp-dispatcher").scriptName, null],
      [fixture("wfp-user-worker").scriptName, "production-namespace"],
    ]);
    expect(invocations[0]?.invocationId).not.toBe(invocations[1]?.invocationId);
  });

  it("outcomes map to levels", () => {
    expect(normalize("exceeded-cpu").invocation).toMatchObject({ outcome: "exceededCpu", level: "error" });
    expect(normalize("canceled").invocation).toMatchObject({ outcome: "canceled", level: "warn" });
    expect(invocationLevel("exceededMemory", undefined)).toBe("error");
    expect(invocationLevel("scriptNotFound", undefined)).toBe("error");
    expect(invocationLevel("unknown", undefined)).toBe("warn");
    expect(invocationLevel("canceled", 503)).toBe("error");
    expect(invocationLevel("ok", 302)).toBe("info");
  });
});

describe("normalize: log records", () => {
  it("levels follow the console method; messages render like a terminal; objects stay in args", () => {
    const { rest } = normalize("fetch-ok");
    const logs = (fixture("fetch-ok").logs as { level: string; message: unknown[] }[]).map((l, i) => [
      l,
      rest[i] as LogRecord,
    ]);
    for (const [raw, rec] of logs as [{ level: string; message: unknown[] }, LogRecord][]) {
      expect(rec.type).toBe("log");
      if (rec.type !== "log") continue;
      expect(rec.logLevel).toBe(raw.level);
      expect(rec.level).toBe(raw.level === "info" ? "info" : raw.level);
      expect(rec.message).toBe(raw.message.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" "));
      if (raw.message.some((p) => typeof p !== "string")) expect(rec.args).toEqual(raw.message);
      else expect(rec.args).toBeUndefined();
    }
  });

  it("console.error with an Error keeps name, message and stack", () => {
    const { rest } = normalize("fetch-console-error");
    expect(rest[0]).toMatchObject({ level: "error", errors: [expect.objectContaining({ name: "Error" })] });
  });
});

describe("normalize: malformed input never throws and loses nothing", () => {
  const cases: [string, unknown][] = [
    ["null", null],
    ["a number", 42],
    ["a string", "hello"],
    ["an empty object", {}],
    [
      "wrong-typed fields",
      { logs: "nope", exceptions: 5, event: "str", outcome: 7, scriptTags: [1, "a"], cpuTime: "x" },
    ],
    ["logs that are not objects", { logs: [null, "plain", 3, { level: 9, message: { deep: true } }], event: null }],
  ];
  for (const [name, input] of cases) {
    it(name, () => {
      const records = normalizeTraceItems([input]);
      expect(records.length).toBeGreaterThan(0);
      expect(JSON.parse(JSON.stringify(records))).toEqual(records);
    });
  }

  it("a non-object TraceItem keeps its value in the event field", () => {
    const [r] = normalizeTraceItems(["hello"]);
    expect(r).toMatchObject({
      type: "invocation",
      level: "warn",
      event: "hello",
      message: "malformed TraceItem: expected an object",
    });
  });

  it("getters that throw, cycles and BigInts in messages", () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const hostile = {
      get logs(): unknown {
        throw new Error("no logs for you");
      },
      outcome: "ok",
      event: { rpcMethod: "x", weird: 10n },
      diagnosticsChannelEvents: [{ channel: "c", message: cyclic, timestamp: 1 }],
    };
    const records = normalizeTraceItems([hostile]);
    expect(records.map((r) => r.type)).toEqual(["invocation", "diagnostic"]);
    expect(records[0]).toMatchObject({ eventType: "rpc", event: { rpcMethod: "x", weird: "10" } });
    expect(records[1]).toMatchObject({ data: { a: 1, self: "[Circular]" } });
  });
});

describe("json helpers", () => {
  it("toJson bounds depth and handles dates, typed arrays and non-finite numbers", () => {
    let deep: unknown = "bottom";
    for (let i = 0; i < 40; i++) deep = { d: deep };
    expect(JSON.stringify(toJson(deep))).toContain("[MaxDepth]");
    expect(toJson(new Date(0))).toBe("1970-01-01T00:00:00.000Z");
    expect(toJson(new Uint8Array(3))).toBe("[Uint8Array 3 bytes]");
    expect(toJson([Number.NaN, Number.POSITIVE_INFINITY])).toEqual(["NaN", "Infinity"]);
  });

  it("utf8Length matches TextEncoder, surrogate pairs and lone surrogates included", () => {
    for (const s of ["", "abc", "é", "€", "😀", "a😀b", "\ud800", "x\udc00y", "日本語"]) {
      expect(utf8Length(s), s).toBe(new TextEncoder().encode(s).length);
    }
  });
});

describe("normalize: the event kinds table", () => {
  const kinds = Object.entries(EVENT_KINDS) as [EventType, EventKind][];

  it("EVENT_TYPES is the table's kinds, then none and unknown", () => {
    expect(EVENT_TYPES).toEqual([...Object.keys(EVENT_KINDS), "none", "unknown"]);
  });

  for (const [type, kind] of kinds) {
    it(`${type}: recognised by its runtime class, and by the shape of the streaming tail's event for it`, () => {
      // A class of the runtime's name, as workerd hands tail() its event info objects.
      const RuntimeClass = { [kind.runtimeClass]: class {} }[kind.runtimeClass] as new () => object;
      expect(detectEventType(new RuntimeClass())).toBe(type);
      const event = streamEvent({ type: kind.stream.info } as TailStream.Onset["info"], 200);
      // Connect, rpc and custom onsets carry no event fields: an empty event reads as custom (the
      // streaming tail names the type itself, so its records still say the right one).
      expect(detectEventType(event)).toBe(Object.keys(event as object).length === 0 ? "custom" : type);
      expect(streamEventType({ type: kind.stream.info } as TailStream.Onset["info"])).toEqual({
        eventType: type,
        rootKind: kind.stream.rootKind,
      });
      const [invocation] = normalizeTraceItem({ event, outcome: "ok" }, 0, 1_700_000_000_000, type);
      expect(invocation?.message).toBe(`${kind.summary(invocation as InvocationRecord)} ok`);
    });
  }

  it("a user class named like an Object.prototype member is not a runtime event", () => {
    const Named = { toString: class {} }.toString;
    expect(detectEventType(new Named())).toBe("custom");
  });

  it("an event with no kind: none when absent, unknown when not an object or of no known shape", () => {
    expect(detectEventType(undefined)).toBe("none");
    expect(detectEventType("fetch")).toBe("unknown");
    expect(detectEventType({ somethingNew: 1 })).toBe("unknown");
    expect(streamEventType(undefined)).toEqual({ eventType: "unknown", rootKind: "internal" });
    expect(streamEvent(undefined, undefined)).toBeNull();
  });
});
