import { afterEach, describe, expect, it, vi } from "vitest";
import type { MultiPayload } from "../../sinks/multi";
import { NEWRELIC_MAX_REQUEST_BYTES, newrelicSink } from "../../sinks/newrelic";
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
  someRecords,
  traceItem,
  uid,
  utf8,
} from "./helpers";
import { validateNewRelic } from "./wire/newrelic";

const base = receiverUrl();

sinkContract({
  def: newrelicSink,
  valid: { apiKey: "nr-key", endpoint: `${base}/ok/contract` },
  resolved: {
    apiKey: "nr-key",
    endpoint: `${base}/ok/contract`,
    region: "US",
    logtype: "cloudflare-workers",
    attributes: {},
    gzip: true,
    maxRecords: 1000,
    maxBytes: 500_000,
  },
  invalid: [
    { name: "an empty apiKey", options: { apiKey: "" }, path: "apiKey" },
    { name: "an apiKey with a line break", options: { apiKey: "k\n" }, path: "apiKey" },
    { name: "an unknown region", options: { apiKey: "k", region: "APAC" }, path: "region" },
    { name: "a relative endpoint", options: { apiKey: "k", endpoint: "log/v1" }, path: "endpoint" },
    { name: "a nested attribute value", options: { apiKey: "k", attributes: { a: { b: 1 } } }, path: "attributes.a" },
    { name: "a logtype that is not a string", options: { apiKey: "k", logtype: 3 }, path: "logtype" },
    { name: "maxBytes over 1 MB", options: { apiKey: "k", maxBytes: 2_000_000 }, path: "maxBytes" },
    { name: "gzip as a string", options: { apiKey: "k", gzip: "true" }, path: "gzip" },
  ],
  rejecting: [
    { name: "the endpoint refuses connections", options: { apiKey: "k", endpoint: "http://127.0.0.1:1/" } },
    { name: "the endpoint answers 500", options: { apiKey: "k", endpoint: `${base}/status/500/contract-reject` } },
  ],
  abortOptions: { apiKey: "k", endpoint: `${base}/hang/contract-abort` },
  abortIsHonoured: true,
});

interface NrBlock {
  common?: { attributes?: Record<string, unknown> };
  logs: { timestamp?: number; message?: string; attributes?: Record<string, unknown> }[];
}

function encodeWith(options: Record<string, unknown>, records: SerializedRecord[]): NrBlock[] {
  const { sink } = makeSink<MultiPayload>(newrelicSink, { apiKey: "k", endpoint: `${base}/ok/x`, ...options });
  const payload = sink.encode(records);
  expect(payload.bodies).toHaveLength(1);
  const body = must(payload.bodies[0]).body;
  expect(validateNewRelic(body)).toEqual([]);
  return JSON.parse(body) as NrBlock[];
}

function records(): SerializedRecord[] {
  return serialized([
    traceItem({
      script: "billing",
      status: 502,
      logs: [{ level: "error", message: ["upstream failed", { code: 7 }] }],
      exceptions: [{ name: "Error", message: "boom" }],
    }),
  ]);
}

describe("newrelic sink: record → log", () => {
  it("one block: common attributes (logtype + user attributes), one log per record", () => {
    const recs = records();
    const blocks = encodeWith({ attributes: { environment: "prod", shard: 3 } }, recs);
    expect(blocks).toHaveLength(1);
    const block = must(blocks[0]);
    expect(block.common).toEqual({ attributes: { logtype: "cloudflare-workers", environment: "prod", shard: 3 } });
    expect(block.logs).toHaveLength(recs.length);
  });

  it("timestamp in epoch ms, message, and the record as the attributes", () => {
    const recs = records();
    const logs = must(encodeWith({}, recs)[0]).logs;
    logs.forEach((log, i) => {
      const r = must(recs[i]).record;
      expect(log.timestamp).toBe(r.timestamp);
      expect(Number.isInteger(log.timestamp)).toBe(true);
      expect(log.message).toBe(r.message);
    });
    expect(logs.map((l) => l.attributes)).toEqual(asJson(recs));
    // New Relic's `level` attribute comes straight from the record.
    expect(logs.map((l) => l.attributes?.level)).toEqual(["error", "error", "error"]);
  });

  it("logtype option", () => {
    expect(must(encodeWith({ logtype: "workers" }, records())[0]).common?.attributes?.logtype).toBe("workers");
  });

  it("invocation records stay within New Relic's 255 attributes once flattened", () => {
    // The validator counts flattened attributes, so this fails if the record grows past the limit.
    expect(must(encodeWith({}, someRecords(3, "nr-attrs"))[0]).logs).toHaveLength(6);
  });
});

