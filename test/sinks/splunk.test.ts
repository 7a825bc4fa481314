import { describe, expect, it } from "vitest";
import type { MultiPayload } from "../../sinks/multi";
import { hecEventUrl, hecTime, splunkSink } from "../../sinks/splunk";
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
import { splitStackedJson, validateSplunk } from "./wire/splunk";

const base = receiverUrl();

sinkContract({
  def: splunkSink,
  valid: { endpoint: `${base}/ok/contract`, token: "hec-token" },
  resolved: {
    endpoint: `${base}/ok/contract`,
    token: "hec-token",
    sourcetype: "cloudflare:workers",
    gzip: true,
    maxRecords: 1000,
    maxBytes: 800_000,
    maxRequestBytes: 1_000_000,
  },
  invalid: [
    { name: "a missing endpoint", options: { token: "t" }, path: "endpoint" },
    { name: "a relative endpoint", options: { endpoint: "/services/collector", token: "t" }, path: "endpoint" },
    { name: "an empty token", options: { endpoint: `${base}/ok/x`, token: "" }, path: "token" },
    { name: "a token with a line break", options: { endpoint: `${base}/ok/x`, token: "t\nx: 1" }, path: "token" },
    {
      name: "a sourcetype that is not a string",
      options: { endpoint: `${base}/ok/x`, token: "t", sourcetype: 1 },
      path: "sourcetype",
    },
    { name: "an empty index", options: { endpoint: `${base}/ok/x`, token: "t", index: "" }, path: "index" },
    {
      name: "maxRequestBytes under 16 KiB",
      options: { endpoint: `${base}/ok/x`, token: "t", maxRequestBytes: 1000 },
      path: "maxRequestBytes",
    },
    { name: "gzip as a string", options: { endpoint: `${base}/ok/x`, token: "t", gzip: "no" }, path: "gzip" },
  ],
  rejecting: [
    { name: "the endpoint refuses connections", options: { endpoint: "http://127.0.0.1:1/", token: "t" } },
    { name: "the endpoint answers 503", options: { endpoint: `${base}/status/503/contract-reject`, token: "t" } },
  ],
  abortOptions: { endpoint: `${base}/hang/contract-abort`, token: "t" },
  abortIsHonoured: true,
});

interface HecEvent {
  time?: number;
  host?: string;
  source?: string;
  sourcetype?: string;
  index?: string;
  fields?: Record<string, string>;
  event: Record<string, unknown>;
}

function eventsOf(body: string): HecEvent[] {
  const { values, problems } = splitStackedJson(body);
  expect(problems).toEqual([]);
  return values.map((x) => JSON.parse(x) as HecEvent);
}

function encodeWith(options: Record<string, unknown>, records: SerializedRecord[]): HecEvent[] {
  const { sink } = makeSink<MultiPayload>(splunkSink, { endpoint: `${base}/ok/x`, token: "t", ...options });
  const payload = sink.encode(records);
  expect(payload.bodies).toHaveLength(1);
  const body = must(payload.bodies[0]).body;
  expect(validateSplunk(body)).toEqual([]);
  return eventsOf(body);
}

function records(script: string | null = "shop-api"): SerializedRecord[] {
  const item = traceItem({
    script: "x",
    status: 404,
    logs: [
      { level: "warn", message: ["missing", { sku: 1 }], at: 7 },
      { level: "debug", message: ["d"], at: 9 },
    ],
  });
  item.scriptName = script;
  return serialized([item]);
}

