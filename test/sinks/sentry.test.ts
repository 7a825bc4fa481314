import { describe, expect, it } from "vitest";
import {
  encodeSentry,
  envelopeBody,
  envelopeEndpoint,
  eventIdFor,
  parseDsn,
  parseStack,
  type SentryPayload,
  sentrySink,
} from "../../sinks/sentry";
import { serializeRecord } from "../../src/json";
import type { LogRecord, SerializedRecord } from "../../src/record";
import { VERSION } from "../../src/version";
import { sinkContract } from "./contract";
import { makeSink, must, received, receiverUrl, serialized, T0, traceItem, uid } from "./helpers";
import { validateSentry } from "./wire/sentry";

const base = receiverUrl();
const dsnFor = (projectId: string | number) => `${base.replace("://", "://pubkey123@")}/${projectId}`;

/** Records of one invocation that threw: invocation, logs, exceptions. */
function crashRecords(script = "shop-api", n = 1, spec: Parameters<typeof traceItem>[0] = {}): SerializedRecord[] {
  return serialized([
    traceItem({
      script,
      outcome: "exception",
      logs: [
        { level: "info", message: ["loading cart"], at: 1 },
        { level: "warn", message: ["slow upstream", { ms: 900 }], at: 2 },
      ],
      exceptions: Array.from({ length: n }, (_, i) => ({ name: "TypeError", message: `x is undefined #${i}` })),
      ...spec,
    }),
  ]);
}
const exceptionsOnly = (records: SerializedRecord[]) => records.filter((r) => r.record.type === "exception");

sinkContract({
  def: sentrySink,
  valid: { dsn: dsnFor(1) },
  resolved: { dsn: dsnFor(1), gzip: true, maxRecords: 100 },
  invalid: [
    { name: "a dsn without a public key", options: { dsn: "https://o0.ingest.sentry.io/1" }, path: "dsn" },
    { name: "a dsn without a project id", options: { dsn: "https://key@o0.ingest.sentry.io/" }, path: "dsn" },
    { name: "a dsn with a non-numeric project", options: { dsn: "https://key@o0.ingest.sentry.io/shop" }, path: "dsn" },
    { name: "a dsn that is not a URL", options: { dsn: "key@sentry" }, path: "dsn" },
    { name: "a dsn of the wrong type", options: { dsn: 42 }, path: "dsn" },
    { name: "a relative endpoint", options: { dsn: dsnFor(1), endpoint: "/api/1/envelope/" }, path: "endpoint" },
    { name: "an environment with a slash", options: { dsn: dsnFor(1), environment: "prod/eu" }, path: "environment" },
    { name: "an environment named None", options: { dsn: dsnFor(1), environment: "None" }, path: "environment" },
    { name: "a release with a line break", options: { dsn: dsnFor(1), release: "v1\nv2" }, path: "release" },
    { name: "gzip as a string", options: { dsn: dsnFor(1), gzip: "yes" }, path: "gzip" },
    { name: "maxRecords 0", options: { dsn: dsnFor(1), maxRecords: 0 }, path: "maxRecords" },
  ],
  rejecting: [
    {
      name: "the endpoint refuses connections",
      options: { dsn: dsnFor(1), endpoint: "http://127.0.0.1:1/api/1/envelope/" },
      records: () => exceptionsOnly(crashRecords("sentry-reject", 2)),
    },
    {
      name: "the endpoint answers 500",
      options: { dsn: dsnFor(1), endpoint: `${base}/status/500/sentry-contract-reject` },
      records: () => exceptionsOnly(crashRecords("sentry-reject", 2)),
    },
  ],
  abortOptions: { dsn: dsnFor(1), endpoint: `${base}/hang/sentry-contract-abort` },
  // The contract's abort test sends ordinary records, which hold no exception: nothing goes out. See below.
  abortIsHonoured: false,
});