describe("newrelic sink: requests", () => {
  afterEach(() => vi.restoreAllMocks());

  it("round trip: Api-Key, JSON, gzip on by default, body valid for the Log API", async () => {
    const label = uid("nr");
    const recs = records();
    const { sink } = makeSink<MultiPayload>(newrelicSink, { apiKey: "s3cr3t", endpoint: `${base}/ok/${label}` });
    expect(await sink.send(sink.encode(recs), AbortSignal.timeout(5_000))).toEqual({ outcome: "ok", status: 200 });
    const got = await received(label);
    expect(got).toHaveLength(1);
    const req = must(got[0]);
    expect(req.headers["api-key"]).toBe("s3cr3t");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(req.headers["content-encoding"]).toBe("gzip");
    expect(validateNewRelic(req.body, req.headers)).toEqual([]);
    expect(must((JSON.parse(req.body) as NrBlock[])[0]).logs.map((l) => l.attributes)).toEqual(asJson(recs));
  });

  it("region picks the endpoint: US by default, EU on log-api.eu.newrelic.com", async () => {
    const urls: string[] = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input) => {
      urls.push(input instanceof Request ? input.url : String(input));
      return new Response("", { status: 202 });
    });
    for (const region of [undefined, "US", "EU"]) {
      const { sink } = makeSink<MultiPayload>(newrelicSink, region ? { apiKey: "k", region } : { apiKey: "k" });
      expect(await sink.send(sink.encode(records()), AbortSignal.timeout(1_000))).toMatchObject({ outcome: "ok" });
    }
    expect(urls).toEqual([
      "https://log-api.newrelic.com/log/v1",
      "https://log-api.newrelic.com/log/v1",
      "https://log-api.eu.newrelic.com/log/v1",
    ]);
  });

  it("403 → fail, and the key is not in the reason", async () => {
    const label = uid("nr403");
    const { sink } = makeSink<MultiPayload>(newrelicSink, {
      apiKey: "s3cr3t",
      endpoint: `${base}/status/403/${label}`,
    });
    const r = await sink.send(sink.encode(records()), AbortSignal.timeout(5_000));
    expect(r.outcome).toBe("fail");
    expect(JSON.stringify(r)).not.toContain("s3cr3t");
  });

  it("a batch whose body would pass 1 MB goes as several requests within it, all logs once in order", async () => {
    const label = uid("nrsplit");
    const recs = bigRecords(4, 400_000, "nr-split");
    const { sink, limits } = makeSink<MultiPayload>(newrelicSink, {
      apiKey: "k",
      endpoint: `${base}/ok/${label}`,
      maxBytes: NEWRELIC_MAX_REQUEST_BYTES,
    });
    expect(limits.maxRecordBytes).toBeLessThan(NEWRELIC_MAX_REQUEST_BYTES);
    const payload = sink.encode(recs);
    expect(payload.bodies.length).toBeGreaterThan(1);
    for (const b of payload.bodies) expect(utf8(b.body)).toBeLessThanOrEqual(NEWRELIC_MAX_REQUEST_BYTES);
    expect(await sink.send(payload, AbortSignal.timeout(10_000))).toMatchObject({ outcome: "ok" });
    const got = await received(label);
    expect(got).toHaveLength(payload.bodies.length);
    for (const req of got) expect(validateNewRelic(req.body, req.headers)).toEqual([]);
    const ids = got.flatMap((req) =>
      (JSON.parse(req.body) as NrBlock[]).flatMap((b) => b.logs.map((l) => l.attributes?.id)),
    );
    expect(ids).toEqual(recs.map((r) => r.record.id));
  });

  it("a record at the size limit: its message copy is cut so the request stays within 1 MB", () => {
    const { sink, limits } = makeSink<MultiPayload>(newrelicSink, { apiKey: "k" });
    const [big] = bigRecords(1, (limits.maxRecordBytes ?? 0) - 10, "nr-big");
    const payload = sink.encode([must(big)]);
    expect(payload.bodies).toHaveLength(1);
    const body = must(payload.bodies[0]).body;
    expect(validateNewRelic(body)).toEqual([]);
    const log = must(must((JSON.parse(body) as NrBlock[])[0]).logs[0]);
    expect(log.attributes).toEqual(JSON.parse(must(big).line));
    expect((log.message ?? "").length).toBeLessThan(must(big).record.message.length);
  });
});