describe("splunk sink: record → HEC event", () => {
  it("time is epoch seconds with milliseconds as decimals, from record.timestamp", () => {
    const recs = records();
    const events = encodeWith({}, recs);
    expect(events.map((e) => e.time)).toEqual(recs.map((r) => r.record.timestamp / 1000));
    expect(must(events[1]).time).toBe((T0 + 7) / 1000);
    expect(hecTime(1_741_964_966_535)).toBe(1741964966.535);
    expect(JSON.stringify({ t: hecTime(1_741_964_966_535) })).toBe('{"t":1741964966.535}');
  });

  it("event is the record, unchanged", () => {
    const recs = records();
    expect(encodeWith({}, recs).map((e) => e.event)).toEqual(asJson(recs));
  });

  it("source: the script name, else tailfan, unless set; sourcetype defaults to cloudflare:workers", () => {
    expect(must(encodeWith({}, records("billing"))[0]).source).toBe("billing");
    expect(must(encodeWith({}, records(null))[0]).source).toBe("tailfan");
    const [e] = encodeWith({ source: "edge", sourcetype: "_json" }, records("billing"));
    expect(must(e).source).toBe("edge");
    expect(must(e).sourcetype).toBe("_json");
    expect(must(encodeWith({}, records())[0]).sourcetype).toBe("cloudflare:workers");
  });

  it("host and index only when set", () => {
    const [plain] = encodeWith({}, records());
    expect("host" in must(plain)).toBe(false);
    expect("index" in must(plain)).toBe(false);
    const [set] = encodeWith({ host: "edge-1", index: "workers" }, records());
    expect(must(set).host).toBe("edge-1");
    expect(must(set).index).toBe("workers");
  });

  it("indexed fields: level, outcome, event_type and script, all strings", () => {
    const events = encodeWith({}, records("billing"));
    expect(events.map((e) => e.fields)).toEqual([
      { level: "warn", outcome: "ok", event_type: "fetch", script: "billing" },
      { level: "warn", outcome: "ok", event_type: "fetch", script: "billing" },
      { level: "debug", outcome: "ok", event_type: "fetch", script: "billing" },
    ]);
    expect(must(encodeWith({}, records(null))[0]).fields).toEqual({
      level: "warn",
      outcome: "ok",
      event_type: "fetch",
    });
  });

  it("the event URL: /services/collector/event appended unless already there, query kept", () => {
    expect(hecEventUrl("https://hec.example.com:8088")).toBe("https://hec.example.com:8088/services/collector/event");
    expect(hecEventUrl("https://hec.example.com:8088/")).toBe("https://hec.example.com:8088/services/collector/event");
    expect(hecEventUrl("https://h.example.com/services/collector")).toBe("https://h.example.com/services/collector");
    expect(hecEventUrl("https://h.example.com/services/collector/event")).toBe(
      "https://h.example.com/services/collector/event",
    );
    expect(hecEventUrl("https://h.example.com/splunk?x=1")).toBe(
      "https://h.example.com/splunk/services/collector/event?x=1",
    );
  });
});

describe("splunk sink: requests", () => {
  it("round trip: Authorization Splunk <token>, gzip, stacked events valid for HEC", async () => {
    const label = uid("splunk");
    const recs = records();
    const { sink } = makeSink<MultiPayload>(splunkSink, { endpoint: `${base}/ok/${label}`, token: "s3cr3t" });
    expect(await sink.send(sink.encode(recs), AbortSignal.timeout(5_000))).toEqual({ outcome: "ok", status: 200 });
    const got = await received(label);
    expect(got).toHaveLength(1);
    const req = must(got[0]);
    expect(req.path).toBe(`/ok/${label}/services/collector/event`);
    expect(req.headers.authorization).toBe("Splunk s3cr3t");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(req.headers["content-encoding"]).toBe("gzip");
    expect(validateSplunk(req.body, req.headers)).toEqual([]);
    expect(req.body.endsWith("}\n")).toBe(true);
    expect(eventsOf(req.body).map((e) => e.event)).toEqual(asJson(recs));
  });

  it("Retry-After is honoured through the appended path and query", async () => {
    const label = uid("splunk429");
    const { sink } = makeSink<MultiPayload>(splunkSink, {
      endpoint: `${base}/status/429/${label}?retryAfter=4`,
      token: "s3cr3t",
    });
    const r = await sink.send(sink.encode(records()), AbortSignal.timeout(5_000));
    expect(r).toMatchObject({ outcome: "retry", status: 429, retryAfterMs: 4000 });
    expect(JSON.stringify(r)).not.toContain("s3cr3t");
    expect(must((await received(label))[0]).path).toBe(`/status/429/${label}/services/collector/event`);
  });

  it("a batch over maxRequestBytes goes as several requests, each within it, all events once in order", async () => {
    const label = uid("splunksplit");
    const recs = bigRecords(6, 10_000, "splunk-split");
    const maxRequestBytes = 24 * 1024; // two ~10 KB events per request
    const { sink, limits } = makeSink<MultiPayload>(splunkSink, {
      endpoint: `${base}/ok/${label}`,
      token: "t",
      maxRequestBytes,
    });
    expect(limits.maxRecordBytes).toBeLessThan(maxRequestBytes);
    const payload = sink.encode(recs);
    expect(payload.bodies.length).toBe(3);
    for (const b of payload.bodies) expect(utf8(b.body)).toBeLessThanOrEqual(maxRequestBytes);
    expect(await sink.send(payload, AbortSignal.timeout(5_000))).toMatchObject({ outcome: "ok" });
    const got = await received(label);
    expect(got).toHaveLength(3);
    for (const req of got) expect(validateSplunk(req.body, req.headers)).toEqual([]);
    expect(got.flatMap((req) => eventsOf(req.body).map((e) => e.event.id))).toEqual(recs.map((r) => r.record.id));
  });
});

