import { afterEach, describe, expect, it, vi } from "vitest";
import {
  anyValue,
  attributeName,
  type KeyValue,
  type OtlpPayload,
  type OtlpRequest,
  otlpBody,
  otlpRequest,
  otlpSink,
  partialSuccess,
  partialSuccessWarning,
  unixNano,
} from "../../sinks/otlp";
import { serializeRecord } from "../../src/json";
import type { LogRecord, SerializedRecord } from "../../src/record";
import { VERSION } from "../../src/version";
import captured from "../fixtures/trace-items.json";
import synthetic from "../fixtures/trace-items.synthetic.json";
import { sinkContract } from "./contract";
import { makeSink, must, received, receiverUrl, serialized, someRecords, T0, traceItem, uid } from "./helpers";
import { validateOtlp } from "./wire/otlp";

const base = receiverUrl();

sinkContract({
  def: otlpSink,
  valid: { endpoint: `${base}/ok/contract` },
  resolved: {
    endpoint: `${base}/ok/contract`,
    headers: {},
    gzip: true,
    gzipMinBytes: 32768,
    maxRecords: 1000,
    maxBytes: 1024 * 1024,
  },
  invalid: [
    { name: "a relative endpoint", options: { endpoint: "/otlp" }, path: "endpoint" },
    { name: "a non-http endpoint", options: { endpoint: "grpc://collector:4317" }, path: "endpoint" },
    { name: "gzip as a string", options: { endpoint: `${base}/ok/x`, gzip: "yes" }, path: "gzip" },
    { name: "a negative gzipMinBytes", options: { endpoint: `${base}/ok/x`, gzipMinBytes: -1 }, path: "gzipMinBytes" },
    {
      name: "a non-string header value",
      options: { endpoint: `${base}/ok/x`, headers: { "x-n": 1 } },
      path: "headers.x-n",
    },
    {
      name: "a header name with a space",
      options: { endpoint: `${base}/ok/x`, headers: { "x bad": "v" } },
      path: "headers.x bad",
    },
    {
      name: "a header value with a line break",
      options: { endpoint: `${base}/ok/x`, headers: { a: "v\r\nb: 1" } },
      path: "headers.a",
    },
    { name: "an empty serviceName", options: { endpoint: `${base}/ok/x`, serviceName: "" }, path: "serviceName" },
    { name: "maxRecords 0", options: { endpoint: `${base}/ok/x`, maxRecords: 0 }, path: "maxRecords" },
    { name: "maxBytes below 1024", options: { endpoint: `${base}/ok/x`, maxBytes: 1 }, path: "maxBytes" },
  ],
  rejecting: [
    { name: "the endpoint refuses connections", options: { endpoint: "http://127.0.0.1:1" } },
    { name: "the endpoint answers 503", options: { endpoint: `${base}/status/503/contract-reject` } },
    { name: "the endpoint answers 400", options: { endpoint: `${base}/status/400/contract-reject` } },
  ],
  abortOptions: { endpoint: `${base}/hang/contract-abort` },
  abortIsHonoured: true,
});

// biome-ignore lint/suspicious/noExplicitAny: tests poke at arbitrary JSON shapes.
type AnyRecord = Record<string, any>;

function encode(records: readonly SerializedRecord[], options: Record<string, unknown> = {}): OtlpRequest {
  const { sink } = makeSink<OtlpPayload>(otlpSink, { endpoint: `${base}/ok/x`, ...options });
  return JSON.parse(sink.encode(records).body) as OtlpRequest;
}

const attrs = (list: KeyValue[]): Record<string, AnyRecord> => Object.fromEntries(list.map((kv) => [kv.key, kv.value]));
const logRecords = (req: OtlpRequest) => req.resourceLogs.flatMap((rl) => rl.scopeLogs.flatMap((sl) => sl.logRecords));

function fixtureRecords(name: string): SerializedRecord[] {
  const all = { ...captured, ...synthetic } as Record<string, unknown>;
  return serialized([all[name] as Record<string, unknown>]);
}

