import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { type BetterStackPayload, betterstackSink } from "../../sinks/betterstack";
import { sinkContract } from "./contract";
import { asJson, makeSink, must, parseNdjson, received, receiverUrl, someRecords, uid } from "./helpers";
import { validateBetterStack } from "./wire/betterstack";

const base = receiverUrl();

sinkContract({
  def: betterstackSink,
  valid: { endpoint: `${base}/ok/contract`, token: "src-1" },
  resolved: {
    endpoint: `${base}/ok/contract`,
    token: "src-1",
    gzip: true,
    maxRecords: 1000,
    maxBytes: 5 * 1024 * 1024,
  },
  invalid: [
    { name: "neither host nor endpoint", options: { token: "t" }, path: "host" },
    {
      name: "both host and endpoint",
      options: { token: "t", host: "s1.betterstackdata.com", endpoint: `${base}/ok/x` },
      path: "endpoint",
    },
    { name: "a host with a scheme", options: { token: "t", host: "https://s1.betterstackdata.com" }, path: "host" },
    { name: "a host with a path", options: { token: "t", host: "s1.betterstackdata.com/x" }, path: "host" },
    { name: "a relative endpoint", options: { token: "t", endpoint: "/ingest" }, path: "endpoint" },
    { name: "an empty token", options: { host: "s1.betterstackdata.com", token: "" }, path: "token" },
    { name: "a token with a line break", options: { host: "s1.betterstackdata.com", token: "a\r\nb" }, path: "token" },
    { name: "gzip as a number", options: { host: "s1.betterstackdata.com", token: "t", gzip: 1 }, path: "gzip" },
    {
      name: "maxBytes above 10 MiB",
      options: { host: "s1.betterstackdata.com", token: "t", maxBytes: 11 * 1024 * 1024 },
      path: "maxBytes",
    },
    {
      name: "fractional maxRecords",
      options: { host: "s1.betterstackdata.com", token: "t", maxRecords: 1.5 },
      path: "maxRecords",
    },
  ],
  rejecting: [
    { name: "the endpoint refuses connections", options: { endpoint: "http://127.0.0.1:1/", token: "t" } },
    { name: "the endpoint answers 500", options: { endpoint: `${base}/status/500/contract-reject`, token: "t" } },
    { name: "the endpoint answers 413", options: { endpoint: `${base}/status/413/contract-reject`, token: "t" } },
  ],
  abortOptions: { endpoint: `${base}/hang/contract-abort`, token: "t" },
  abortIsHonoured: true,
});

describe("betterstack sink: mapping", () => {
  it("host alone is enough; the token reads BETTERSTACK_SOURCE_TOKEN", () => {
    const res = v.parse(betterstackSink.options, { host: "s1234.eu-nbg-2.betterstackdata.com", token: "t" });
    expect(res).toEqual({
      host: "s1234.eu-nbg-2.betterstackdata.com",
      token: "t",
      gzip: true,
      maxRecords: 1000,
      maxBytes: 5 * 1024 * 1024,
    });
    expect(betterstackSink.defaultSecrets).toEqual({ token: "BETTERSTACK_SOURCE_TOKEN" });
  });

  it("each line is the record with dt (RFC 3339 of its timestamp) added first", () => {
    const records = someRecords(3, "bs-map");
    const { sink } = makeSink<BetterStackPayload>(betterstackSink, { host: "s1.betterstackdata.com", token: "t" });
    const events = parseNdjson(sink.encode(records).body) as Record<string, unknown>[];
    expect(events).toHaveLength(records.length);
    events.forEach((e, i) => {
      const r = must(records[i]);
      expect(Object.keys(e)[0]).toBe("dt");
      expect(Date.parse(e.dt as string)).toBe(r.record.timestamp);
      const { dt, ...rest } = e;
      expect(rest).toEqual(JSON.parse(r.line));
      // Better Stack shows `message` and `level`: the record's own fields.
      expect(rest.message).toBe(r.record.message);
      expect(rest.level).toBe(r.record.level);
    });
  });

  it("limits: the options' batch size, well under the 20 MiB request limit", () => {
    const { limits } = makeSink(betterstackSink, { host: "s1.betterstackdata.com", token: "t", maxRecords: 10 });
    expect(limits.maxRecords).toBe(10);
    expect(limits.maxBytes).toBe(5 * 1024 * 1024);
    expect(must(limits.maxRecordBytes)).toBeLessThan(20 * 1024 * 1024);
  });
});

