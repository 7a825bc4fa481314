import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { type LokiPayload, lokiSink, unixNanos } from "../../sinks/loki";
import { serializeRecord } from "../../src/json";
import type { LogRecord, SerializedRecord } from "../../src/record";
import { sinkContract } from "./contract";
import { makeSink, must, received, receiverUrl, serialized, someRecords, T0, traceItem, uid } from "./helpers";
import { validateLoki } from "./wire/loki";

const base = receiverUrl();
const DEFAULT_LABELS = ["script", "outcome", "level", "eventType"];

sinkContract({
  def: lokiSink,
  valid: { endpoint: `${base}/ok/contract`, apiKey: "k" },
  resolved: {
    endpoint: `${base}/ok/contract`,
    apiKey: "k",
    labels: DEFAULT_LABELS,
    staticLabels: {},
    gzip: true,
    maxRecords: 1000,
    maxBytes: 1024 * 1024,
  },
  invalid: [
    { name: "a relative endpoint", options: { endpoint: "/push", apiKey: "k" }, path: "endpoint" },
    { name: "an apiKey of the wrong type", options: { endpoint: `${base}/ok/x`, apiKey: 1 }, path: "apiKey" },
    {
      name: "the high-cardinality label id",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", labels: ["level", "id"] },
      path: "labels.1",
    },
    {
      name: "the high-cardinality label invocationId",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", labels: ["invocationId"] },
      path: "labels.0",
    },
    {
      name: "the high-cardinality label url",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", labels: ["url"] },
      path: "labels.0",
    },
    {
      name: "an unknown label field",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", labels: ["colour"] },
      path: "labels.0",
    },
    {
      name: "a label listed twice",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", labels: ["level", "level"] },
      path: "labels",
    },
    {
      name: "labels that can all be missing and no static label",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", labels: ["script"] },
      path: "labels",
    },
    {
      name: "a static label name with a dash",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", staticLabels: { "bad-name": "x" } },
      path: "staticLabels.bad-name",
    },
    {
      name: "a reserved static label name",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", staticLabels: { __name__: "x" } },
      path: "staticLabels.__name__",
    },
    {
      name: "an empty static label value",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", staticLabels: { job: "" } },
      path: "staticLabels.job",
    },
    {
      name: "a static label clashing with a record label",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", staticLabels: { level: "x" } },
      path: "staticLabels",
    },
    {
      name: "a username with a colon",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", username: "a:b" },
      path: "username",
    },
    {
      name: "a tenant with a line break",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", tenant: "a\r\nx: y" },
      path: "tenant",
    },
    { name: "gzip as a string", options: { endpoint: `${base}/ok/x`, apiKey: "k", gzip: "yes" }, path: "gzip" },
    { name: "maxRecords 0", options: { endpoint: `${base}/ok/x`, apiKey: "k", maxRecords: 0 }, path: "maxRecords" },
    {
      name: "maxBytes above 8 MiB",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", maxBytes: 9 * 1024 * 1024 },
      path: "maxBytes",
    },
  ],
  rejecting: [
    { name: "the endpoint refuses connections", options: { endpoint: "http://127.0.0.1:1", apiKey: "k" } },
    { name: "the endpoint answers 500", options: { endpoint: `${base}/status/500/contract-reject`, apiKey: "k" } },
    { name: "the endpoint answers 400", options: { endpoint: `${base}/status/400/contract-reject`, apiKey: "k" } },
  ],
  abortOptions: { endpoint: `${base}/hang/contract-abort`, apiKey: "k" },
  abortIsHonoured: true,
});

interface PushBody {
  streams: { stream: Record<string, string>; values: [string, string][] }[];
}

function encode(records: SerializedRecord[], options: Record<string, unknown> = {}): PushBody {
  const { sink } = makeSink<LokiPayload>(lokiSink, { endpoint: `${base}/ok/x`, apiKey: "k", ...options });
  return JSON.parse(sink.encode(records).body) as PushBody;
}