describe("otlp sink: the request", () => {
  it("POST <endpoint>/v1/logs, application/json, gzip by default from 32 KiB, custom headers; the body passes the wire check", async () => {
    const label = uid("otlp");
    const records = someRecords(40, `otlp-${label}`);
    const { sink } = makeSink<OtlpPayload>(otlpSink, {
      endpoint: `${base}/ok/${label}/`,
      headers: { authorization: "Bearer s3cr3t", "x-scope-orgid": "acme" },
    });
    const result = await sink.send(sink.encode(records), AbortSignal.timeout(5_000));
    expect(result).toEqual({ outcome: "ok", status: 200 });
    const got = await received(label);
    expect(got).toHaveLength(1);
    const req = must(got[0]);
    expect(req.method).toBe("POST");
    expect(req.path).toBe(`/ok/${label}/v1/logs`);
    expect(req.headers["content-type"]).toBe("application/json");
    expect(req.headers["content-encoding"]).toBe("gzip");
    expect(req.headers.authorization).toBe("Bearer s3cr3t");
    expect(req.headers["x-scope-orgid"]).toBe("acme");
    expect(validateOtlp(req.body, req.headers)).toEqual([]);
    expect(logRecords(JSON.parse(req.body) as OtlpRequest)).toHaveLength(records.length);
    expect(req.body.length).toBeGreaterThanOrEqual(32768);
  });

  it("a body under gzipMinBytes goes uncompressed; gzipMinBytes 0 gzips every body", async () => {
    const records = someRecords(3, "otlp-small");
    const sent = async (options: Record<string, unknown>) => {
      const label = uid("otlpsmall");
      const { sink } = makeSink<OtlpPayload>(otlpSink, { endpoint: `${base}/ok/${label}`, ...options });
      const payload = sink.encode(records);
      expect(await sink.send(payload, AbortSignal.timeout(5_000))).toEqual({ outcome: "ok", status: 200 });
      const req = must((await received(label))[0]);
      expect(req.body).toBe(payload.body);
      expect(validateOtlp(req.body, req.headers)).toEqual([]);
      return { encoding: req.headers["content-encoding"], bytes: new TextEncoder().encode(req.body).byteLength };
    };
    const plain = await sent({});
    expect(plain.encoding).toBeUndefined();
    expect(plain.bytes).toBeLessThan(32768);
    expect((await sent({ gzipMinBytes: 0 })).encoding).toBe("gzip");
    // The threshold counts UTF-8 bytes: a body just at it is gzipped, one byte under is not.
    expect((await sent({ gzipMinBytes: plain.bytes })).encoding).toBe("gzip");
    expect((await sent({ gzipMinBytes: plain.bytes + 1 })).encoding).toBeUndefined();
  });

  it("gzip = false sends plain JSON", async () => {
    const label = uid("otlpplain");
    const { sink } = makeSink<OtlpPayload>(otlpSink, { endpoint: `${base}/ok/${label}`, gzip: false });
    await sink.send(sink.encode(someRecords(1, "otlp-plain")), AbortSignal.timeout(5_000));
    const req = must((await received(label))[0]);
    expect(req.headers["content-encoding"]).toBeUndefined();
    expect(validateOtlp(req.body, req.headers)).toEqual([]);
  });

  it.each([
    { status: 429, outcome: "retry" },
    { status: 502, outcome: "retry" },
    { status: 400, outcome: "fail" },
    { status: 401, outcome: "fail" },
  ])("HTTP $status → $outcome", async ({ status, outcome }) => {
    const label = uid(`otlps${status}`);
    const { sink } = makeSink<OtlpPayload>(otlpSink, { endpoint: `${base}/status/${status}/${label}?retryAfter=2` });
    const result = await sink.send(sink.encode(someRecords(1, "otlp-status")), AbortSignal.timeout(5_000));
    expect(result.outcome).toBe(outcome);
    if (result.outcome === "retry") expect(result.retryAfterMs).toBe(2000);
  });

  it("every captured and synthetic fixture passes the wire check", () => {
    const all = { ...captured, ...synthetic } as Record<string, unknown>;
    const records = serialized(
      Object.entries(all)
        .filter(([k]) => !k.startsWith("_"))
        .map(([, x]) => x as Record<string, unknown>),
    );
    const { sink } = makeSink<OtlpPayload>(otlpSink, { endpoint: `${base}/ok/x` });
    expect(validateOtlp(sink.encode(records).body)).toEqual([]);
  });
});