describe("splunk sink: every fixture TraceItem", () => {
  it("captured and synthetic TraceItems encode to payloads the wire validator accepts", () => {
    const items = Object.entries({ ...captured, ...synthetic })
      .filter(([k]) => k !== "_comment")
      .map(([, x]) => x as Record<string, unknown>);
    const recs = serialized(items);
    expect(recs.length).toBeGreaterThan(20);
    const { sink } = makeSink<MultiPayload>(splunkSink, { endpoint: "https://hec.example.com", token: "t" });
    const payload = sink.encode(recs);
    expect(payload.bodies.length).toBeGreaterThan(0);
    for (const b of payload.bodies) expect(validateSplunk(b.body)).toEqual([]);
  });
});

describe("splunk wire validator", () => {
  const good = `${JSON.stringify({ time: 1741964966.535, source: "api", fields: { level: "info" }, event: { a: 1 } })}\n${JSON.stringify({ event: 'text {with} "braces"' })}\n`;

  it("accepts good stacked events", () => {
    expect(validateSplunk(good, { authorization: "Splunk abc", "content-encoding": "gzip" })).toEqual([]);
  });

  it.each([
    ["an empty body", "", /no events/],
    ["trailing garbage", `${JSON.stringify({ event: 1 })}\nnope`, /garbage/],
    ["an unterminated object", `${JSON.stringify({ event: 1 })}{"event":`, /unterminated/],
    ["a JSON array instead of stacked objects", JSON.stringify([{ event: 1 }]), /garbage/],
    ["an event without event", JSON.stringify({ time: 1, source: "x" }), /no event field/],
    ["a blank event", JSON.stringify({ event: "" }), /blank event/],
    ["time in milliseconds", JSON.stringify({ time: 1741964966535, event: 1 }), /milliseconds/],
    ["time as text", JSON.stringify({ time: "yesterday", event: 1 }), /not epoch seconds/],
    ["a numeric sourcetype", JSON.stringify({ sourcetype: 5, event: 1 }), /sourcetype: must be a string/],
    ["nested indexed fields", JSON.stringify({ fields: { a: { b: 1 } }, event: 1 }), /fields\.a/],
    ["a broken object", '{"event": 1,}', /not JSON/],
  ])("rejects %s", (_name, body, problem) => {
    const problems = validateSplunk(body);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toMatch(problem);
  });

  it("rejects a missing or malformed Authorization header", () => {
    expect(validateSplunk(good, {}).join()).toMatch(/authorization/);
    expect(validateSplunk(good, { authorization: "Bearer abc" }).join()).toMatch(/authorization/);
  });
});