describe("sentry sink: DSN", () => {
  it("derives the envelope endpoint from the DSN", () => {
    const dsn = must(parseDsn("https://abc123@o447951.ingest.sentry.io/5434472"));
    expect(dsn).toEqual({
      publicKey: "abc123",
      protocol: "https:",
      host: "o447951.ingest.sentry.io",
      pathPrefix: "",
      projectId: "5434472",
    });
    expect(envelopeEndpoint(dsn)).toBe("https://o447951.ingest.sentry.io/api/5434472/envelope/");
  });

  it("keeps a port and a path prefix (self-hosted), ignores a legacy secret key", () => {
    const dsn = must(parseDsn("http://pub:secret@sentry.internal:9000/sentry/7"));
    expect(dsn.publicKey).toBe("pub");
    expect(envelopeEndpoint(dsn)).toBe("http://sentry.internal:9000/sentry/api/7/envelope/");
  });

  it.each(["", "not a url", "ftp://k@h/1", "https://h/1", "https://k@h/x", "https://k@h"])("rejects %j", (dsn) => {
    expect(parseDsn(dsn)).toBeUndefined();
  });

  it("reads SENTRY_DSN by default", () => {
    expect(sentrySink.defaultSecrets).toEqual({ dsn: "SENTRY_DSN" });
  });
});

describe("sentry sink: stack parsing", () => {
  it("parses V8 frames, oldest first", () => {
    const stack = [
      "TypeError: x is undefined",
      "    at handler (worker.js:10:5)",
      "    at async Object.fetch (index.js:3:1)",
      "    at worker.js:20:7",
      "    at new Cart (cart.js:4:2)",
      "    at Array.map (<anonymous>)",
      "    at lib (/app/node_modules/lib/index.js:1:9)",
    ].join("\n");
    expect(parseStack(stack)).toEqual([
      {
        function: "lib",
        filename: "/app/node_modules/lib/index.js",
        abs_path: "/app/node_modules/lib/index.js",
        lineno: 1,
        colno: 9,
        in_app: false,
      },
      { function: "Array.map", filename: "<anonymous>", abs_path: "<anonymous>", in_app: false },
      { function: "new Cart", filename: "cart.js", abs_path: "cart.js", lineno: 4, colno: 2, in_app: true },
      { filename: "worker.js", abs_path: "worker.js", lineno: 20, colno: 7, in_app: true },
      { function: "Object.fetch", filename: "index.js", abs_path: "index.js", lineno: 3, colno: 1, in_app: true },
      { function: "handler", filename: "worker.js", abs_path: "worker.js", lineno: 10, colno: 5, in_app: true },
    ]);
  });

  it("no stack or no frame lines → no frames", () => {
    expect(parseStack(undefined)).toEqual([]);
    expect(parseStack("Error: boom")).toEqual([]);
  });

  it("keeps the innermost 100 frames of a deep stack", () => {
    const lines = ["RangeError: too deep"];
    for (let i = 0; i < 150; i++) lines.push(`    at f${i} (w.js:${i + 1}:1)`);
    const frames = parseStack(lines.join("\n"));
    expect(frames).toHaveLength(100);
    expect(frames.at(-1)?.function).toBe("f0");
    expect(frames[0]?.function).toBe("f99");
  });
});

type Event = Record<string, unknown> & {
  event_id: string;
  exception: { values: { type: string; value: string; stacktrace?: { frames: unknown[] }; mechanism: unknown }[] };
  tags: Record<string, string>;
  extra: Record<string, unknown>;
  breadcrumbs?: { values: { message: string; level: string; timestamp: number }[] };
};

/** The event JSON of each envelope of a payload. */
function events(payload: SentryPayload): Event[] {
  return payload.envelopes.map((e) => JSON.parse(must(e.items.split("\n")[1])) as Event);
}

