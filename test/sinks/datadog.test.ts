import { afterEach, describe, expect, it, vi } from "vitest";
import { DATADOG_MAX_ENTRY_BYTES, DATADOG_MAX_REQUEST_BYTES, datadogSink } from "../../sinks/datadog";
import { type MultiPayload, packBodies, sendBodies } from "../../sinks/multi";
import type { SendResult } from "../../sinks/types";
import { splitBatches } from "../../src/delivery/batch";
import type { SerializedRecord } from "../../src/record";
import captured from "../fixtures/trace-items.json";
import synthetic from "../fixtures/trace-items.synthetic.json";
import { sinkContract } from "./contract";
import {
  asJson,
  bigRecords,
  makeSink,
  must,
  received,
  receiverUrl,
  serialized,
  T0,
  traceItem,
  uid,
  utf8,
} from "./helpers";
import { validateDatadog } from "./wire/datadog";

const base = receiverUrl();

sinkContract({
  def: datadogSink,
  valid: { apiKey: "dd-key", endpoint: `${base}/ok/contract` },
  resolved: {
    apiKey: "dd-key",
    endpoint: `${base}/ok/contract`,
    site: "datadoghq.com",
    ddsource: "cloudflare",
    ddtags: [],
    gzip: true,
    maxRecords: 1000,
    maxBytes: 3_000_000,
  },
  invalid: [
    { name: "an empty apiKey", options: { apiKey: "" }, path: "apiKey" },
    { name: "an apiKey with a line break", options: { apiKey: "k\r\nx-evil: 1" }, path: "apiKey" },
    { name: "a site that is not a host name", options: { apiKey: "k", site: "https://datadoghq.com" }, path: "site" },
    { name: "a relative endpoint", options: { apiKey: "k", endpoint: "/api/v2/logs" }, path: "endpoint" },
    { name: "a site given as the app host", options: { apiKey: "k", site: "app.datadoghq.eu" }, path: "site" },
    { name: "ddtags of the wrong type", options: { apiKey: "k", ddtags: 5 }, path: "ddtags" },
    { name: "a listed tag with a comma", options: { apiKey: "k", ddtags: ["a:1,b:2"] }, path: "ddtags.0" },
    { name: "a service that is not a string", options: { apiKey: "k", service: 7 }, path: "service" },
    { name: "maxRecords over 1000", options: { apiKey: "k", maxRecords: 1001 }, path: "maxRecords" },
    { name: "maxBytes over 5 MB", options: { apiKey: "k", maxBytes: 6_000_000 }, path: "maxBytes" },
    { name: "gzip as a string", options: { apiKey: "k", gzip: "yes" }, path: "gzip" },
  ],
  rejecting: [
    { name: "the endpoint refuses connections", options: { apiKey: "k", endpoint: "http://127.0.0.1:1/" } },
    { name: "the endpoint answers 500", options: { apiKey: "k", endpoint: `${base}/status/500/contract-reject` } },
  ],
  abortOptions: { apiKey: "k", endpoint: `${base}/hang/contract-abort` },
  abortIsHonoured: true,
});

type DdEntry = Record<string, unknown> & { worker: Record<string, unknown> };

/** The entries a sink encodes for these records (one body expected). */
function entriesOf(options: Record<string, unknown>, records: SerializedRecord[]): DdEntry[] {
  const { sink } = makeSink<MultiPayload>(datadogSink, { apiKey: "k", endpoint: `${base}/ok/x`, ...options });
  const payload = sink.encode(records);
  expect(payload.bodies).toHaveLength(1);
  const body = must(payload.bodies[0]).body;
  expect(validateDatadog(body)).toEqual([]);
  return JSON.parse(body) as DdEntry[];
}

/** An invocation with logs of every level, an exception and a 500. */
function mixed(script: string | null = "shop-api"): SerializedRecord[] {
  const item = traceItem({
    script: "placeholder",
    outcome: "exception",
    status: 500,
    path: "/pay",
    logs: [
      { level: "debug", message: ["d"] },
      { level: "info", message: ["i"] },
      { level: "log", message: ["l"] },
      { level: "warn", message: ["w"] },
      { level: "error", message: ["e"] },
    ],
    exceptions: [{ name: "TypeError", message: "card is undefined" }],
  });
  item.scriptName = script;
  return serialized([item]);
}

