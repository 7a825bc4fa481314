import { describe, expect, it } from "vitest";
import { type HttpPayload, httpSink } from "../../sinks/http";
import { jsonArray, ndjson } from "../../sinks/shared";
import { splitBatches } from "../../src/delivery/batch";
import { sinkContract } from "./contract";
import { asJson, bigRecords, makeSink, must, parseNdjson, received, receiverUrl, someRecords, uid } from "./helpers";

const base = receiverUrl();

sinkContract({
  def: httpSink,
  valid: { url: `${base}/ok/contract` },
  resolved: {
    url: `${base}/ok/contract`,
    method: "POST",
    headers: {},
    format: "json",
    gzip: false,
    maxRecords: 1000,
    maxBytes: 1024 * 1024,
  },
  invalid: [
    { name: "a relative url", options: { url: "/ingest" }, path: "url" },
    { name: "a url of the wrong type", options: { url: 42 }, path: "url" },
    { name: "an unsupported method", options: { url: `${base}/ok/x`, method: "GET" }, path: "method" },
    { name: "gzip as a string", options: { url: `${base}/ok/x`, gzip: "yes" }, path: "gzip" },
    { name: "an unknown format", options: { url: `${base}/ok/x`, format: "csv" }, path: "format" },
    { name: "a non-string header value", options: { url: `${base}/ok/x`, headers: { "x-n": 1 } }, path: "headers.x-n" },
    { name: "maxRecords 0", options: { url: `${base}/ok/x`, maxRecords: 0 }, path: "maxRecords" },
    { name: "fractional maxRecords", options: { url: `${base}/ok/x`, maxRecords: 2.5 }, path: "maxRecords" },
    { name: "maxBytes below 1024", options: { url: `${base}/ok/x`, maxBytes: 100 }, path: "maxBytes" },
    {
      name: "a header name that is not an HTTP token",
      options: { url: `${base}/ok/x`, headers: { "x bad": "v" } },
      path: "headers.x bad",
    },
    {
      name: "a header value with a line break",
      options: { url: `${base}/ok/x`, headers: { "x-a": "v\r\nx-b: 1" } },
      path: "headers.x-a",
    },
  ],
  rejecting: [
    { name: "the endpoint refuses connections", options: { url: "http://127.0.0.1:1/" } },
    { name: "the endpoint answers 500", options: { url: `${base}/status/500/contract-reject` } },
  ],
  abortOptions: { url: `${base}/hang/contract-abort` },
  abortIsHonoured: true,
});

/** Sends records through a fresh http sink and returns the result and what the receiver got. */
async function roundTrip(options: Record<string, unknown>, label: string, n = 3) {
  const records = someRecords(n, `http-${label}`);
  const { sink } = makeSink<HttpPayload>(httpSink, options);
  const result = await sink.send(sink.encode(records), AbortSignal.timeout(5_000));
  return { records, result, got: await received(label) };
}