describe("sentry sink: records → events", () => {
  it("one event per exception record, others skipped, indices into the batch", () => {
    const records = crashRecords("shop-api", 2);
    const payload = encodeSentry(records, {});
    expect(payload.records).toBe(records.length);
    expect(payload.envelopes.map((e) => e.index)).toEqual(
      records.flatMap((r, i) => (r.record.type === "exception" ? [i] : [])),
    );
    expect(payload.envelopes).toHaveLength(2);
  });

  it("maps the exception, time, level, platform, tags, request and extra", () => {
    const records = crashRecords("shop-api", 1, { method: "POST", path: "/checkout", status: 500 });
    const ex = must(records.find((r) => r.record.type === "exception")).record;
    const [event] = events(encodeSentry(records, { environment: "production" }));
    const e = must(event);
    expect(e.event_id).toBe(eventIdFor(ex.id));
    expect(e.timestamp).toBe(ex.timestamp / 1000);
    expect(e.platform).toBe("javascript");
    expect(e.level).toBe("error");
    expect(e.environment).toBe("production");
    expect(e.sdk).toEqual({ name: "tailfan", version: VERSION });
    expect(e.exception.values).toEqual([
      {
        type: "TypeError",
        value: "x is undefined #0",
        mechanism: { type: "cloudflare_tail", handled: false },
        stacktrace: {
          frames: [
            { function: "handler", filename: "worker.js", abs_path: "worker.js", lineno: 10, colno: 5, in_app: true },
          ],
        },
      },
    ]);
    expect(e.tags).toEqual({
      script: "shop-api",
      outcome: "exception",
      eventType: "fetch",
      "url.host": "shop.example.com",
      status: "500",
      colo: "DFW",
    });
    expect(e.request).toEqual({ url: "https://shop.example.com/checkout", method: "POST" });
    expect(e.extra).toMatchObject({ invocationId: ex.invocationId, recordId: ex.id });
    expect(e.server_name).toBe("shop-api");
  });

  it("console lines of the same invocation before the exception become breadcrumbs", () => {
    const [event] = events(encodeSentry(crashRecords(), {}));
    expect(must(event).breadcrumbs?.values.map((b) => [b.level, b.message])).toEqual([
      ["info", "loading cart"],
      ["warning", 'slow upstream {"ms":900}'],
    ]);
  });

  it("event ids: 32 hex, UUIDv4-shaped, stable per record, different across records", () => {
    const ids = events(encodeSentry(crashRecords("a", 3), {})).map((e) => e.event_id);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
    expect(new Set(ids).size).toBe(3);
    expect(events(encodeSentry(crashRecords("a", 3), {})).map((e) => e.event_id)).toEqual(ids);
  });

  it("release: the option, else the record's version id, else its tag", () => {
    const ex = must(exceptionsOnly(crashRecords())[0]);
    const withVersion = (scriptVersion: unknown) => serializeRecord({ ...ex.record, scriptVersion } as LogRecord);
    const rel = (item: SerializedRecord, release?: string) =>
      must(events(encodeSentry([item], { release }))[0]).release;
    expect(rel(ex)).toBeUndefined();
    expect(rel(withVersion({ id: "0b1c-uuid", tag: "v1.2.3" }))).toBe("0b1c-uuid");
    expect(rel(withVersion({ tag: "v1.2.3" }))).toBe("v1.2.3");
    expect(rel(withVersion({ tag: "feature/x" }))).toBeUndefined(); // not a valid Sentry release
    expect(rel(withVersion({ id: "0b1c-uuid" }), "shop@2.0.0")).toBe("shop@2.0.0");
  });

  it("item header length is the UTF-8 byte length of the event, with non-ASCII messages", () => {
    const records = serialized([
      traceItem({
        outcome: "exception",
        exceptions: [{ name: "Error", message: "Zahlung fehlgeschlagen: 💳 ungültig — ☃" }],
      }),
    ]);
    const payload = encodeSentry(records, {});
    const body = envelopeBody(must(payload.envelopes[0]), dsnFor(1), new Date(T0).toISOString());
    expect(validateSentry(body)).toEqual([]);
  });

  it("a huge message is cut, keeping the event small", () => {
    const records = serialized([
      traceItem({ outcome: "exception", exceptions: [{ name: "Error", message: "x".repeat(100_000) }] }),
    ]);
    const [event] = events(encodeSentry(records, {}));
    expect(must(must(event).exception.values[0]).value.length).toBeLessThanOrEqual(8192);
  });

  it("no exception in the batch: no envelope, and send answers ok without a request", async () => {
    const label = uid("sentry-none");
    const { sink } = makeSink<SentryPayload>(sentrySink, { dsn: dsnFor(1), endpoint: `${base}/ok/${label}` });
    const records = serialized([traceItem({ logs: [{ level: "error", message: ["not an exception"] }] })]);
    const payload = sink.encode(records);
    expect(payload.envelopes).toEqual([]);
    expect(await sink.send(payload, AbortSignal.timeout(5_000))).toEqual({ outcome: "ok" });
    expect(await received(label)).toHaveLength(0);
  });
});

