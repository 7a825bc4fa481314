import { describe, expect, it } from "vitest";
import { type AxiomPayload, axiomSink, ingestUrl } from "../../sinks/axiom";
import { isoTime, withLeadingField } from "../../sinks/shared";
import { serializeRecord } from "../../src/json";
import type { LogRecord } from "../../src/record";
import { sinkContract } from "./contract";
import { asJson, makeSink, must, parseNdjson, received, receiverUrl, someRecords, uid } from "./helpers";
import { validateAxiom } from "./wire/axiom";

const base = receiverUrl();

sinkContract({
  def: axiomSink,
  valid: { dataset: "logs", token: "xaat-1", endpoint: `${base}/ok/contract` },
  resolved: {
    dataset: "logs",
    token: "xaat-1",
    endpoint: `${base}/ok/contract`,
    gzip: true,
    maxRecords: 1000,
    maxBytes: 5 * 1024 * 1024,
  },
  invalid: [
    { name: "an empty dataset", options: { dataset: "", token: "t" }, path: "dataset" },
    { name: "a dataset with a slash", options: { dataset: "a/b", token: "t" }, path: "dataset" },
    { name: "an empty token", options: { dataset: "logs", token: "" }, path: "token" },
    { name: "a token with a line break", options: { dataset: "logs", token: "t\nx: y" }, path: "token" },
    {
      name: "a relative endpoint",
      options: { dataset: "logs", token: "t", endpoint: "api.axiom.co" },
      path: "endpoint",
    },
    { name: "gzip as a string", options: { dataset: "logs", token: "t", gzip: "no" }, path: "gzip" },
    {
      name: "maxRecords above Axiom's 10,000",
      options: { dataset: "logs", token: "t", maxRecords: 10_001 },
      path: "maxRecords",
    },
    { name: "maxBytes below 1024", options: { dataset: "logs", token: "t", maxBytes: 10 }, path: "maxBytes" },
  ],
  rejecting: [
    {
      name: "the endpoint refuses connections",
      options: { dataset: "logs", token: "t", endpoint: "http://127.0.0.1:1" },
    },
    {
      name: "the endpoint answers 500",
      options: { dataset: "logs", token: "t", endpoint: `${base}/status/500/contract-reject` },
    },
    {
      name: "the endpoint answers 403",
      options: { dataset: "logs", token: "t", endpoint: `${base}/status/403/contract-reject` },
    },
  ],
  abortOptions: { dataset: "logs", token: "t", endpoint: `${base}/hang/contract-abort` },
  abortIsHonoured: true,
});

describe("axiom sink: mapping", () => {
  it("the default endpoint is api.axiom.co and the token reads AXIOM_TOKEN", () => {
    const { options } = makeSink(axiomSink, { dataset: "logs", token: "t" });
    expect(options.endpoint).toBe("https://api.axiom.co");
    expect(axiomSink.defaultSecrets).toEqual({ token: "AXIOM_TOKEN" });
  });

  it("each line is the record with _time (RFC 3339 of its timestamp) added first", () => {
    const records = someRecords(3, "axiom-map");
    const { sink } = makeSink<AxiomPayload>(axiomSink, { dataset: "logs", token: "t" });
    const events = parseNdjson(sink.encode(records).body) as Record<string, unknown>[];
    expect(events).toHaveLength(records.length);
    events.forEach((e, i) => {
      const r = must(records[i]);
      expect(Object.keys(e)[0]).toBe("_time");
      expect(e._time).toBe(new Date(r.record.timestamp).toISOString());
      expect(Date.parse(e._time as string)).toBe(r.record.timestamp);
      const { _time, ...rest } = e;
      expect(rest).toEqual(JSON.parse(r.line));
    });
  });

  it("isoTime clamps times toISOString cannot print; withLeadingField handles an empty object", () => {
    expect(isoTime(0)).toBe("1970-01-01T00:00:00.000Z");
    expect(isoTime(1e20)).toBe("9999-12-31T23:59:59.999Z");
    expect(isoTime(Number.NaN)).toBe("1970-01-01T00:00:00.000Z");
    expect(withLeadingField("{}", "_time", "x")).toBe('{"_time":"x"}');
    expect(withLeadingField('{"a":1}', "_time", "x")).toBe('{"_time":"x","a":1}');
  });

  it("a record with an odd timestamp still encodes to a valid body", () => {
    const [r] = someRecords(1, "axiom-odd");
    const odd = serializeRecord({ ...must(r).record, timestamp: 1e300 } as LogRecord);
    const { sink } = makeSink<AxiomPayload>(axiomSink, { dataset: "logs", token: "t" });
    expect(validateAxiom(sink.encode([odd]).body)).toEqual([]);
  });

  it("limits: 1 MB events minus the _time field, the options' batch size", () => {
    const { limits } = makeSink(axiomSink, { dataset: "logs", token: "t" });
    expect(limits.maxRecords).toBe(1000);
    expect(limits.maxBytes).toBe(5 * 1024 * 1024);
    expect(limits.maxRecordBytes).toBeLessThan(1_000_000);
    expect(limits.maxRecordBytes).toBeGreaterThan(999_000);
  });
});

