import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { type BulkPayload, bulkOutcome, elasticsearchSink, sendBulk } from "../../sinks/elasticsearch";
import { sinkContract } from "./contract";
import {
  makeSink,
  must,
  parseNdjson,
  received,
  receiverUrl,
  serialized,
  someRecords,
  T0,
  traceItem,
  uid,
} from "./helpers";
import { validateElasticsearch } from "./wire/elasticsearch";

const base = receiverUrl();

// biome-ignore lint/suspicious/noExplicitAny: tests poke at arbitrary JSON shapes.
type Loose = Record<string, any>;

sinkContract({
  def: elasticsearchSink,
  valid: { endpoint: `${base}/ok/contract` },
  resolved: {
    endpoint: `${base}/ok/contract`,
    index: "tailfan-logs",
    dataStream: false,
    gzip: true,
    maxRecords: 1000,
    maxBytes: 5 * 1024 * 1024,
  },
  invalid: [
    { name: "a relative endpoint", options: { endpoint: "/es" }, path: "endpoint" },
    { name: "an uppercase index", options: { endpoint: `${base}/ok/x`, index: "Logs" }, path: "index" },
    { name: "an index with a wildcard", options: { endpoint: `${base}/ok/x`, index: "logs-*" }, path: "index" },
    { name: "an index starting with _", options: { endpoint: `${base}/ok/x`, index: "_logs" }, path: "index" },
    { name: "dataStream as a string", options: { endpoint: `${base}/ok/x`, dataStream: "yes" }, path: "dataStream" },
    {
      name: "a data stream named like a backing index",
      options: { endpoint: `${base}/ok/x`, dataStream: true, index: ".ds-logs-x-2025" },
      path: "index",
    },
    { name: "gzip as a string", options: { endpoint: `${base}/ok/x`, gzip: "no" }, path: "gzip" },
    { name: "username without password", options: { endpoint: `${base}/ok/x`, username: "elastic" }, path: "password" },
    { name: "password without username", options: { endpoint: `${base}/ok/x`, password: "pw" }, path: "password" },
    {
      name: "apiKey together with username and password",
      options: { endpoint: `${base}/ok/x`, apiKey: "k", username: "elastic", password: "pw" },
      path: "apiKey",
    },
    { name: "an apiKey with a line break", options: { endpoint: `${base}/ok/x`, apiKey: "k\r\nx: 1" }, path: "apiKey" },
    {
      name: "a username with a colon",
      options: { endpoint: `${base}/ok/x`, username: "a:b", password: "p" },
      path: "username",
    },
    { name: "maxRecords 0", options: { endpoint: `${base}/ok/x`, maxRecords: 0 }, path: "maxRecords" },
    { name: "maxBytes below 1024", options: { endpoint: `${base}/ok/x`, maxBytes: 10 }, path: "maxBytes" },
  ],
  rejecting: [
    { name: "the endpoint refuses connections", options: { endpoint: "http://127.0.0.1:1" } },
    { name: "the endpoint answers 500", options: { endpoint: `${base}/status/500/contract-reject` } },
    { name: "the endpoint answers 401", options: { endpoint: `${base}/status/401/contract-reject` } },
  ],
  abortOptions: { endpoint: `${base}/hang/contract-abort` },
  abortIsHonoured: true,
});

/** Sends records through a fresh sink and returns the result and what the receiver got. */
async function roundTrip(options: Record<string, unknown>, label: string, n = 3) {
  const records = someRecords(n, `es-${label}`);
  const { sink } = makeSink<BulkPayload>(elasticsearchSink, options);
  const result = await sink.send(sink.encode(records), AbortSignal.timeout(5_000));
  return { records, result, got: await received(label) };
}