describe("sentry sink: against the receiver", () => {
  it("round trip through the DSN's own endpoint: one request per event, auth, gzip, valid envelopes", async () => {
    const project = String(Math.floor(Math.random() * 1e9) + 1000);
    const { sink } = makeSink<SentryPayload>(sentrySink, { dsn: dsnFor(project), environment: "staging" });
    const records = crashRecords("sentry-rt", 2);
    const result = await sink.send(sink.encode(records), AbortSignal.timeout(5_000));
    expect(result).toEqual({ outcome: "ok", status: 200 });
    const got = await received(project); // the receiver labels /api/<project>/... by the project id
    expect(got).toHaveLength(2);
    for (const req of got) {
      expect(req.method).toBe("POST");
      expect(req.path).toBe(`/api/${project}/envelope/`);
      expect(req.headers["content-type"]).toBe("application/x-sentry-envelope");
      expect(req.headers["content-encoding"]).toBe("gzip");
      expect(req.headers["x-sentry-auth"]).toBe(
        `Sentry sentry_version=7, sentry_key=pubkey123, sentry_client=tailfan/${VERSION}`,
      );
      expect(validateSentry(req.body, req.headers)).toEqual([]);
      const header = JSON.parse(must(req.body.split("\n")[0])) as { event_id: string; sent_at: string; dsn: string };
      expect(header.dsn).toBe(dsnFor(project));
      expect(Math.abs(Date.parse(header.sent_at) - Date.now())).toBeLessThan(60_000);
      const event = JSON.parse(must(req.body.split("\n")[2])) as { event_id: string; environment: string };
      expect(event.event_id).toBe(header.event_id);
      expect(event.environment).toBe("staging");
    }
    const ids = exceptionsOnly(records).map((r) => eventIdFor(r.record.id));
    expect(got.map((r) => (JSON.parse(must(r.body.split("\n")[0])) as { event_id: string }).event_id)).toEqual(ids);
  });

  it("gzip false sends the plain envelope", async () => {
    const label = uid("sentry-plain");
    const { sink } = makeSink<SentryPayload>(sentrySink, {
      dsn: dsnFor(1),
      endpoint: `${base}/ok/${label}`,
      gzip: false,
    });
    await sink.send(sink.encode(crashRecords()), AbortSignal.timeout(5_000));
    const req = must((await received(label))[0]);
    expect(req.headers["content-encoding"]).toBeUndefined();
    expect(req.wireBytes).toBe(new TextEncoder().encode(req.body).byteLength);
  });

  it("429 with Retry-After → retry with that delay, the other events not tried", async () => {
    const label = uid("sentry-429");
    const { sink } = makeSink<SentryPayload>(sentrySink, {
      dsn: dsnFor(1),
      endpoint: `${base}/status/429/${label}?retryAfter=7`,
    });
    const result = await sink.send(sink.encode(exceptionsOnly(crashRecords("s", 3))), AbortSignal.timeout(5_000));
    expect(result).toMatchObject({ outcome: "retry", status: 429, retryAfterMs: 7000 });
    expect(await received(label)).toHaveLength(1);
  });

  it("a 400 for one event → partial: that record refused, the others delivered", async () => {
    const label = uid("sentry-partial");
    await fetch(`${base}/__behave?label=${label}&mode=400&for=1`, { method: "POST" });
    const { sink } = makeSink<SentryPayload>(sentrySink, { dsn: dsnFor(1), endpoint: `${base}/ctl/${label}` });
    const records = crashRecords("s", 2);
    const payload = sink.encode(records);
    const result = await sink.send(payload, AbortSignal.timeout(5_000));
    expect(result).toMatchObject({
      outcome: "partial",
      retry: [],
      fail: [must(payload.envelopes[0]).index],
      status: 400,
    });
    expect(await received(label)).toHaveLength(2);
  });

  it("a 503 in a batch with other records → partial retry of the exceptions only", async () => {
    const label = uid("sentry-503");
    const { sink } = makeSink<SentryPayload>(sentrySink, { dsn: dsnFor(1), endpoint: `${base}/status/503/${label}` });
    const payload = sink.encode(crashRecords("s", 2));
    const result = await sink.send(payload, AbortSignal.timeout(5_000));
    expect(result).toMatchObject({ outcome: "partial", retry: payload.envelopes.map((e) => e.index), fail: [] });
  });

  it.each([
    [401, "fail"],
    [413, "fail"],
    [500, "retry"],
  ] as const)("%i for every event → %s", async (status, outcome) => {
    const label = uid(`sentry-${status}`);
    const { sink } = makeSink<SentryPayload>(sentrySink, {
      dsn: dsnFor(1),
      endpoint: `${base}/status/${status}/${label}`,
    });
    const result = await sink.send(sink.encode(exceptionsOnly(crashRecords("s", 2))), AbortSignal.timeout(5_000));
    expect(result.outcome).toBe(outcome);
    expect(result.status).toBe(status);
    if (result.outcome !== "ok") expect(result.reason).not.toContain("pubkey123");
  });

  it("a hanging endpoint with an aborting signal → retry naming the abort", async () => {
    const label = uid("sentry-hang");
    const { sink } = makeSink<SentryPayload>(sentrySink, { dsn: dsnFor(1), endpoint: `${base}/hang/${label}` });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new DOMException("test aborted", "AbortError")), 100);
    const result = await sink.send(sink.encode(exceptionsOnly(crashRecords("s", 2))), controller.signal);
    expect(result.outcome).toBe("retry");
    if (result.outcome === "retry") expect(result.reason).toMatch(/abort/i);
    expect(await received(label)).toHaveLength(1);
  });
});