describe("datadog sink: record → entry mapping", () => {
  it("status from the level: debug→debug, info/log→info, warn→warning, error→error", () => {
    const records = mixed();
    const entries = entriesOf({}, records);
    const byMessage = new Map(entries.map((e) => [e.message, e.status]));
    expect(byMessage.get("d")).toBe("debug");
    expect(byMessage.get("i")).toBe("info");
    expect(byMessage.get("l")).toBe("info");
    expect(byMessage.get("w")).toBe("warning");
    expect(byMessage.get("e")).toBe("error");
    // The invocation record: an exception outcome with a 500 is error.
    expect(must(entries[0]).status).toBe("error");
  });

  it("the record rides whole under `worker`; message and timestamp are copied to the top", () => {
    const records = mixed();
    const entries = entriesOf({}, records);
    expect(entries.map((e) => e.worker)).toEqual(asJson(records));
    entries.forEach((e, i) => {
      const r = must(records[i]).record;
      expect(e.message).toBe(r.message);
      expect(e.timestamp).toBe(r.timestamp);
      expect(e.ddsource).toBe("cloudflare");
      // The HTTP status never lands on Datadog's reserved `status` (a number there is a syslog severity).
      expect(typeof e.status).toBe("string");
    });
  });

  it("service: the script name, else tailfan, unless the option sets it", () => {
    expect(must(entriesOf({}, mixed("billing"))[0]).service).toBe("billing");
    expect(must(entriesOf({}, mixed(null))[0]).service).toBe("tailfan");
    expect(must(entriesOf({ service: "edge" }, mixed("billing"))[0]).service).toBe("edge");
  });

  it("ddtags: automatic script, outcome and event type tags, then the user's (string or list form)", () => {
    const [first] = entriesOf({ ddtags: "env:prod, team:web" }, mixed("billing"));
    expect(must(first).ddtags).toBe("script:billing,outcome:exception,event_type:fetch,env:prod,team:web");
    const [listed] = entriesOf({ ddtags: ["env:prod"] }, mixed(null));
    expect(must(listed).ddtags).toBe("outcome:exception,event_type:fetch,env:prod");
  });

  it("hostname only when set", () => {
    expect("hostname" in must(entriesOf({}, mixed())[0])).toBe(false);
    expect(must(entriesOf({ hostname: "edge-1" }, mixed())[0]).hostname).toBe("edge-1");
  });

  it("fetch fields as http.*, exceptions as error.* (Datadog standard attributes)", () => {
    const records = mixed();
    const entries = entriesOf({}, records);
    expect(must(entries[0]).http).toEqual({ method: "GET", url: "https://shop.example.com/pay", status_code: 500 });
    const exception = must(entries.find((e) => e.worker.type === "exception"));
    expect(exception.error).toEqual({
      kind: "TypeError",
      message: "card is undefined",
      stack: "TypeError: card is undefined\n    at handler (worker.js:10:5)",
    });
    expect("error" in must(entries[1])).toBe(false);
  });

  it("a record near the 1 MB entry limit: the message copy is cut, the entry stays within 1 MB", () => {
    const limit = makeSink(datadogSink, { apiKey: "k" }).limits.maxRecordBytes ?? 0;
    const [big] = bigRecords(1, limit - 10, "dd-big");
    expect(must(big).bytes).toBeLessThanOrEqual(limit);
    const entries = entriesOf({ ddtags: Array.from({ length: 100 }, (_, i) => `t${i}:${"v".repeat(190)}`) }, [
      must(big),
    ]);
    const e = must(entries[0]);
    expect(utf8(JSON.stringify(e))).toBeLessThanOrEqual(DATADOG_MAX_ENTRY_BYTES);
    expect(e.worker).toEqual(JSON.parse(must(big).line));
    expect((e.message as string).length).toBeLessThan(must(big).record.message.length);
  });
});