describe("http sink: bodies", () => {
  it("json format: the body is a JSON array of exactly the records, in order", async () => {
    const label = uid("json");
    const { records, result, got } = await roundTrip({ url: `${base}/ok/${label}` }, label, 4);
    expect(result).toEqual({ outcome: "ok", status: 200 });
    expect(got).toHaveLength(1);
    const req = must(got[0]);
    expect(req.method).toBe("POST");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(req.headers["content-encoding"]).toBeUndefined();
    const body = JSON.parse(req.body) as { id: string }[];
    expect(Array.isArray(body)).toBe(true);
    expect(body.map((r) => r.id)).toEqual(records.map((r) => r.record.id));
    expect(body).toEqual(asJson(records));
  });

  it("json format with no records is an empty array", () => {
    const { sink } = makeSink<HttpPayload>(httpSink, { url: `${base}/ok/x` });
    expect(JSON.parse(sink.encode([]).body)).toEqual([]);
  });

  it("ndjson format: one record per line, trailing newline", async () => {
    const label = uid("ndjson");
    const { records, result, got } = await roundTrip({ url: `${base}/ok/${label}`, format: "ndjson" }, label, 5);
    expect(result.outcome).toBe("ok");
    expect(got).toHaveLength(1);
    const req = must(got[0]);
    expect(req.headers["content-type"]).toBe("application/x-ndjson");
    expect(req.body.endsWith("\n")).toBe(true);
    expect(req.body.endsWith("\n\n")).toBe(false);
    expect(req.body.split("\n")).toHaveLength(records.length + 1);
    expect(parseNdjson(req.body)).toEqual(asJson(records));
  });

  it("gzip: Content-Encoding gzip, and the gunzipped body is exactly the NDJSON", async () => {
    const label = uid("gzip");
    const { records, result, got } = await roundTrip(
      { url: `${base}/ok/${label}`, format: "ndjson", gzip: true },
      label,
      20,
    );
    expect(result.outcome).toBe("ok");
    expect(got).toHaveLength(1);
    const req = must(got[0]);
    expect(req.headers["content-encoding"]).toBe("gzip");
    expect(req.headers["content-type"]).toBe("application/x-ndjson");
    expect(req.body).toBe(ndjson(records));
    // Really compressed on the wire, not sent plain with a gzip label.
    expect(req.wireBytes).toBeLessThan(req.body.length / 2);
  });

  it("gzip with json format: gunzipped body is the JSON array", async () => {
    const label = uid("gzipjson");
    const { records, got } = await roundTrip({ url: `${base}/ok/${label}`, gzip: true }, label, 3);
    expect(must(got[0]).headers["content-encoding"]).toBe("gzip");
    expect(must(got[0]).body).toBe(jsonArray(records));
  });

  it("custom headers arrive, and method PUT is honoured", async () => {
    const label = uid("headers");
    const { result, got } = await roundTrip(
      {
        url: `${base}/ok/${label}`,
        method: "PUT",
        headers: { authorization: "Bearer s3cr3t", "X-Tenant": "acme", "x-source": "tailfan" },
      },
      label,
    );
    expect(result.outcome).toBe("ok");
    expect(got).toHaveLength(1);
    expect(must(got[0]).method).toBe("PUT");
    expect(must(got[0]).headers.authorization).toBe("Bearer s3cr3t");
    expect(must(got[0]).headers["x-tenant"]).toBe("acme");
    expect(must(got[0]).headers["x-source"]).toBe("tailfan");
  });

  it("the payload's content type wins over a user content-type header", async () => {
    const label = uid("ctype");
    const { got } = await roundTrip(
      { url: `${base}/ok/${label}`, format: "ndjson", headers: { "content-type": "text/plain" } },
      label,
    );
    expect(must(got[0]).headers["content-type"]).toBe("application/x-ndjson");
  });
});