describe("sentry wire validator", () => {
  const good = () => {
    const payload = encodeSentry(crashRecords("v", 1), {});
    return envelopeBody(must(payload.envelopes[0]), dsnFor(1), new Date(T0).toISOString());
  };
  const lines = (body: string) => body.split("\n");
  const auth = { "x-sentry-auth": "Sentry sentry_version=7, sentry_key=abc, sentry_client=tailfan/0.1.0" };

  it("accepts a well-formed envelope", () => {
    expect(validateSentry(good(), auth)).toEqual([]);
  });

  it("accepts an item without length (payload up to the newline)", () => {
    const [h, ih, ev] = lines(good());
    const noLength = JSON.stringify({ type: "event" });
    expect(validateSentry(`${h}\n${noLength}\n${ev}\n`)).toEqual([]);
    expect(ih).toContain('"length"');
  });

  const malformed: [string, (b: string) => string, RegExp][] = [
    ["a header that is not JSON", (b) => `{oops\n${lines(b).slice(1).join("\n")}`, /envelope header is not JSON/],
    [
      "an event_id that is not 32 hex",
      (b) => b.replace(/"event_id":"[0-9a-f]{32}"/, '"event_id":"XYZ"'),
      /event_id must be a UUID/,
    ],
    [
      "a length past the end of the body",
      (b) => b.replace(/"length":(\d+)/, (_, n) => `"length":${Number(n) + 5}`),
      /not followed by a newline|runs past/,
    ],
    [
      "a length one byte too short",
      (b) => b.replace(/"length":(\d+)/, (_, n) => `"length":${Number(n) - 1}`),
      /not followed by a newline|not JSON/,
    ],
    [
      "a payload that is not JSON",
      (b) => {
        const [h] = lines(b);
        return `${h}\n${JSON.stringify({ type: "event", length: 5 })}\nnot{}\n`;
      },
      /payload is not JSON/,
    ],
    [
      "two events in one envelope",
      (b) => {
        const [h, ih, ev] = lines(b);
        return `${h}\n${ih}\n${ev}\n${ih}\n${ev}\n`;
      },
      /at most one/,
    ],
    ["mixed item types", (b) => `${b}${JSON.stringify({ type: "session", length: 2 })}\n{}\n`, /mixes item types/],
    ["no items", (b) => `${lines(b)[0]}\n`, /no items/],
    [
      "a timestamp in milliseconds",
      (b) =>
        b.replace(/"timestamp":([\d.]+)/, (_, s) => {
          const ms = String(Math.round(Number(s) * 1000));
          return `"timestamp":${ms}`;
        }),
      /milliseconds|not followed|runs past/,
    ],
    [
      "an empty frames list",
      (b) => {
        const [h, , ev] = lines(b);
        const event = JSON.parse(must(ev)) as Event;
        must(event.exception.values[0]).stacktrace = { frames: [] };
        const json = JSON.stringify(event);
        return `${h}\n${JSON.stringify({ type: "event", length: new TextEncoder().encode(json).byteLength })}\n${json}\n`;
      },
      /frames must be a non-empty list/,
    ],
  ];

  it.each(malformed)("rejects %s", (_, mangle, problem) => {
    const problems = validateSentry(mangle(good()));
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toMatch(problem);
  });

  it("rejects a request without X-Sentry-Auth or with the wrong version", () => {
    expect(validateSentry(good(), {}).join("\n")).toMatch(/X-Sentry-Auth header is missing/);
    expect(validateSentry(good(), { "x-sentry-auth": "Sentry sentry_version=5, sentry_key=a" }).join("\n")).toMatch(
      /sentry_version=7/,
    );
  });
});