describe("datadog sink: requests", () => {
  afterEach(() => vi.restoreAllMocks());

  it("round trip: DD-API-KEY, JSON, gzip on by default, body valid for the Logs API", async () => {
    const label = uid("dd");
    const records = mixed();
    const { sink } = makeSink<MultiPayload>(datadogSink, { apiKey: "s3cr3t", endpoint: `${base}/ok/${label}` });
    const result = await sink.send(sink.encode(records), AbortSignal.timeout(5_000));
    expect(result).toEqual({ outcome: "ok", status: 200 });
    const got = await received(label);
    expect(got).toHaveLength(1);
    const req = must(got[0]);
    expect(req.method).toBe("POST");
    expect(req.headers["dd-api-key"]).toBe("s3cr3t");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(req.headers["content-encoding"]).toBe("gzip");
    expect(req.wireBytes).toBeLessThan(req.body.length);
    expect(validateDatadog(req.body, req.headers)).toEqual([]);
    expect((JSON.parse(req.body) as DdEntry[]).map((e) => e.worker)).toEqual(asJson(records));
  });

  it("gzip false sends plain JSON", async () => {
    const label = uid("ddplain");
    const { sink } = makeSink<MultiPayload>(datadogSink, { apiKey: "k", endpoint: `${base}/ok/${label}`, gzip: false });
    await sink.send(sink.encode(mixed()), AbortSignal.timeout(5_000));
    const req = must((await received(label))[0]);
    expect(req.headers["content-encoding"]).toBeUndefined();
    expect(validateDatadog(req.body, req.headers)).toEqual([]);
  });

  it("the default URL comes from the site", async () => {
    const urls: string[] = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input) => {
      urls.push(input instanceof Request ? input.url : String(input));
      return new Response("", { status: 202 });
    });
    for (const site of [undefined, "datadoghq.eu", "us5.datadoghq.com"]) {
      const { sink } = makeSink<MultiPayload>(datadogSink, site ? { apiKey: "k", site } : { apiKey: "k" });
      expect(await sink.send(sink.encode(mixed()), AbortSignal.timeout(1_000))).toMatchObject({ outcome: "ok" });
    }
    expect(urls).toEqual([
      "https://http-intake.logs.datadoghq.com/api/v2/logs",
      "https://http-intake.logs.datadoghq.eu/api/v2/logs",
      "https://http-intake.logs.us5.datadoghq.com/api/v2/logs",
    ]);
  });

  it("429 with Retry-After → retry with the delay; 403 → fail without the key in the reason", async () => {
    const l1 = uid("dd429");
    const a = makeSink<MultiPayload>(datadogSink, {
      apiKey: "s3cr3t",
      endpoint: `${base}/status/429/${l1}?retryAfter=7`,
    });
    expect(await a.sink.send(a.sink.encode(mixed()), AbortSignal.timeout(5_000))).toMatchObject({
      outcome: "retry",
      status: 429,
      retryAfterMs: 7000,
    });
    const l2 = uid("dd403");
    const b = makeSink<MultiPayload>(datadogSink, { apiKey: "s3cr3t", endpoint: `${base}/status/403/${l2}` });
    const r = await b.sink.send(b.sink.encode(mixed()), AbortSignal.timeout(5_000));
    expect(r.outcome).toBe("fail");
    expect(JSON.stringify(r)).not.toContain("s3cr3t");
  });

  it("a batch whose entries pass 5 MB is sent as several requests, each valid, all records once in order", async () => {
    const label = uid("ddsplit");
    const records = bigRecords(7, 900_000, "dd-split");
    const { sink, limits } = makeSink<MultiPayload>(datadogSink, {
      apiKey: "k",
      endpoint: `${base}/ok/${label}`,
      maxBytes: DATADOG_MAX_REQUEST_BYTES,
    });
    expect(splitBatches(records, limits).batches).toHaveLength(2);
    const payload = sink.encode(records);
    expect(payload.bodies.length).toBeGreaterThan(1);
    expect(await sink.send(payload, AbortSignal.timeout(10_000))).toMatchObject({ outcome: "ok" });
    const got = await received(label);
    expect(got).toHaveLength(payload.bodies.length);
    for (const req of got) expect(validateDatadog(req.body, req.headers)).toEqual([]);
    const ids = got.flatMap((req) => (JSON.parse(req.body) as DdEntry[]).map((e) => e.worker.id));
    expect(ids).toEqual(records.map((r) => r.record.id));
  });
});

