import { afterEach, describe, expect, it, vi } from "vitest";
import { batchResult, type HoneycombPayload, honeycombSink } from "../../sinks/honeycomb";
import { sinkContract } from "./contract";
import { asJson, gunzipText, makeSink, must, received, receiverUrl, someRecords, uid } from "./helpers";
import { validateHoneycomb } from "./wire/honeycomb";

const base = receiverUrl();

sinkContract({
  def: honeycombSink,
  valid: { dataset: "workers", apiKey: "hc-1", endpoint: `${base}/ok/contract` },
  resolved: {
    dataset: "workers",
    apiKey: "hc-1",
    endpoint: `${base}/ok/contract`,
    gzip: true,
    maxRecords: 1000,
    maxBytes: 4 * 1024 * 1024,
  },
  invalid: [
    { name: "an empty dataset", options: { dataset: "", apiKey: "k" }, path: "dataset" },
    { name: "a dataset with a slash", options: { dataset: "a/b", apiKey: "k" }, path: "dataset" },
    { name: "an empty apiKey", options: { dataset: "d", apiKey: "" }, path: "apiKey" },
    { name: "an apiKey with a line break", options: { dataset: "d", apiKey: "k\nx: y" }, path: "apiKey" },
    {
      name: "an endpoint without scheme",
      options: { dataset: "d", apiKey: "k", endpoint: "api.eu1.honeycomb.io" },
      path: "endpoint",
    },
    { name: "gzip as a string", options: { dataset: "d", apiKey: "k", gzip: "true" }, path: "gzip" },
    { name: "maxRecords above 10,000", options: { dataset: "d", apiKey: "k", maxRecords: 20_000 }, path: "maxRecords" },
    { name: "maxBytes above 4.5 MB", options: { dataset: "d", apiKey: "k", maxBytes: 5_000_000 }, path: "maxBytes" },
  ],
  rejecting: [
    {
      name: "the endpoint refuses connections",
      options: { dataset: "d", apiKey: "k", endpoint: "http://127.0.0.1:1" },
    },
    {
      name: "the endpoint answers 500",
      options: { dataset: "d", apiKey: "k", endpoint: `${base}/status/500/contract-reject` },
    },
    {
      name: "the endpoint answers 401",
      options: { dataset: "d", apiKey: "k", endpoint: `${base}/status/401/contract-reject` },
    },
  ],
  abortOptions: { dataset: "d", apiKey: "k", endpoint: `${base}/hang/contract-abort` },
  abortIsHonoured: true,
});

describe("honeycomb sink: mapping", () => {
  it("defaults: api.honeycomb.io, HONEYCOMB_API_KEY", () => {
    const { options } = makeSink(honeycombSink, { dataset: "d", apiKey: "k" });
    expect(options.endpoint).toBe("https://api.honeycomb.io");
    expect(honeycombSink.defaultSecrets).toEqual({ apiKey: "HONEYCOMB_API_KEY" });
  });

  it("each event is { time: RFC 3339 of the record's timestamp, data: the record }", () => {
    const records = someRecords(3, "hc-map");
    const { sink } = makeSink<HoneycombPayload>(honeycombSink, { dataset: "d", apiKey: "k" });
    const payload = sink.encode(records);
    expect(payload.records).toBe(records.length);
    const events = JSON.parse(payload.body) as { time: string; data: unknown }[];
    expect(events.map((e) => Object.keys(e))).toEqual(records.map(() => ["time", "data"]));
    expect(events.map((e) => e.data)).toEqual(asJson(records));
    events.forEach((e, i) => {
      expect(e.time).toBe(new Date(must(records[i]).record.timestamp).toISOString());
    });
    expect(validateHoneycomb(payload.body)).toEqual([]);
  });

  it("limits: 1 MB events minus the wrapper, the options' batch size", () => {
    const { limits } = makeSink(honeycombSink, { dataset: "d", apiKey: "k", maxRecords: 10_000, maxBytes: 4_500_000 });
    expect(limits.maxRecords).toBe(10_000);
    expect(limits.maxBytes).toBe(4_500_000);
    // Even a full batch with every wrapper stays under the 5 MB request limit.
    expect(limits.maxBytes + limits.maxRecords * 48).toBeLessThan(5_000_000);
    expect(must(limits.maxRecordBytes)).toBeLessThan(1_000_000);
  });
});