describe("axiom sink: round trip through the receiver", () => {
  it("POST <endpoint>/v1/datasets/<dataset>/ingest, bearer token, NDJSON, gzip", async () => {
    const label = uid("axiom-rt");
    const records = someRecords(4, "axiom-rt");
    const { sink } = makeSink<AxiomPayload>(axiomSink, {
      dataset: "cf workers",
      token: "xaat-s3cr3t",
      endpoint: `${base}/ok/${label}`,
    });
    const result = await sink.send(sink.encode(records), AbortSignal.timeout(5_000));
    expect(result).toEqual({ outcome: "ok", status: 200 });
    const got = await received(label);
    expect(got).toHaveLength(1);
    const req = must(got[0]);
    expect(req.method).toBe("POST");
    expect(req.path).toBe(`/ok/${label}/v1/datasets/cf%20workers/ingest`);
    expect(req.headers.authorization).toBe("Bearer xaat-s3cr3t");
    expect(req.headers["content-type"]).toBe("application/x-ndjson");
    expect(req.headers["content-encoding"]).toBe("gzip");
    expect(req.wireBytes).toBeLessThan(req.body.length);
    expect(validateAxiom(req.body, req.headers)).toEqual([]);
    const events = parseNdjson(req.body) as Record<string, unknown>[];
    expect(events.map(({ _time, ...rest }) => rest)).toEqual(asJson(records));
  });

  it("gzip off sends plain NDJSON", async () => {
    const label = uid("axiom-plain");
    const { sink } = makeSink<AxiomPayload>(axiomSink, {
      dataset: "d",
      token: "t",
      endpoint: `${base}/ok/${label}`,
      gzip: false,
    });
    await sink.send(sink.encode(someRecords(1)), AbortSignal.timeout(5_000));
    const req = must((await received(label))[0]);
    expect(req.headers["content-encoding"]).toBeUndefined();
    expect(validateAxiom(req.body, req.headers)).toEqual([]);
  });

  it("ingest URLs: api.axiom.co and any other host use /v1/datasets/<dataset>/ingest, edge domains /v1/ingest/<dataset>", () => {
    expect(ingestUrl("https://api.axiom.co", "logs")).toBe("https://api.axiom.co/v1/datasets/logs/ingest");
    expect(ingestUrl("https://api.axiom.co/", "a b")).toBe("https://api.axiom.co/v1/datasets/a%20b/ingest");
    expect(ingestUrl("https://eu-central-1.aws.edge.axiom.co", "logs")).toBe(
      "https://eu-central-1.aws.edge.axiom.co/v1/ingest/logs",
    );
    expect(ingestUrl("https://us-east-1.aws.edge.axiom.co/", "logs")).toBe(
      "https://us-east-1.aws.edge.axiom.co/v1/ingest/logs",
    );
    expect(ingestUrl("http://proxy:8080/axiom?x=1", "logs")).toBe(
      "http://proxy:8080/axiom/v1/datasets/logs/ingest?x=1",
    );
  });

  it("429 with Retry-After → retry with the delay; 401 → fail without the token in the reason", async () => {
    const label = uid("axiom-429");
    const { sink } = makeSink<AxiomPayload>(axiomSink, {
      dataset: "d",
      token: "sekrit",
      endpoint: `${base}/status/429/${label}?retryAfter=7`,
    });
    const r1 = await sink.send(sink.encode(someRecords(1)), AbortSignal.timeout(5_000));
    expect(r1).toMatchObject({ outcome: "retry", status: 429, retryAfterMs: 7000 });
    const label2 = uid("axiom-401");
    const { sink: s2 } = makeSink<AxiomPayload>(axiomSink, {
      dataset: "d",
      token: "sekrit",
      endpoint: `${base}/status/401/${label2}`,
    });
    const r2 = await s2.send(s2.encode(someRecords(1)), AbortSignal.timeout(5_000));
    expect(r2).toMatchObject({ outcome: "fail", status: 401 });
    if (r2.outcome === "fail") expect(r2.reason).not.toContain("sekrit");
  });
});

describe("axiom wire validator", () => {
  const good = () => {
    const { sink } = makeSink<AxiomPayload>(axiomSink, { dataset: "d", token: "t" });
    return sink.encode(someRecords(2, "axiom-wire")).body;
  };
  const headers = { "content-type": "application/x-ndjson", authorization: "Bearer t" };

  it("accepts what the sink encodes", () => {
    expect(validateAxiom(good(), headers)).toEqual([]);
  });

  it.each([
    { name: "an empty body", body: "", match: /empty/ },
    { name: "no trailing newline", body: '{"_time":"2025-03-14T15:09:26.535Z"}', match: /newline/ },
    { name: "a line that is not JSON", body: '{"_time":"2025-03-14T15:09:26.535Z"}\n{oops\n', match: /not JSON/ },
    {
      name: "a JSON array instead of NDJSON",
      body: '[{"_time":"2025-03-14T15:09:26.535Z"}]\n',
      match: /not a JSON object/,
    },
    { name: "an event without _time", body: '{"message":"x"}\n', match: /no _time/ },
    { name: "an unreadable _time", body: '{"_time":"yesterday"}\n', match: /not RFC 3339/ },
    { name: "a _time of the wrong type", body: '{"_time":true}\n', match: /not a time/ },
    { name: "an over-long field name", body: `{"_time":1741964966535,"${"f".repeat(201)}":1}\n`, match: /field name/ },
  ])("rejects $name", ({ body, match }) => {
    const problems = validateAxiom(body);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toMatch(match);
  });

  it("rejects a JSON content type and a missing bearer token", () => {
    expect(validateAxiom(good(), { "content-type": "application/json" }).join("\n")).toMatch(
      /content-type.*authorization/s,
    );
  });
});