describe("newrelic sink: every fixture TraceItem", () => {
  it("captured and synthetic TraceItems encode to payloads the wire validator accepts", () => {
    const items = Object.entries({ ...captured, ...synthetic })
      .filter(([k]) => k !== "_comment")
      .map(([, x]) => x as Record<string, unknown>);
    const recs = serialized(items);
    expect(recs.length).toBeGreaterThan(20);
    const { sink } = makeSink<MultiPayload>(newrelicSink, { apiKey: "k" });
    const payload = sink.encode(recs);
    expect(payload.bodies.length).toBeGreaterThan(0);
    for (const b of payload.bodies) expect(validateNewRelic(b.body)).toEqual([]);
  });
});

describe("newrelic wire validator", () => {
  const good = JSON.stringify([
    {
      common: { attributes: { logtype: "x" } },
      logs: [{ timestamp: 1741964966535, message: "hi", attributes: { level: "info", nested: { a: 1 } } }],
    },
  ]);

  it("accepts a good payload", () => {
    expect(validateNewRelic(good, { "api-key": "k", "content-type": "application/json" })).toEqual([]);
  });

  const many = Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`a${i}`, i]));
  it.each([
    ["not JSON", "[{", /not JSON/],
    ["a bare object", JSON.stringify({ logs: [] }), /not a JSON array/],
    ["a block without logs", JSON.stringify([{ common: {} }]), /logs: not an array/],
    [
      "common that is not an object",
      JSON.stringify([{ common: 1, logs: [{ message: "x" }] }]),
      /common: not an object/,
    ],
    ["a string timestamp", JSON.stringify([{ logs: [{ timestamp: "1741964966535", message: "x" }] }]), /timestamp/],
    ["a fractional timestamp", JSON.stringify([{ logs: [{ timestamp: 1.5, message: "x" }] }]), /timestamp/],
    ["a numeric message", JSON.stringify([{ logs: [{ message: 7 }] }]), /message: must be a string/],
    ["a log that is not an object", JSON.stringify([{ logs: ["x"] }]), /not an object/],
    ["more than 255 attributes", JSON.stringify([{ logs: [{ message: "x", attributes: many }] }]), /over 255/],
    ["a body over 1 MB", JSON.stringify([{ logs: [{ message: "x".repeat(1_000_000) }] }]), /over 1 MB/],
  ])("rejects %s", (_name, body, problem) => {
    const problems = validateNewRelic(body);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toMatch(problem);
  });

  it("rejects a missing key or a wrong content type", () => {
    expect(validateNewRelic(good, { "content-type": "application/json" }).join()).toMatch(/Api-Key/);
    expect(validateNewRelic(good, { "api-key": "k", "content-type": "text/plain" }).join()).toMatch(/content-type/);
  });
});