describe("honeycomb sink: per-event answers", () => {
  it("batchResult: all 202 → ok; mixed → partial with retry and fail indices; all refused alike → retry / fail", () => {
    expect(batchResult([{ status: 202 }, { status: 202 }], 2, 200)).toEqual({ outcome: "ok", status: 200 });
    const mixed = batchResult(
      [
        { status: 202 },
        { status: 400, error: "event has too many columns" },
        { status: 429, error: "rate limited" },
        { status: 503 },
      ],
      4,
      200,
    );
    expect(mixed).toMatchObject({ outcome: "partial", retry: [2, 3], fail: [1], status: 200 });
    if (mixed.outcome === "partial") {
      expect(mixed.reason).toMatch(/3 of 4/);
      expect(mixed.reason).toContain("too many columns");
    }
    expect(batchResult([{ status: 503 }, { status: 429 }], 2, 200)).toMatchObject({ outcome: "retry" });
    expect(batchResult([{ status: 400 }, { status: 401 }], 2, 200)).toMatchObject({ outcome: "fail" });
  });

  it("batchResult: an answer that is not a per-event array of the right length leaves the request's ok", () => {
    expect(batchResult("ok", 2, 200)).toEqual({ outcome: "ok", status: 200 });
    expect(batchResult([{ status: 400 }], 2, 200)).toEqual({ outcome: "ok", status: 200 });
    expect(batchResult({ error: "x" }, 1, 202)).toEqual({ outcome: "ok", status: 202 });
  });

  describe("send reads the 200 body", () => {
    afterEach(() => vi.restoreAllMocks());

    it("200 with a refused event → partial naming that event; the request is the documented batch call", async () => {
      const spy = vi
        .spyOn(globalThis, "fetch")
        .mockResolvedValue(
          new Response(JSON.stringify([{ status: 202 }, { status: 400, error: "bad" }]), { status: 200 }),
        );
      const { sink } = makeSink<HoneycombPayload>(honeycombSink, {
        dataset: "cf workers",
        apiKey: "hc-s3cr3t",
        endpoint: "https://api.eu1.honeycomb.io/",
      });
      const payload = sink.encode(someRecords(1, "hc-partial")); // an invocation and its log: 2 events
      const result = await sink.send(payload, AbortSignal.timeout(5_000));
      expect(result).toMatchObject({ outcome: "partial", retry: [], fail: [1], status: 200 });
      if (result.outcome === "partial") expect(result.reason).not.toContain("hc-s3cr3t");
      expect(spy).toHaveBeenCalledTimes(1);
      const req = must(spy.mock.calls[0])[0] as Request;
      expect(req.method).toBe("POST");
      expect(req.url).toBe("https://api.eu1.honeycomb.io/1/batch/cf%20workers");
      expect(req.headers.get("x-honeycomb-team")).toBe("hc-s3cr3t");
      expect(req.headers.get("content-type")).toBe("application/json");
      expect(req.headers.get("content-encoding")).toBe("gzip");
      expect(await gunzipText(await req.arrayBuffer())).toBe(payload.body);
    });

    it("200 with every event 202 → ok; 200 with an unreadable body → ok", async () => {
      const spy = vi.spyOn(globalThis, "fetch");
      spy.mockResolvedValueOnce(new Response('[{"status":202},{"status":202}]', { status: 200 }));
      spy.mockResolvedValueOnce(new Response("<html>", { status: 200 }));
      const { sink } = makeSink<HoneycombPayload>(honeycombSink, { dataset: "d", apiKey: "k" });
      const payload = sink.encode(someRecords(1, "hc-ok"));
      expect(await sink.send(payload, AbortSignal.timeout(5_000))).toEqual({ outcome: "ok", status: 200 });
      expect(await sink.send(payload, AbortSignal.timeout(5_000))).toEqual({ outcome: "ok", status: 200 });
    });

    it("200 with every event 429 → retry", async () => {
      vi.spyOn(globalThis, "fetch").mockResolvedValue(
        new Response('[{"status":429,"error":"rate limited"},{"status":429,"error":"rate limited"}]', { status: 200 }),
      );
      const { sink } = makeSink<HoneycombPayload>(honeycombSink, { dataset: "d", apiKey: "k" });
      const result = await sink.send(sink.encode(someRecords(1, "hc-429")), AbortSignal.timeout(5_000));
      expect(result).toMatchObject({ outcome: "retry", status: 200 });
      if (result.outcome === "retry") expect(result.reason).toMatch(/2× 429 rate limited/);
    });
  });
});