describe("http sink: status mapping against the receiver", () => {
  const cases: { status: number; outcome: "ok" | "retry" | "fail" }[] = [
    { status: 200, outcome: "ok" },
    { status: 201, outcome: "ok" },
    { status: 204, outcome: "ok" },
    { status: 408, outcome: "retry" },
    { status: 429, outcome: "retry" },
    { status: 500, outcome: "retry" },
    { status: 502, outcome: "retry" },
    { status: 503, outcome: "retry" },
    { status: 501, outcome: "fail" },
    { status: 400, outcome: "fail" },
    { status: 401, outcome: "fail" },
    { status: 404, outcome: "fail" },
    { status: 413, outcome: "fail" },
  ];

  it.each(cases)("$status → $outcome", async ({ status, outcome }) => {
    const label = uid(`s${status}`);
    const { result, got } = await roundTrip({ url: `${base}/status/${status}/${label}` }, label, 2);
    expect(result.outcome).toBe(outcome);
    expect(result.status).toBe(status);
    expect(got).toHaveLength(1);
    if (result.outcome !== "ok") {
      expect(result.reason).toContain(`HTTP ${status}`);
      // The error body's snippet is kept for the operator.
      expect(result.reason).toContain(`answered ${status}`);
    }
    if (result.outcome === "retry") expect(result.retryAfterMs).toBeUndefined();
  });

  it("429 with Retry-After: 3 → retry with retryAfterMs 3000", async () => {
    const label = uid("s429ra");
    const { result } = await roundTrip({ url: `${base}/status/429/${label}?retryAfter=3` }, label);
    expect(result).toMatchObject({ outcome: "retry", status: 429, retryAfterMs: 3000 });
  });

  it("503 with an HTTP-date Retry-After → retry with a delay close to that date", async () => {
    const label = uid("s503date");
    const at = new Date(Date.now() + 60_000).toUTCString();
    const { result } = await roundTrip(
      { url: `${base}/status/503/${label}?retryAfter=${encodeURIComponent(at)}` },
      label,
    );
    expect(result.outcome).toBe("retry");
    if (result.outcome !== "retry") return;
    expect(result.retryAfterMs).toBeGreaterThan(50_000);
    expect(result.retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it("network error (closed port) → retry, naming the network error", async () => {
    const { sink } = makeSink<HttpPayload>(httpSink, { url: "http://127.0.0.1:1/" });
    const result = await sink.send(sink.encode(someRecords(1)), AbortSignal.timeout(5_000));
    expect(result.outcome).toBe("retry");
    if (result.outcome === "retry") expect(result.reason).toMatch(/network error/);
  });

  it("/hang with a signal aborting after 200 ms → retry quickly, reason says timed out / aborted", async () => {
    const label = uid("hang");
    const { sink } = makeSink<HttpPayload>(httpSink, { url: `${base}/hang/${label}` });
    const started = Date.now();
    const result = await sink.send(sink.encode(someRecords(2, "http-hang")), AbortSignal.timeout(200));
    const elapsed = Date.now() - started;
    expect(result.outcome).toBe("retry");
    if (result.outcome === "retry") expect(result.reason).toMatch(/time|abort/i);
    expect(elapsed).toBeGreaterThanOrEqual(150);
    expect(elapsed).toBeLessThan(2_000);
    // The request did go out (the receiver recorded it before hanging).
    expect(await received(label)).toHaveLength(1);
  });
});

describe("http sink: batching with splitBatches and the sink's limits", () => {
  it("maxRecords 3 → batches of at most 3, order kept, all records once", () => {
    const records = someRecords(5, "http-batch-3"); // 10 records: invocation + log each
    const { limits } = makeSink(httpSink, { url: `${base}/ok/x`, maxRecords: 3 });
    expect(limits.maxRecords).toBe(3);
    const { batches, oversized } = splitBatches(records, limits);
    expect(oversized).toEqual([]);
    expect(batches.map((b) => b.length)).toEqual([3, 3, 3, 1]);
    expect(batches.flat()).toEqual(records);
  });

  it("small maxBytes → several batches whose json bodies each stay within maxBytes+2, all delivered", async () => {
    const label = uid("bytes");
    const maxBytes = 2048;
    const records = someRecords(12, "http-batch-bytes");
    const { sink, limits } = makeSink<HttpPayload>(httpSink, { url: `${base}/ok/${label}`, maxBytes });
    expect(limits.maxBytes).toBe(maxBytes);
    const { batches, oversized } = splitBatches(records, limits);
    expect(oversized).toEqual([]);
    expect(batches.length).toBeGreaterThan(2);
    expect(batches.flat()).toEqual(records);
    for (let i = 0; i < batches.length; i++) {
      const body = sink.encode(must(batches[i])).body;
      expect(new TextEncoder().encode(body).byteLength).toBeLessThanOrEqual(maxBytes + 2);
      // Greedy: the next record would not have fitted.
      const next = batches[i + 1]?.[0];
      if (next)
        expect(new TextEncoder().encode(sink.encode([...must(batches[i]), next]).body).byteLength).toBeGreaterThan(
          maxBytes,
        );
    }
    for (const batch of batches) {
      const result = await sink.send(sink.encode(batch), AbortSignal.timeout(5_000));
      expect(result.outcome).toBe("ok");
    }
    const got = await received(label);
    expect(got).toHaveLength(batches.length);
    const ids = got.flatMap((r) => (JSON.parse(r.body) as { id: string }[]).map((x) => x.id));
    expect(ids).toEqual(records.map((r) => r.record.id));
  });

  it("a record larger than maxBytes travels alone rather than being dropped", () => {
    const small = someRecords(2, "http-batch-alone");
    const big = must(bigRecords(1, 3000, "http-batch-alone")[0]);
    const records = [must(small[0]), must(small[1]), big, must(small[2]), must(small[3])];
    const { limits } = makeSink(httpSink, { url: `${base}/ok/x`, maxBytes: 1024 });
    expect(big.bytes).toBeGreaterThan(1024);
    const { batches, oversized } = splitBatches(records, limits);
    expect(oversized).toEqual([]);
    expect(batches.find((b) => b.includes(big))).toEqual([big]);
    expect(batches.flat()).toEqual(records);
  });
});