describe("otlp sink: mapping records to OTLP", () => {
  it("one resourceLogs per script, in order of first appearance, with the Cloudflare resource attributes", () => {
    const records = serialized([
      traceItem({ script: "api" }),
      traceItem({ script: "billing" }),
      traceItem({ script: "api", path: "/again" }),
    ]);
    const req = encode(records);
    expect(req.resourceLogs).toHaveLength(2);
    const [api, billing] = req.resourceLogs.map((rl) => attrs(rl.resource.attributes));
    expect(api).toEqual({
      "service.name": { stringValue: "api" },
      "cloud.provider": { stringValue: "cloudflare" },
      "cloud.platform": { stringValue: "cloudflare.workers" },
      "faas.name": { stringValue: "api" },
    });
    expect(billing?.["faas.name"]).toEqual({ stringValue: "billing" });
    expect(must(req.resourceLogs[0]).scopeLogs[0]?.logRecords).toHaveLength(4);
    expect(must(req.resourceLogs[0]).scopeLogs[0]?.scope).toEqual({ name: "tailfan", version: VERSION });
  });

  it("serviceName overrides service.name; without a script name it is tailfan and faas.name is absent", () => {
    expect(
      attrs(must(encode(someRecords(1, "api"), { serviceName: "shop" }).resourceLogs[0]).resource.attributes)[
        "service.name"
      ],
    ).toEqual({
      stringValue: "shop",
    });
    const nameless = serialized([{ ...traceItem(), scriptName: null }]);
    const resource = attrs(must(encode(nameless).resourceLogs[0]).resource.attributes);
    expect(resource["service.name"]).toEqual({ stringValue: "tailfan" });
    expect(resource["faas.name"]).toBeUndefined();
  });

  it("severity: debug 5, info and log 9, warn 13, error 17, severityText the level", () => {
    const records = serialized([
      traceItem({
        logs: [
          { level: "debug", message: ["d"] },
          { level: "info", message: ["i"] },
          { level: "log", message: ["l"] },
          { level: "warn", message: ["w"] },
          { level: "error", message: ["e"] },
        ],
      }),
    ]).filter((r) => r.record.type === "log");
    const got = logRecords(encode(records)).map((r) => [r.severityText, r.severityNumber]);
    expect(got).toEqual([
      ["debug", 5],
      ["info", 9],
      ["log", 9],
      ["warn", 13],
      ["error", 17],
    ]);
  });

  it("times: epoch ms as exact decimal nanoseconds; observed time is the same runtime time", () => {
    const [inv] = logRecords(encode(serialized([traceItem({ eventTimestamp: T0 })])));
    expect(inv?.timeUnixNano).toBe("1741964966535000000");
    expect(inv?.observedTimeUnixNano).toBe("1741964966535000000");
    expect(unixNano(1.5)).toBe("1500000");
    expect(unixNano(Number.NaN)).toBe("0");
  });

  it("body is the message; a fetch invocation carries the HTTP semantic conventions", () => {
    const records = serialized([traceItem({ script: "api", method: "POST", path: "/cart", status: 503 })]);
    const [inv] = logRecords(encode(records));
    expect(inv?.body).toEqual({ stringValue: must(records[0]).record.message });
    const a = attrs(must(inv).attributes);
    expect(a["http.request.method"]).toEqual({ stringValue: "POST" });
    expect(a["url.full"]).toEqual({ stringValue: "https://shop.example.com/cart" });
    expect(a["http.response.status_code"]).toEqual({ intValue: "503" });
    expect(a["cloud.region"]).toEqual({ stringValue: "DFW" });
    expect(a["geo.country.iso_code"]).toEqual({ stringValue: "US" });
    expect(a["faas.trigger"]).toEqual({ stringValue: "http" });
    expect(a["faas.invocation_id"]).toEqual({ stringValue: must(records[0]).record.invocationId });
    expect(a["log.record.uid"]).toEqual({ stringValue: must(records[0]).record.id });
    expect(a["cloudflare.outcome"]).toEqual({ stringValue: "ok" });
    expect(a["cloudflare.record_type"]).toEqual({ stringValue: "invocation" });
    expect(a["cloudflare.cpu_time_ms"]).toEqual({ intValue: "1" });
    expect(a["cloudflare.wall_time_ms"]).toEqual({ intValue: "2" });
    expect(a["cloudflare.event_type"]).toEqual({ stringValue: "fetch" });
    // The script is the resource, not an attribute; the raw event stays queryable as a kvlist.
    expect(a["cloudflare.script_name"]).toBeUndefined();
    expect(a["cloudflare.event"]).toHaveProperty("kvlistValue");
  });

  it("an exception record carries exception.type, exception.message and exception.stacktrace", () => {
    const records = serialized([traceItem({ exceptions: [{ name: "TypeError", message: "x is undefined" }] })]);
    const exc = logRecords(encode(records)).find(
      (r) => attrs(r.attributes)["cloudflare.record_type"]?.stringValue === "exception",
    );
    const a = attrs(must(exc).attributes);
    expect(a["exception.type"]).toEqual({ stringValue: "TypeError" });
    expect(a["exception.message"]).toEqual({ stringValue: "x is undefined" });
    expect((a["exception.stacktrace"] as AnyRecord).stringValue).toContain("TypeError: x is undefined");
    expect(must(exc).severityNumber).toBe(17);
  });

  it.each([
    { fixture: "scheduled", trigger: "timer" },
    { fixture: "alarm", trigger: "timer" },
    { fixture: "queue", trigger: "pubsub" },
    { fixture: "rpc", trigger: "other" },
    { fixture: "email", trigger: "other" },
  ])("faas.trigger of a $fixture event is $trigger", ({ fixture, trigger }) => {
    const [inv] = logRecords(encode(fixtureRecords(fixture)));
    expect(attrs(must(inv).attributes)["faas.trigger"]).toEqual({ stringValue: trigger });
  });

  it("queue and cron fields use the messaging and faas conventions", () => {
    const queue = attrs(must(logRecords(encode(fixtureRecords("queue")))[0]).attributes);
    expect(queue["messaging.destination.name"]).toHaveProperty("stringValue");
    expect(queue["messaging.batch.message_count"]).toHaveProperty("intValue");
    const cron = attrs(must(logRecords(encode(fixtureRecords("scheduled")))[0]).attributes);
    expect(cron["faas.cron"]).toHaveProperty("stringValue");
  });

  it("log arguments keep their types as AnyValue: objects as kvlist, integers as intValue strings, others as double", () => {
    const records = serialized([
      traceItem({ logs: [{ level: "info", message: ["n", 3, 2.5, { ok: true, big: 2 ** 60 }, null] }] }),
    ]);
    const log = logRecords(encode(records)).find(
      (r) => attrs(r.attributes)["cloudflare.record_type"]?.stringValue === "log",
    );
    expect(attrs(must(log).attributes)["cloudflare.args"]).toEqual({
      arrayValue: {
        values: [
          { stringValue: "n" },
          { intValue: "3" },
          { doubleValue: 2.5 },
          {
            kvlistValue: {
              values: [
                { key: "ok", value: { boolValue: true } },
                { key: "big", value: { doubleValue: 2 ** 60 } },
              ],
            },
          },
          {},
        ],
      },
    });
  });

  it("anyValue maps JSON values", () => {
    expect(anyValue("s")).toEqual({ stringValue: "s" });
    expect(anyValue(-7)).toEqual({ intValue: "-7" });
    expect(anyValue(false)).toEqual({ boolValue: false });
    expect(anyValue(null)).toEqual({});
    expect(anyValue([])).toEqual({ arrayValue: { values: [] } });
  });
});