describe("elasticsearch sink: the _bulk request", () => {
  it("POST <endpoint>/_bulk, x-ndjson, gzip by default; create + _id per record, then the record with @timestamp", async () => {
    const label = uid("es");
    const { records, result, got } = await roundTrip({ endpoint: `${base}/ok/${label}/` }, label, 3);
    expect(result).toEqual({ outcome: "ok", status: 200 });
    expect(got).toHaveLength(1);
    const req = must(got[0]);
    expect(req.method).toBe("POST");
    expect(req.path).toBe(`/ok/${label}/_bulk`);
    expect(req.headers["content-type"]).toBe("application/x-ndjson");
    expect(req.headers["content-encoding"]).toBe("gzip");
    expect(req.headers.authorization).toBeUndefined();
    expect(validateElasticsearch(req.body, req.headers)).toEqual([]);
    const lines = parseNdjson(req.body) as Loose[];
    expect(lines).toHaveLength(records.length * 2);
    records.forEach((item, i) => {
      expect(lines[2 * i]).toEqual({ create: { _index: "tailfan-logs", _id: item.record.id } });
      const doc = lines[2 * i + 1] as Record<string, unknown>;
      expect(doc["@timestamp"]).toBe(new Date(item.record.timestamp).toISOString());
      const { "@timestamp": _, ...rest } = doc;
      expect(rest).toEqual(JSON.parse(item.line));
    });
  });

  it("the document is the record's own JSON line with @timestamp put in front (no re-serialization)", () => {
    const records = someRecords(2, "es-line");
    const { sink } = makeSink<BulkPayload>(elasticsearchSink, { endpoint: `${base}/ok/x` });
    const docs = sink
      .encode(records)
      .body.split("\n")
      .filter((_, i) => i % 2 === 1 && _ !== "");
    expect(docs[0]).toBe(
      `{"@timestamp":"${new Date(must(records[0]).record.timestamp).toISOString()}",${must(records[0]).line.slice(1)}`,
    );
    expect(sink.encode([]).body).toBe("");
  });

  it("a record time of 2025-03-14 15:09:26.535 UTC is @timestamp 2025-03-14T15:09:26.535Z", () => {
    const [record] = serialized([traceItem({ eventTimestamp: T0, logs: [] })]);
    const { sink } = makeSink<BulkPayload>(elasticsearchSink, { endpoint: `${base}/ok/x` });
    const doc = JSON.parse(must(sink.encode([must(record)]).body.split("\n")[1]));
    expect(doc["@timestamp"]).toBe("2025-03-14T15:09:26.535Z");
  });

  it("index and dataStream: the named index in every create action; the body passes the data-stream checks", async () => {
    const label = uid("esds");
    const { got } = await roundTrip(
      { endpoint: `${base}/ok/${label}`, index: "logs-tailfan-default", dataStream: true, gzip: false },
      label,
    );
    const req = must(got[0]);
    expect(req.headers["content-encoding"]).toBeUndefined();
    expect(validateElasticsearch(req.body, req.headers, { dataStream: true })).toEqual([]);
    const actions = (parseNdjson(req.body) as Loose[]).filter((_, i) => i % 2 === 0);
    for (const a of actions) expect(a.create._index).toBe("logs-tailfan-default");
  });

  it("apiKey: Authorization: ApiKey <encoded key>; an id:key pair is base64-encoded", async () => {
    const label = uid("esapikey");
    const { got } = await roundTrip(
      { endpoint: `${base}/ok/${label}`, apiKey: "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==" },
      label,
      1,
    );
    expect(must(got[0]).headers.authorization).toBe(
      "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
    );
    const label2 = uid("esapikeypair");
    const { got: got2 } = await roundTrip(
      { endpoint: `${base}/ok/${label2}`, apiKey: "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw" },
      label2,
      1,
    );
    expect(must(got2[0]).headers.authorization).toBe(
      "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
    );
  });

  it('basic auth: username + password with apiKey = ""', async () => {
    const label = uid("esbasic");
    const { got } = await roundTrip(
      { endpoint: `${base}/ok/${label}`, apiKey: "", username: "elastic", password: "pä55" },
      label,
      1,
    );
    const auth = must(must(got[0]).headers.authorization);
    expect(auth.startsWith("Basic ")).toBe(true);
    const decoded = new TextDecoder().decode(Uint8Array.from(atob(auth.slice(6)), (c) => c.charCodeAt(0)));
    expect(decoded).toBe("elastic:pä55");
  });

  it("options: ELASTICSEARCH_API_KEY is the default secret for apiKey", () => {
    expect(elasticsearchSink.defaultSecrets).toEqual({ apiKey: "ELASTICSEARCH_API_KEY" });
    expect(v.safeParse(elasticsearchSink.options, { endpoint: "https://es.example.com", apiKey: "" }).success).toBe(
      true,
    );
  });

  it("a failed request keeps the answer's snippet but never the credentials in its reason", async () => {
    const label = uid("es401");
    const { result } = await roundTrip({ endpoint: `${base}/status/401/${label}`, apiKey: "sekr1t-key" }, label, 1);
    expect(result.outcome).toBe("fail");
    if (result.outcome === "fail") {
      expect(result.reason).toContain("HTTP 401");
      expect(result.reason).not.toContain("sekr1t");
    }
  });
});