describe("betterstack sink: round trip through the receiver", () => {
  it("POST to the endpoint, bearer source token, NDJSON, gzip", async () => {
    const label = uid("bs-rt");
    const records = someRecords(4, "bs-rt");
    const { sink } = makeSink<BetterStackPayload>(betterstackSink, {
      endpoint: `${base}/ok/${label}`,
      token: "s3cr3t",
    });
    const result = await sink.send(sink.encode(records), AbortSignal.timeout(5_000));
    expect(result).toEqual({ outcome: "ok", status: 200 });
    const got = await received(label);
    expect(got).toHaveLength(1);
    const req = must(got[0]);
    expect(req.method).toBe("POST");
    expect(req.path).toBe(`/ok/${label}`);
    expect(req.headers.authorization).toBe("Bearer s3cr3t");
    expect(req.headers["content-type"]).toBe("application/x-ndjson");
    expect(req.headers["content-encoding"]).toBe("gzip");
    expect(req.wireBytes).toBeLessThan(req.body.length);
    expect(validateBetterStack(req.body, req.headers)).toEqual([]);
    expect((parseNdjson(req.body) as Record<string, unknown>[]).map(({ dt, ...rest }) => rest)).toEqual(
      asJson(records),
    );
  });

  it("gzip off sends plain NDJSON", async () => {
    const label = uid("bs-plain");
    const { sink } = makeSink<BetterStackPayload>(betterstackSink, {
      endpoint: `${base}/ok/${label}`,
      token: "t",
      gzip: false,
    });
    await sink.send(sink.encode(someRecords(1)), AbortSignal.timeout(5_000));
    const req = must((await received(label))[0]);
    expect(req.headers["content-encoding"]).toBeUndefined();
    expect(validateBetterStack(req.body, req.headers)).toEqual([]);
  });

  it("413 → fail (a smaller batch is the fix, not a retry); 429 with Retry-After → retry", async () => {
    const label = uid("bs-413");
    const { sink } = makeSink<BetterStackPayload>(betterstackSink, {
      endpoint: `${base}/status/413/${label}`,
      token: "sekrit",
    });
    const r1 = await sink.send(sink.encode(someRecords(1)), AbortSignal.timeout(5_000));
    expect(r1).toMatchObject({ outcome: "fail", status: 413 });
    if (r1.outcome === "fail") expect(r1.reason).not.toContain("sekrit");
    const label2 = uid("bs-429");
    const { sink: s2 } = makeSink<BetterStackPayload>(betterstackSink, {
      endpoint: `${base}/status/429/${label2}?retryAfter=2`,
      token: "t",
    });
    expect(await s2.send(s2.encode(someRecords(1)), AbortSignal.timeout(5_000))).toMatchObject({
      outcome: "retry",
      status: 429,
      retryAfterMs: 2000,
    });
  });
});

describe("betterstack wire validator", () => {
  const good = () => {
    const { sink } = makeSink<BetterStackPayload>(betterstackSink, { host: "s1.betterstackdata.com", token: "t" });
    return sink.encode(someRecords(2, "bs-wire")).body;
  };
  const ndjsonHeaders = { "content-type": "application/x-ndjson", authorization: "Bearer t" };

  it("accepts what the sink encodes, and a JSON array with numeric dt", () => {
    expect(validateBetterStack(good(), ndjsonHeaders)).toEqual([]);
    expect(
      validateBetterStack('[{"dt":1741964966,"message":"a"}]', {
        "content-type": "application/json",
        authorization: "Bearer t",
      }),
    ).toEqual([]);
  });

  it.each([
    { name: "an empty body", body: "", match: /empty/ },
    { name: "a line that is not JSON", body: '{"dt":"2025-03-14T15:09:26.535Z"}\nnope\n', match: /not JSON/ },
    { name: "an event without dt", body: '{"message":"x"}\n', match: /no dt/ },
    { name: "an unparseable dt", body: '{"dt":"the other day"}\n', match: /not parseable/ },
    { name: "a dt of the wrong type", body: '{"dt":{"s":1}}\n', match: /neither/ },
    { name: "a line that is an array", body: '["dt"]\n', match: /not a JSON object/ },
  ])("rejects $name", ({ body, match }) => {
    const problems = validateBetterStack(body, ndjsonHeaders);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toMatch(match);
  });

  it("rejects a text/plain content type and a missing token", () => {
    expect(validateBetterStack(good(), { "content-type": "text/plain" }).join("\n")).toMatch(
      /content-type.*authorization/s,
    );
  });
});