describe("otlp sink: the direct writer", () => {
  /** Records of every kind and odd values: what the writer must encode exactly as the request object would be. */
  function oddRecords(): SerializedRecord[] {
    const all = { ...captured, ...synthetic } as Record<string, unknown>;
    const records = serialized(
      Object.entries(all)
        .filter(([k]) => !k.startsWith("_"))
        .map(([, x]) => x as Record<string, unknown>),
    );
    const [log] = serialized([traceItem({ script: "odd", logs: [{ level: "warn", message: ["odd"] }] })]).slice(1);
    const base = must(log).record;
    const odd = (fields: Record<string, unknown>) => serializeRecord({ ...base, ...fields } as LogRecord);
    return [
      ...records,
      ...someRecords(4, "another-script"),
      odd({ args: [{ "": 1, nested: [1.5, null, true, "x", {}, [], 2 ** 60, -0, Number.NaN] }] }),
      odd({ message: 'lone \ud800 surrogate, quote " and \u2028', scriptVersion: {}, scriptTags: [] }),
      odd({ traceId: "0AF7651916CD43DD8448EB211C80319C", spanId: "B7AD6B7169203331" }),
      odd({ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "short" }),
      odd({ traceId: "not hex", scriptName: null, status: 503, limited: true, limitedFields: ["message"] }),
      odd({ type: "exception", exceptionName: "TypeError", stack: "TypeError: x\n    at f", timestamp: 1.5 }),
      odd({ level: "debug", timestamp: -1, eventType: "weird", cpuTime: 0.25 }),
      // The same context in other key orders, the second with its own fields in between: attributes follow each record's order.
      serializeRecord(Object.fromEntries(Object.entries(base).reverse()) as unknown as LogRecord),
      serializeRecord(
        Object.fromEntries(
          Object.entries(base).sort(([a], [b]) => (a.length % 3) - (b.length % 3) || a.localeCompare(b)),
        ) as unknown as LogRecord,
      ),
      odd({}),
    ];
  }

  it("writes the same JSON as serializing the request object, for every record kind and odd values", () => {
    const records = oddRecords();
    expect(records.length).toBeGreaterThan(20);
    for (const serviceName of [undefined, "checkout"]) {
      expect(otlpBody(records, serviceName)).toBe(JSON.stringify(otlpRequest(records, serviceName)));
      // Record by record too, so that a context kept from the record before cannot hide a difference.
      for (const r of records) expect(otlpBody([r], serviceName)).toBe(JSON.stringify(otlpRequest([r], serviceName)));
    }
  });

  it("names a field like an Object.prototype member as any other field, and the same name every time", () => {
    expect(attributeName("constructor")).toBe("cloudflare.constructor");
    expect(attributeName("toString")).toBe("cloudflare.to_string");
    expect(attributeName("__proto__")).toBe("cloudflare.__proto__");
    for (let i = 0; i < 2; i++) {
      expect(attributeName("url")).toBe("url.full");
      expect(attributeName("cpuTime")).toBe("cloudflare.cpu_time_ms");
      expect(attributeName("logLevel")).toBe("cloudflare.log_level");
    }
  });

  it("a context field whose value changes between records of a batch is written with the new value", () => {
    const [a, b] = someRecords(2, "shop-api");
    const changed = serializeRecord({ ...must(b).record, invocationId: must(a).record.invocationId, status: 404 });
    const body = JSON.parse(otlpBody([must(a), changed])) as OtlpRequest;
    const statuses = logRecords(body).map((r) => attrs(r.attributes)["http.response.status_code"]);
    expect(statuses).toEqual([{ intValue: "200" }, { intValue: "404" }]);
  });
});