describe("elasticsearch sink: status mapping against the receiver", () => {
  it.each([
    { status: 200, outcome: "ok" },
    { status: 429, outcome: "retry" },
    { status: 503, outcome: "retry" },
    { status: 400, outcome: "fail" },
    { status: 413, outcome: "fail" },
  ])("$status → $outcome", async ({ status, outcome }) => {
    const label = uid(`ess${status}`);
    const { result, got } = await roundTrip({ endpoint: `${base}/status/${status}/${label}` }, label, 1);
    expect(result.outcome).toBe(outcome);
    expect(result.status).toBe(status);
    expect(got).toHaveLength(1);
  });

  it("429 with Retry-After: 7 → retry after 7000 ms", async () => {
    const label = uid("es429ra");
    const { result } = await roundTrip({ endpoint: `${base}/status/429/${label}?retryAfter=7` }, label, 1);
    expect(result).toMatchObject({ outcome: "retry", status: 429, retryAfterMs: 7000 });
  });
});

/** A bulk response item. */
const item = (status: number, error?: { type: string; reason: string }) => ({
  create: { _index: "tailfan-logs", _id: "x", status, ...(error ? { error } : {}) },
});

describe("elasticsearch sink: reading the bulk response (bulkOutcome)", () => {
  it("errors: false → ok", () => {
    expect(bulkOutcome({ took: 3, errors: false, items: [item(201), item(201)] }, 2)).toEqual({
      outcome: "ok",
      status: 200,
    });
  });

  it("a 2xx body that is not a bulk response → ok (the status stands)", () => {
    expect(bulkOutcome(undefined, 3)).toEqual({ outcome: "ok", status: 200 });
    expect(bulkOutcome("ok", 3)).toEqual({ outcome: "ok", status: 200 });
  });

  it("errors: true → 429/5xx retried, 409 delivered, other 4xx refused, 2xx delivered", () => {
    const result = bulkOutcome(
      {
        errors: true,
        items: [
          item(201),
          item(429, { type: "es_rejected_execution_exception", reason: "rejected execution" }),
          item(409, { type: "version_conflict_engine_exception", reason: "document already exists" }),
          item(400, { type: "mapper_parsing_exception", reason: "failed to parse field [status]" }),
          item(503, { type: "unavailable_shards_exception", reason: "primary shard is not active" }),
          item(404, { type: "index_not_found_exception", reason: "no such index" }),
        ],
      },
      6,
    );
    expect(result).toMatchObject({ outcome: "partial", retry: [1, 4], fail: [3, 5], status: 200 });
    if (result.outcome !== "partial") return;
    expect(result.reason).toContain("2 refused");
    expect(result.reason).toContain("mapper_parsing_exception");
    expect(result.reason).toContain("2 to retry");
    expect(result.reason).toContain("es_rejected_execution_exception");
  });

  it("errors: true but every failure is a 409 duplicate → ok", () => {
    expect(bulkOutcome({ errors: true, items: [item(201), item(409)] }, 2).outcome).toBe("ok");
  });

  it("every item retryable → retry; every item refused → fail", () => {
    expect(bulkOutcome({ errors: true, items: [item(429), item(500)] }, 2).outcome).toBe("retry");
    expect(bulkOutcome({ errors: true, items: [item(400), item(400)] }, 2).outcome).toBe("fail");
  });

  it("errors: true with items missing or of the wrong length → retry the whole batch", () => {
    expect(bulkOutcome({ errors: true }, 2).outcome).toBe("retry");
    expect(bulkOutcome({ errors: true, items: [item(400)] }, 2).outcome).toBe("retry");
  });

  it("an item without a status is retried", () => {
    expect(bulkOutcome({ errors: true, items: [item(201), { create: {} }, item(400)] }, 3)).toMatchObject({
      outcome: "partial",
      retry: [1],
      fail: [2],
    });
  });

  it("end to end with a fetcher answering errors:true: sendBulk reads the 200 body into a partial result", async () => {
    let seen: Request | undefined;
    const fetcher = (async (input: RequestInfo | URL) => {
      seen = input as Request;
      const body = { took: 1, errors: true, items: [item(201), item(429), item(400, { type: "x", reason: "y" })] };
      return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
    }) as typeof fetch;
    const { sink } = makeSink<BulkPayload>(elasticsearchSink, { endpoint: "https://es.example.com", gzip: false });
    const records = someRecords(2, "es-fetcher").slice(0, 3);
    const payload = sink.encode(records);
    const result = await sendBulk(
      { url: "https://es.example.com/_bulk", headers: {}, gzip: false, body: payload.body, records: payload.records },
      AbortSignal.timeout(5_000),
      fetcher,
    );
    expect(result).toMatchObject({ outcome: "partial", retry: [1], fail: [2], status: 200 });
    expect(must(seen).headers.get("content-type")).toBe("application/x-ndjson");
    expect(await must(seen).text()).toBe(payload.body);
  });

  it("sendBulk: a fetcher that throws → retry naming the network error; a 2xx whose body cannot be read → retry", async () => {
    const throwing = (async () => {
      throw new TypeError("connection reset");
    }) as typeof fetch;
    const req = { url: "https://es.example.com/_bulk", headers: {}, gzip: false, body: "{}\n{}\n", records: 1 };
    expect(await sendBulk(req, AbortSignal.timeout(5_000), throwing)).toMatchObject({ outcome: "retry" });
    const broken = (async () =>
      new Response(
        new ReadableStream({
          start(c) {
            c.error(new Error("stream broke"));
          },
        }),
        { status: 200 },
      )) as typeof fetch;
    const result = await sendBulk(req, AbortSignal.timeout(5_000), broken);
    expect(result.outcome).toBe("retry");
  });
});