describe("datadog sink: packBodies / sendBodies", () => {
  const entries = Array.from({ length: 5 }, (_, i) => ({ text: `{"n":${i}}`, bytes: 7 }));

  it("packs by count and by bytes, framing included", () => {
    const byCount = packBodies(entries, { maxEntries: 2, maxBytes: 1000 }, { open: "[", sep: ",", close: "]" });
    expect(byCount.map((b) => [b.first, b.count])).toEqual([
      [0, 2],
      [2, 2],
      [4, 1],
    ]);
    expect(JSON.parse(must(byCount[0]).body)).toEqual([{ n: 0 }, { n: 1 }]);
    // [ + 7 + , + 7 + ] = 17 bytes fits in 17; a third would need 25.
    const byBytes = packBodies(entries, { maxEntries: 100, maxBytes: 17 }, { open: "[", sep: ",", close: "]" });
    expect(byBytes.map((b) => b.count)).toEqual([2, 2, 1]);
    for (const b of byBytes) expect(utf8(b.body)).toBeLessThanOrEqual(17);
    expect(packBodies([], { maxEntries: 1, maxBytes: 10 }, { open: "[", sep: ",", close: "]" })).toEqual([]);
  });

  const payload: MultiPayload = {
    bodies: [
      { body: "a", first: 0, count: 2 },
      { body: "b", first: 2, count: 2 },
      { body: "c", first: 4, count: 1 },
    ],
    records: 5,
  };
  const answering =
    (answers: Record<string, SendResult>) =>
    async (body: string): Promise<SendResult> =>
      answers[body] ?? { outcome: "ok", status: 202 };

  it("all bodies ok → ok", async () => {
    expect(await sendBodies(payload, answering({}))).toEqual({ outcome: "ok", status: 202 });
    expect(await sendBodies({ bodies: [], records: 0 }, answering({}))).toEqual({
      outcome: "ok",
    });
  });

  it("the first body retried → plain retry of the whole batch", async () => {
    const r = await sendBodies(
      payload,
      answering({ a: { outcome: "retry", reason: "HTTP 503", status: 503, retryAfterMs: 10 } }),
    );
    expect(r).toEqual({ outcome: "retry", reason: "HTTP 503", status: 503, retryAfterMs: 10 });
  });

  it("a later body retried → partial: earlier delivered, that body and the rest retried", async () => {
    const r = await sendBodies(
      payload,
      answering({ b: { outcome: "retry", reason: "HTTP 429", status: 429, retryAfterMs: 5 } }),
    );
    expect(r).toEqual({
      outcome: "partial",
      retry: [2, 3, 4],
      fail: [],
      reason: "request 2 of 3: HTTP 429",
      status: 429,
      retryAfterMs: 5,
    });
  });

  it("a body refused → partial: that body failed, the rest retried", async () => {
    const r = await sendBodies(payload, answering({ a: { outcome: "fail", reason: "HTTP 400", status: 400 } }));
    expect(r).toEqual({
      outcome: "partial",
      retry: [2, 3, 4],
      fail: [0, 1],
      reason: "request 1 of 3: HTTP 400",
      status: 400,
    });
  });
});

describe("datadog sink: every fixture TraceItem", () => {
  it("captured and synthetic TraceItems encode to payloads the wire validator accepts", () => {
    const items = Object.entries({ ...captured, ...synthetic })
      .filter(([k]) => k !== "_comment")
      .map(([, x]) => x as Record<string, unknown>);
    const recs = serialized(items);
    expect(recs.length).toBeGreaterThan(20);
    const { sink } = makeSink<MultiPayload>(datadogSink, { apiKey: "k" });
    const payload = sink.encode(recs);
    expect(payload.bodies.length).toBeGreaterThan(0);
    for (const b of payload.bodies) expect(validateDatadog(b.body)).toEqual([]);
  });
});

describe("datadog wire validator", () => {
  const good = JSON.stringify([
    { message: "hi", ddsource: "cloudflare", ddtags: "a:1,b:2", service: "api", status: "warning", timestamp: T0 },
  ]);
  const headers = { "dd-api-key": "k", "content-type": "application/json", "content-encoding": "gzip" };

  it("accepts a good payload", () => {
    expect(validateDatadog(good, headers)).toEqual([]);
  });

  it.each([
    ["not JSON", "[{", /not JSON/],
    ["an object instead of an array", JSON.stringify({ message: "x" }), /not a JSON array/],
    ["an empty array", "[]", /empty array/],
    ["more than 1000 entries", JSON.stringify(Array.from({ length: 1001 }, () => ({ message: "x" }))), /1000-entry/],
    ["an entry that is not an object", JSON.stringify(["x"]), /not an object/],
    ["an entry without message", JSON.stringify([{ status: "info" }]), /no message/],
    ["a numeric message", JSON.stringify([{ message: 5 }]), /message: must be a string/],
    ["an HTTP status as status", JSON.stringify([{ message: "x", status: 200 }]), /status: 200/],
    ["an unknown status word", JSON.stringify([{ message: "x", status: "loud" }]), /status: "loud"/],
    ["ddtags as a list", JSON.stringify([{ message: "x", ddtags: ["a:1"] }]), /ddtags: must be a string/],
    ["an empty tag", JSON.stringify([{ message: "x", ddtags: "a:1,,b:2" }]), /empty tag/],
    ["an entry over 1 MB", JSON.stringify([{ message: "x".repeat(1_000_001) }]), /over 1 MB/],
    [
      "a payload over 5 MB",
      JSON.stringify(Array.from({ length: 6 }, () => ({ message: "x".repeat(900_000) }))),
      /over 5 MB/,
    ],
  ])("rejects %s", (_name, body, problem) => {
    const problems = validateDatadog(body);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toMatch(problem);
  });

  it("rejects missing or wrong headers", () => {
    expect(validateDatadog(good, { "content-type": "application/json" }).join()).toMatch(/DD-API-KEY/);
    expect(validateDatadog(good, { "dd-api-key": "k", "content-type": "text/plain" }).join()).toMatch(/content-type/);
    expect(validateDatadog(good, { ...headers, "content-encoding": "br" }).join()).toMatch(/content-encoding/);
  });
});