describe("otlp sink: partialSuccess", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
  });

  it("reads rejectedLogRecords (string or number) and errorMessage", () => {
    expect(partialSuccess({})).toBeNull();
    expect(partialSuccess(undefined)).toBeNull();
    expect(partialSuccess({ partialSuccess: {} })).toBeNull();
    expect(partialSuccess({ partialSuccess: { rejectedLogRecords: "3", errorMessage: "too old" } })).toEqual({
      rejected: 3,
      message: "too old",
    });
    expect(partialSuccess({ partialSuccess: { rejectedLogRecords: 2 } })).toEqual({ rejected: 2, message: "" });
    expect(partialSuccess({ partialSuccess: { errorMessage: "deprecated field" } })).toEqual({
      rejected: 0,
      message: "deprecated field",
    });
  });

  it("a 200 with rejected records is ok (the rest must not be re-sent) and warns naming the sink and count", async () => {
    const fetcher = vi.fn(async () =>
      Response.json({ partialSuccess: { rejectedLogRecords: "2", errorMessage: "timestamp too old" } }),
    );
    vi.stubGlobal("fetch", fetcher);
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const { sink } = makeSink<OtlpPayload>(otlpSink, { endpoint: "https://collector.example.com" }, "otel");
    const result = await sink.send(sink.encode(someRecords(2, "otlp-partial")), AbortSignal.timeout(5_000));
    expect(result).toEqual({ outcome: "ok", status: 200 });
    expect(fetcher).toHaveBeenCalledTimes(1);
    expect(warn).toHaveBeenCalledWith(
      'tailfan: sink "otel" (otlp): the collector rejected 2 log record(s) of this batch (not retried, per the OTLP spec): timestamp too old',
    );
    expect(partialSuccessWarning("x", { rejected: 0, message: "m" })).toContain("accepted the batch with a warning: m");
    // The traces and metrics sinks say what they sent, under their own type.
    expect(partialSuccessWarning("t", { rejected: 2, message: "" }, "traces")).toBe(
      'tailfan: sink "t" (otlp_traces): the collector rejected 2 span(s) of this batch (not retried, per the OTLP spec)',
    );
    expect(partialSuccessWarning("m", { rejected: 4, message: "" }, "metrics")).toBe(
      'tailfan: sink "m" (otlp_metrics): the collector rejected 4 data point(s) of this batch (not retried, per the OTLP spec)',
    );
  });

  it("a 200 with an empty response (or the receiver's plain 'ok') is ok without a warning", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => Response.json({})),
    );
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const { sink } = makeSink<OtlpPayload>(otlpSink, { endpoint: "https://collector.example.com" });
    expect(await sink.send(sink.encode(someRecords(1, "otlp-empty")), AbortSignal.timeout(5_000))).toEqual({
      outcome: "ok",
      status: 200,
    });
    expect(warn).not.toHaveBeenCalled();
  });
});