describe("honeycomb sink: round trip through the receiver", () => {
  it("POST <endpoint>/1/batch/<dataset>, X-Honeycomb-Team, JSON array, gzip", async () => {
    const label = uid("hc-rt");
    const records = someRecords(4, "hc-rt");
    const { sink } = makeSink<HoneycombPayload>(honeycombSink, {
      dataset: "workers",
      apiKey: "hc-key",
      endpoint: `${base}/ok/${label}`,
    });
    const result = await sink.send(sink.encode(records), AbortSignal.timeout(5_000));
    // The receiver answers "ok", not a per-event array: the 2xx stands.
    expect(result).toEqual({ outcome: "ok", status: 200 });
    const got = await received(label);
    expect(got).toHaveLength(1);
    const req = must(got[0]);
    expect(req.method).toBe("POST");
    expect(req.path).toBe(`/ok/${label}/1/batch/workers`);
    expect(req.headers["x-honeycomb-team"]).toBe("hc-key");
    expect(req.headers.authorization).toBeUndefined();
    expect(req.headers["content-type"]).toBe("application/json");
    expect(req.headers["content-encoding"]).toBe("gzip");
    expect(req.wireBytes).toBeLessThan(req.body.length);
    expect(validateHoneycomb(req.body, req.headers)).toEqual([]);
    expect((JSON.parse(req.body) as { data: unknown }[]).map((e) => e.data)).toEqual(asJson(records));
  });

  it("gzip off sends plain JSON", async () => {
    const label = uid("hc-plain");
    const { sink } = makeSink<HoneycombPayload>(honeycombSink, {
      dataset: "d",
      apiKey: "k",
      endpoint: `${base}/ok/${label}`,
      gzip: false,
    });
    await sink.send(sink.encode(someRecords(1)), AbortSignal.timeout(5_000));
    const req = must((await received(label))[0]);
    expect(req.headers["content-encoding"]).toBeUndefined();
    expect(validateHoneycomb(req.body, req.headers)).toEqual([]);
  });

  it("request-level statuses: 429 + Retry-After → retry with delay, 400 → fail with the body snippet, 501 → fail", async () => {
    const send = async (path: string) => {
      const { sink } = makeSink<HoneycombPayload>(honeycombSink, {
        dataset: "d",
        apiKey: "sekrit",
        endpoint: `${base}${path}`,
      });
      return sink.send(sink.encode(someRecords(1)), AbortSignal.timeout(5_000));
    };
    expect(await send(`/status/429/${uid("hc-429")}?retryAfter=4`)).toMatchObject({
      outcome: "retry",
      status: 429,
      retryAfterMs: 4000,
    });
    const r400 = await send(`/status/400/${uid("hc-400")}`);
    expect(r400).toMatchObject({ outcome: "fail", status: 400 });
    if (r400.outcome === "fail") {
      expect(r400.reason).toContain("answered 400");
      expect(r400.reason).not.toContain("sekrit");
    }
    expect(await send(`/status/501/${uid("hc-501")}`)).toMatchObject({ outcome: "fail", status: 501 });
    expect(await send(`/status/503/${uid("hc-503")}`)).toMatchObject({ outcome: "retry", status: 503 });
  });
});

describe("honeycomb wire validator", () => {
  const headers = { "content-type": "application/json", "x-honeycomb-team": "k" };
  const good = () => {
    const { sink } = makeSink<HoneycombPayload>(honeycombSink, { dataset: "d", apiKey: "k" });
    return sink.encode(someRecords(2, "hc-wire")).body;
  };

  it("accepts what the sink encodes", () => {
    expect(validateHoneycomb(good(), headers)).toEqual([]);
  });

  it.each([
    { name: "not JSON", body: "[{", match: /not JSON/ },
    { name: "an object instead of an array", body: '{"data":{}}', match: /not a JSON array/ },
    { name: "an empty array", body: "[]", match: /empty/ },
    { name: "an event without data", body: '[{"time":"2025-03-14T15:09:26.535Z"}]', match: /data is not an object/ },
    {
      name: "data that is a string",
      body: '[{"time":"2025-03-14T15:09:26.535Z","data":"x"}]',
      match: /data is not an object/,
    },
    { name: "an event without time", body: '[{"data":{"a":1}}]', match: /no time/ },
    { name: "an epoch-ms time", body: '[{"time":1741964966535,"data":{}}]', match: /not RFC 3339/ },
    { name: "a time without zone", body: '[{"time":"2025-03-14T15:09:26","data":{}}]', match: /not RFC 3339/ },
    {
      name: "the record at the top level",
      body: '[{"time":"2025-03-14T15:09:26.535Z","message":"x","data":{}}]',
      match: /unknown key/,
    },
    {
      name: "a zero samplerate",
      body: '[{"time":"2025-03-14T15:09:26.535Z","data":{},"samplerate":0}]',
      match: /samplerate/,
    },
  ])("rejects $name", ({ body, match }) => {
    const problems = validateHoneycomb(body);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toMatch(match);
  });

  it("rejects a missing team header", () => {
    expect(validateHoneycomb(good(), { "content-type": "application/json" }).join("\n")).toMatch(/x-honeycomb-team/);
  });
});