/** A batch with several label sets: an ok fetch, a 500 fetch with an error log, and an exception. */
function mixedRecords(): SerializedRecord[] {
  return serialized([
    traceItem({ script: "api", eventTimestamp: T0, logs: [{ level: "warn", message: ["slow"] }] }),
    traceItem({ script: "api", status: 500, eventTimestamp: T0 + 10, logs: [{ level: "error", message: ["boom"] }] }),
    traceItem({
      script: "billing",
      outcome: "exception",
      eventTimestamp: T0 + 20,
      logs: [],
      exceptions: [{ name: "TypeError", message: "x is undefined" }],
    }),
  ]);
}

describe("loki sink: timestamps", () => {
  it("unixNanos builds the nanosecond string from the ms digits, exactly", () => {
    expect(unixNanos(T0)).toBe(`${T0}000000`);
    expect(BigInt(unixNanos(T0))).toBe(BigInt(T0) * 1_000_000n);
    // A float multiply would lose digits here (> 2^53); the string must not.
    expect(unixNanos(1_741_964_966_535)).toBe("1741964966535000000");
    expect(unixNanos(1_741_964_966_535.25)).toBe("1741964966535250000");
    expect(unixNanos(1000.9999999)).toBe("1001000000");
    expect(unixNanos(0.5)).toBe("500000");
    expect(unixNanos(0)).toBe("0");
    expect(unixNanos(-5)).toBe("0");
    expect(unixNanos(Number.NaN)).toBe("0");
    expect(unixNanos(1e20)).toMatch(/^\d+$/);
  });

  it("each value's timestamp is the record's timestamp in ns, as a string", () => {
    const records = someRecords(3, "loki-ts");
    const body = encode(records);
    const byLine = new Map(body.streams.flatMap((s) => s.values.map(([ts, line]) => [line, ts] as const)));
    for (const r of records) expect(byLine.get(r.line)).toBe(`${r.record.timestamp}000000`);
  });

  it("values are sorted oldest first within each stream, even when the batch is not", () => {
    const records = someRecords(5, "loki-sort").reverse();
    const body = encode(records);
    for (const s of body.streams) {
      const ts = s.values.map(([t]) => BigInt(t));
      expect([...ts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(ts);
    }
    expect(validateLoki(JSON.stringify(body))).toEqual([]);
  });
});

describe("loki sink: labels and lines", () => {
  it("default labels: script, outcome, level, eventType, one stream per distinct set", () => {
    const records = mixedRecords();
    const body = encode(records);
    const sets = body.streams.map((s) => s.stream);
    for (const set of sets) expect(Object.keys(set)).toEqual(DEFAULT_LABELS);
    expect(sets).toContainEqual({ script: "api", outcome: "ok", level: "warn", eventType: "fetch" });
    expect(sets).toContainEqual({ script: "api", outcome: "ok", level: "error", eventType: "fetch" });
    expect(sets).toContainEqual({ script: "billing", outcome: "exception", level: "error", eventType: "fetch" });
    expect(new Set(sets.map((x) => JSON.stringify(x))).size).toBe(sets.length);
    // Every record lands once, in the stream whose labels match it.
    expect(body.streams.reduce((n, s) => n + s.values.length, 0)).toBe(records.length);
    for (const s of body.streams)
      for (const [, line] of s.values) {
        const rec = JSON.parse(line) as LogRecord;
        expect(s.stream).toEqual({
          script: rec.scriptName,
          outcome: rec.outcome,
          level: rec.level,
          eventType: rec.eventType,
        });
      }
  });

  it("the line is exactly the record's JSON", () => {
    const records = someRecords(2, "loki-line");
    const lines = encode(records).streams.flatMap((s) => s.values.map(([, l]) => l));
    expect(lines.sort()).toEqual(records.map((r) => r.line).sort());
  });

  it("chosen labels, numbers as strings, static labels added, missing values left out", () => {
    const [inv] = serialized([traceItem({ script: "api", status: 404 })]);
    const noScript = serializeRecord({ ...must(inv).record, scriptName: null } as LogRecord);
    const body = encode([must(inv), noScript], {
      labels: ["script", "status", "type"],
      staticLabels: { job: "tailfan", env: "prod" },
    });
    expect(body.streams.map((s) => s.stream)).toEqual([
      { script: "api", status: "404", type: "invocation", job: "tailfan", env: "prod" },
      { status: "404", type: "invocation", job: "tailfan", env: "prod" },
    ]);
    for (const s of body.streams) for (const val of Object.values(s.stream)) expect(typeof val).toBe("string");
  });

  it("an empty batch is an empty streams list", () => {
    expect(encode([])).toEqual({ streams: [] });
  });

  it("high-cardinality labels are refused with a message that says why", () => {
    const res = v.safeParse(lokiSink.options, { endpoint: `${base}/ok/x`, apiKey: "k", labels: ["invocationId"] });
    expect(res.success).toBe(false);
    if (!res.success) expect(res.issues[0]?.message).toMatch(/high-cardinality/);
    const res2 = v.safeParse(lokiSink.options, { endpoint: `${base}/ok/x`, apiKey: "k", labels: ["scriptName"] });
    if (!res2.success) expect(res2.issues[0]?.message).toMatch(/"script"/);
  });

  it("limits: 256000-byte lines (Loki's max_line_size), the options' batch size", () => {
    const { limits } = makeSink(lokiSink, { endpoint: `${base}/ok/x`, apiKey: "k", maxRecords: 50 });
    expect(limits).toEqual({ maxRecords: 50, maxBytes: 1024 * 1024, maxRecordBytes: 256_000 });
  });

  it("reads LOKI_API_KEY by default", () => {
    expect(lokiSink.defaultSecrets).toEqual({ apiKey: "LOKI_API_KEY" });
  });
});

describe("loki sink: round trip through the receiver", () => {
  async function roundTrip(options: Record<string, unknown>, label: string) {
    const records = mixedRecords();
    const { sink } = makeSink<LokiPayload>(lokiSink, { endpoint: `${base}/ok/${label}`, ...options });
    const result = await sink.send(sink.encode(records), AbortSignal.timeout(5_000));
    const got = await received(label);
    return { records, result, req: must(got[0]), count: got.length };
  }

  it("basic auth with username, tenant header, gzip, JSON push to /loki/api/v1/push", async () => {
    const label = uid("loki-basic");
    const { records, result, req, count } = await roundTrip(
      { apiKey: "glc_s3cr3t", username: "123456", tenant: "team-a" },
      label,
    );
    expect(result).toEqual({ outcome: "ok", status: 200 });
    expect(count).toBe(1);
    expect(req.method).toBe("POST");
    expect(req.path).toBe(`/ok/${label}/loki/api/v1/push`);
    expect(req.headers.authorization).toBe(`Basic ${btoa("123456:glc_s3cr3t")}`);
    expect(req.headers["x-scope-orgid"]).toBe("team-a");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(req.headers["content-encoding"]).toBe("gzip");
    expect(req.wireBytes).toBeLessThan(req.body.length);
    expect(validateLoki(req.body, req.headers)).toEqual([]);
    const body = JSON.parse(req.body) as PushBody;
    expect(body.streams.flatMap((s) => s.values.map(([, l]) => l)).sort()).toEqual(records.map((r) => r.line).sort());
  });

  it("bearer token without username; gzip off sends plain JSON; no tenant header by default", async () => {
    const label = uid("loki-bearer");
    const { result, req } = await roundTrip({ apiKey: "tok", gzip: false }, label);
    expect(result.outcome).toBe("ok");
    expect(req.headers.authorization).toBe("Bearer tok");
    expect(req.headers["content-encoding"]).toBeUndefined();
    expect(req.headers["x-scope-orgid"]).toBeUndefined();
    expect(validateLoki(req.body, req.headers)).toEqual([]);
  });

  it('apiKey "" sends no Authorization header (Loki without auth)', async () => {
    const label = uid("loki-noauth");
    const { result, req } = await roundTrip({ apiKey: "" }, label);
    expect(result.outcome).toBe("ok");
    expect(req.headers.authorization).toBeUndefined();
  });

  it("an endpoint already ending in /loki/api/v1/push is used as is", async () => {
    const label = uid("loki-full");
    const { sink } = makeSink<LokiPayload>(lokiSink, {
      endpoint: `${base}/ok/${label}/loki/api/v1/push/`,
      apiKey: "k",
    });
    await sink.send(sink.encode(someRecords(1)), AbortSignal.timeout(5_000));
    expect(must((await received(label))[0]).path).toBe(`/ok/${label}/loki/api/v1/push`);
  });

  it("429 with Retry-After → retry with the delay; 400 → fail, reason without the key", async () => {
    const label = uid("loki-429");
    const { sink } = makeSink<LokiPayload>(lokiSink, {
      endpoint: `${base}/status/429/${label}?retryAfter=7`,
      apiKey: "sekrit",
    });
    // The push path goes before the query string.
    const r1 = await sink.send(sink.encode(someRecords(1)), AbortSignal.timeout(5_000));
    expect(r1).toMatchObject({ outcome: "retry", status: 429, retryAfterMs: 7000 });
    expect(must((await received(label))[0]).path).toBe(`/status/429/${label}/loki/api/v1/push`);
    const label2 = uid("loki-400");
    const { sink: s2 } = makeSink<LokiPayload>(lokiSink, {
      endpoint: `${base}/status/400/${label2}`,
      apiKey: "sekrit",
    });
    const r2 = await s2.send(s2.encode(someRecords(1)), AbortSignal.timeout(5_000));
    expect(r2).toMatchObject({ outcome: "fail", status: 400 });
    if (r2.outcome === "fail") expect(r2.reason).not.toContain("sekrit");
  });
});

describe("loki wire validator", () => {
  const good = () => encode(mixedRecords()) as unknown as Record<string, unknown>;

  it("accepts what the sink encodes", () => {
    expect(validateLoki(JSON.stringify(good()), { "content-type": "application/json" })).toEqual([]);
  });

  const bad: { name: string; body: unknown; match: RegExp }[] = [
    { name: "not JSON", body: "{streams:", match: /not JSON/ },
    { name: "no streams array", body: { stream: [] }, match: /streams is not an array/ },
    {
      name: "a stream without labels",
      body: { streams: [{ stream: {}, values: [["1741964966535000000", "x"]] }] },
      match: /no labels/,
    },
    {
      name: "an invalid label name",
      body: { streams: [{ stream: { "event-type": "fetch" }, values: [["1741964966535000000", "x"]] }] },
      match: /not valid/,
    },
    {
      name: "a reserved label name",
      body: { streams: [{ stream: { __name__: "x" }, values: [["1741964966535000000", "x"]] }] },
      match: /reserved/,
    },
    {
      name: "a numeric label value",
      body: { streams: [{ stream: { status: 500 }, values: [["1741964966535000000", "x"]] }] },
      match: /not a string/,
    },
    {
      name: "a numeric timestamp",
      body: { streams: [{ stream: { a: "b" }, values: [[1741964966535000000, "x"]] }] },
      match: /string of digits/,
    },
    {
      name: "a millisecond timestamp",
      body: { streams: [{ stream: { a: "b" }, values: [["1741964966535", "x"]] }] },
      match: /nanosecond range/,
    },
    {
      name: "a float-formatted timestamp",
      body: { streams: [{ stream: { a: "b" }, values: [["1.741964966535e+18", "x"]] }] },
      match: /string of digits/,
    },
    {
      name: "values out of order",
      body: {
        streams: [
          {
            stream: { a: "b" },
            values: [
              ["1741964966536000000", "x"],
              ["1741964966535000000", "y"],
            ],
          },
        ],
      },
      match: /older than/,
    },
    {
      name: "a non-string line",
      body: { streams: [{ stream: { a: "b" }, values: [["1741964966535000000", { m: 1 }]] }] },
      match: /\[1\] is not a string/,
    },
    {
      name: "a value that is not a pair",
      body: { streams: [{ stream: { a: "b" }, values: ["1741964966535000000"] }] },
      match: /is not \[/,
    },
  ];

  it.each(bad)("rejects $name", ({ body, match }) => {
    const problems = validateLoki(typeof body === "string" ? body : JSON.stringify(body));
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toMatch(match);
  });

  it("rejects a protobuf content type", () => {
    expect(validateLoki(JSON.stringify(good()), { "content-type": "application/x-protobuf" })).not.toEqual([]);
  });
});