describe("elasticsearch wire validator", () => {
  const good = '{"create":{"_index":"i","_id":"a-0"}}\n{"@timestamp":"2025-01-01T00:00:00.000Z","m":1}\n';
  const headers = { "content-type": "application/x-ndjson" };

  it("accepts a good body, and the sink's own encoding", () => {
    expect(validateElasticsearch(good, headers)).toEqual([]);
    const { sink } = makeSink<BulkPayload>(elasticsearchSink, { endpoint: `${base}/ok/x` });
    expect(validateElasticsearch(sink.encode(someRecords(5, "es-valid")).body, headers)).toEqual([]);
  });

  it.each([
    { name: "no trailing newline", body: good.slice(0, -1), want: /newline/ },
    { name: "a line that is not JSON", body: '{"create":{"_index":"i","_id":"a"}}\n{"m":\n', want: /not JSON/ },
    {
      name: "a pretty-printed document",
      body: '{"create":{"_index":"i","_id":"a"}}\n{\n"m":1}\n',
      want: /not JSON|document/,
    },
    { name: "an unknown action", body: '{"insert":{"_index":"i","_id":"a"}}\n{"m":1}\n', want: /unknown action/ },
    {
      name: "an action with two keys",
      body: '{"create":{"_index":"i","_id":"a"},"index":{}}\n{"m":1}\n',
      want: /exactly one key/,
    },
    { name: "a missing _id", body: '{"create":{"_index":"i"}}\n{"m":1}\n', want: /_id missing/ },
    { name: "a missing _index", body: '{"create":{"_id":"a"}}\n{"m":1}\n', want: /_index missing/ },
    {
      name: "an action without its document",
      body: '{"create":{"_index":"i","_id":"a"}}\n',
      want: /without a document/,
    },
    {
      name: "a document that is not an object",
      body: '{"create":{"_index":"i","_id":"a"}}\n[1]\n',
      want: /not a JSON object/,
    },
    { name: "an empty line", body: `${good}\n`, want: /empty line/ },
    { name: "an empty body", body: "", want: /empty body/ },
    { name: "the same _id twice", body: good + good, want: /twice/ },
    {
      name: "unknown action metadata",
      body: '{"create":{"_index":"i","_id":"a","_type":"doc"}}\n{"m":1}\n',
      want: /_type/,
    },
  ])("rejects $name", ({ body, want }) => {
    const problems = validateElasticsearch(body, headers);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toMatch(want);
  });

  it("rejects the wrong content type, and index actions or documents without @timestamp for a data stream", () => {
    expect(validateElasticsearch(good, { "content-type": "application/json" }).join()).toMatch(/content-type/);
    expect(
      validateElasticsearch('{"index":{"_index":"d","_id":"a"}}\n{"@timestamp":1}\n', headers, {
        dataStream: true,
      }).join(),
    ).toMatch(/only take "create"/);
    expect(
      validateElasticsearch('{"create":{"_index":"d","_id":"a"}}\n{"m":1}\n', headers, { dataStream: true }).join(),
    ).toMatch(/@timestamp/);
  });
});