describe("otlp wire validator", () => {
  const good = () => encode(someRecords(2, "otlp-wire")) as unknown as AnyRecord;
  const first = (j: AnyRecord) => j.resourceLogs[0].scopeLogs[0].logRecords[0];

  it("accepts the sink's encoding, with and without headers", () => {
    expect(validateOtlp(JSON.stringify(good()))).toEqual([]);
    expect(validateOtlp(JSON.stringify(good()), { "content-type": "application/json" })).toEqual([]);
  });

  it.each([
    {
      name: "a time as a number",
      mutate: (j: AnyRecord) => {
        first(j).timeUnixNano = 1741964966535000000;
      },
      want: /timeUnixNano/,
    },
    {
      name: "a negative time string",
      mutate: (j: AnyRecord) => {
        first(j).timeUnixNano = "-1";
      },
      want: /timeUnixNano/,
    },
    {
      name: "an enum name for severityNumber",
      mutate: (j: AnyRecord) => {
        first(j).severityNumber = "SEVERITY_NUMBER_INFO";
      },
      want: /severityNumber/,
    },
    {
      name: "severityNumber out of range",
      mutate: (j: AnyRecord) => {
        first(j).severityNumber = 30;
      },
      want: /severityNumber/,
    },
    {
      name: "a snake_case field",
      mutate: (j: AnyRecord) => {
        first(j).time_unix_nano = "1";
      },
      want: /time_unix_nano/,
    },
    {
      name: "an intValue as a number",
      mutate: (j: AnyRecord) => {
        first(j).attributes.push({ key: "n", value: { intValue: 1 } });
      },
      want: /intValue/,
    },
    {
      name: "two oneof members",
      mutate: (j: AnyRecord) => {
        first(j).body = { stringValue: "a", intValue: "1" };
      },
      want: /oneof/,
    },
    {
      name: "a base64 traceId",
      mutate: (j: AnyRecord) => {
        first(j).traceId = "AAECAwQFBgcICQoLDA0ODw==";
      },
      want: /traceId/,
    },
    {
      name: "a short spanId",
      mutate: (j: AnyRecord) => {
        first(j).spanId = "abcd";
      },
      want: /spanId/,
    },
    {
      name: "an all-zero traceId",
      mutate: (j: AnyRecord) => {
        first(j).traceId = "0".repeat(32);
      },
      want: /traceId/,
    },
    {
      name: "duplicate attribute keys",
      mutate: (j: AnyRecord) => {
        first(j).attributes.push(first(j).attributes[0]);
      },
      want: /duplicate/,
    },
    {
      name: "an empty attribute key",
      mutate: (j: AnyRecord) => {
        first(j).attributes.push({ key: "", value: {} });
      },
      want: /key/,
    },
    {
      name: "resourceLogs not an array",
      mutate: (j: AnyRecord) => {
        j.resourceLogs = {};
      },
      want: /resourceLogs/,
    },
    {
      name: "an unknown top-level field",
      mutate: (j: AnyRecord) => {
        j.logs = [];
      },
      want: /logs/,
    },
    {
      name: "neither time set",
      mutate: (j: AnyRecord) => {
        delete first(j).timeUnixNano;
        delete first(j).observedTimeUnixNano;
      },
      want: /neither/,
    },
  ])("rejects $name", ({ mutate, want }) => {
    const j = good();
    mutate(j);
    const problems = validateOtlp(JSON.stringify(j));
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toMatch(want);
  });

  it("rejects a body that is not JSON, and the wrong content type", () => {
    expect(validateOtlp("{").join()).toMatch(/not JSON/);
    expect(validateOtlp(JSON.stringify(good()), { "content-type": "application/x-protobuf" }).join()).toMatch(
      /content-type/,
    );
  });
});
