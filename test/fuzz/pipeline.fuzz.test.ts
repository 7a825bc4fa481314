/**
 * Property-based fuzzing of the pipeline: TraceItem-like input (see
 * arbitraries.ts) through normalize, serialize, route, batch and every
 * sink's encoder, and through the whole tail handler against local R2 and
 * the local HTTP receiver. `npm test` runs a short pass with a fixed seed;
 * `npm run fuzz` runs the long one (test/fuzz/README.md).
 */
import { env as workerEnv } from "cloudflare:workers";
import fc from "fast-check";
import { afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { SLACK_TEXT_LIMIT } from "../../sinks/alerts";
import { envelopeBody, type SentryPayload } from "../../sinks/sentry";
import { loadConfig, type ResolvedConfig } from "../../src/config";
import { splitBatches } from "../../src/delivery/batch";
import { RecordSerializer } from "../../src/json";
import { normalizeTraceItems } from "../../src/normalize";
import { planDelivery } from "../../src/pipeline";
import type { LogRecord } from "../../src/record";
import { handleTail } from "../../src/tail";
import { utf8Length } from "../../src/text";
import { validateAnalyticsEngine } from "../sinks/wire/analytics-engine";
import { validateAxiom } from "../sinks/wire/axiom";
import { validateBetterStack } from "../sinks/wire/betterstack";
import { validateDatadog } from "../sinks/wire/datadog";
import { validateDiscord } from "../sinks/wire/discord";
import { validateElasticsearch } from "../sinks/wire/elasticsearch";
import { validateHoneycomb } from "../sinks/wire/honeycomb";
import { validateLoki } from "../sinks/wire/loki";
import { validateNewRelic } from "../sinks/wire/newrelic";
import { validateOtlp } from "../sinks/wire/otlp";
import { validateSentry } from "../sinks/wire/sentry";
import { validateSlack } from "../sinks/wire/slack";
import { validateSplunk } from "../sinks/wire/splunk";
import { smallTraceBatch, traceBatch } from "./arbitraries";
import { LONG, params, SEED, TIMEOUT } from "./settings";

/** A fixed "now", so records of items without any time are reproducible. */
const NOW = Date.UTC(2026, 10, 21, 8, 0, 0);

if (LONG) console.log(`fuzz: seed ${SEED}`);

// ---------------------------------------------------------------- helpers

/** Where `value` stops being plain JSON (undefined when it is): what a record must never hold. */
function notJson(value: unknown, path = "$", stack: object[] = []): string | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(value) ? undefined : `${path}: ${value}`;
    case "object":
      break;
    default:
      return `${path}: a ${typeof value}`;
  }
  if (value === null) return undefined;
  if (stack.includes(value)) return `${path}: a cycle`;
  stack.push(value);
  try {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        if (!(i in value) || value[i] === undefined) return `${path}[${i}]: missing or undefined in an array`;
        const p = notJson(value[i], `${path}[${i}]`, stack);
        if (p) return p;
      }
      return undefined;
    }
    const proto = Object.getPrototypeOf(value);
    // The runtime's own event objects (FetchEventInfo, ...) are kept by reference by design.
    const runtime = path === "$.event" && /EventInfo$/.test(String(proto?.constructor?.name));
    if (proto !== Object.prototype && proto !== null && !runtime)
      return `${path}: a ${proto?.constructor?.name ?? "?"} object`;
    for (const key of Object.keys(value)) {
      const desc = Object.getOwnPropertyDescriptor(value, key);
      if (desc?.get) return `${path}.${key}: a getter`;
      const v = (value as Record<string, unknown>)[key];
      if (v === undefined) continue; // left out by JSON.stringify, like an absent field
      const p = notJson(v, `${path}.${key}`, stack);
      if (p) return p;
    }
    return undefined;
  } finally {
    stack.pop();
  }
}

/**
 * Where two values differ as JSON values (undefined when they do not): -0
 * equals 0 (JSON writes both as `0`) and an undefined property equals an
 * absent one. Own code rather than toEqual, which compares `constructor`
 * properties as types.
 */
function jsonDiff(a: unknown, b: unknown, path = "$"): string | undefined {
  if (typeof a === "number" && typeof b === "number") return a === b ? undefined : `${path}: ${a} != ${b}`;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null)
    return a === b ? undefined : `${path}: ${String(a).slice(0, 80)} != ${String(b).slice(0, 80)}`;
  if (Array.isArray(a) !== Array.isArray(b)) return `${path}: array and non-array`;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${path}: length ${a.length} != ${b.length}`;
    for (let i = 0; i < a.length; i++) {
      const d = jsonDiff(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return `${path}: keys ${JSON.stringify(ka)} != ${JSON.stringify(kb)}`;
  for (const k of ka) {
    if (!Object.hasOwn(b, k)) return `${path}: key ${JSON.stringify(k)} missing`;
    const d = jsonDiff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
    if (d) return d;
  }
  return undefined;
}

/** The first few characters of a problem list, for a readable failure. */
const brief = (problems: string[]) => problems.slice(0, 5).map((p) => p.slice(0, 300));

/** Normalizes and serializes a batch the way tail() does (one serializer per batch). */
function pipeline(events: unknown[]) {
  const records = normalizeTraceItems(events, NOW);
  const serializer = new RecordSerializer();
  return { records, items: records.map((r) => serializer.serialize(r)) };
}

// ---------------------------------------------------------------- property 2: records are plain JSON

describe("fuzz: normalize and serialize", () => {
  it(
    "every record is plain JSON, and its serialized line is the same object with the right byte size",
    () => {
      fc.assert(
        fc.property(traceBatch, (events) => {
          const { records, items } = pipeline(events);
          // Every TraceItem slot gives at least its invocation record.
          expect(records.length).toBeGreaterThanOrEqual(events.length);
          const ids = new Set<string>();
          for (const [i, item] of items.entries()) {
            const r = records[i] as LogRecord;
            expect(item.record).toBe(r);
            expect(notJson(r)).toBeUndefined();
            const viaJson = JSON.parse(JSON.stringify(r));
            expect(jsonDiff(viaJson, r)).toBeUndefined();
            // The spliced line (context cached per invocation) is the record, field for field.
            expect(jsonDiff(JSON.parse(item.line), viaJson)).toBeUndefined();
            expect(item.line).not.toContain("\n");
            expect(item.bytes).toBe(new TextEncoder().encode(item.line).byteLength);
            expect(utf8Length(item.line)).toBe(item.bytes);
            expect(ids.has(r.id)).toBe(false);
            ids.add(r.id);
            expect(typeof r.message).toBe("string");
            expect(Number.isFinite(r.timestamp)).toBe(true);
          }
        }),
        params(500),
      );
    },
    TIMEOUT,
  );
});

// ---------------------------------------------------------------- property 3: wire formats

const SENTRY_DSN = "https://pubkey123@sentry.example.com/42";

/** One sink of every type that has a wire validator (and the http sink in both formats), with valid options. */
const ENCODER_SINKS = [
  { name: "http-json", type: "http", url: "https://logs.example.com/ingest" },
  { name: "http-ndjson", type: "http", url: "https://logs.example.com/ingest", format: "ndjson" },
  { name: "analytics_engine", type: "analytics_engine", binding: "LOGS_AE" },
  { name: "datadog", type: "datadog", apiKey: "k", ddtags: ["env:fuzz"], hostname: "h" },
  { name: "loki", type: "loki", endpoint: "https://loki.example.com", apiKey: "k" },
  { name: "splunk", type: "splunk", endpoint: "https://hec.example.com", token: "t" },
  { name: "elasticsearch", type: "elasticsearch", endpoint: "https://es.example.com" },
  { name: "elasticsearch-ds", type: "elasticsearch", endpoint: "https://es.example.com", dataStream: true },
  { name: "otlp", type: "otlp", endpoint: "https://otlp.example.com" },
  { name: "newrelic", type: "newrelic", apiKey: "k" },
  { name: "axiom", type: "axiom", dataset: "logs", token: "t" },
  { name: "betterstack", type: "betterstack", host: "s1.betterstackdata.com", token: "t" },
  { name: "honeycomb", type: "honeycomb", dataset: "d", apiKey: "k" },
  { name: "sentry", type: "sentry", dsn: SENTRY_DSN },
  { name: "slack", type: "slack", webhook: "https://hooks.slack.com/services/T/B/x", minLevel: "debug" },
  { name: "discord", type: "discord", webhook: "https://discord.com/api/webhooks/1/x", minLevel: "debug" },
];

type Bodies = { bodies: { body: string }[] };

/** The wire problems of one encoded payload, by sink name. */
const CHECKS: Record<string, (payload: unknown, lines: unknown[]) => string[]> = {
  "http-json": (p, lines) => {
    const got = JSON.parse((p as { body: string }).body);
    return JSON.stringify(got) === JSON.stringify(lines) ? [] : ["the JSON array is not the batch's records"];
  },
  "http-ndjson": (p, lines) => {
    const body = (p as { body: string }).body;
    if (!body.endsWith("\n")) return ["NDJSON without a trailing newline"];
    const got = body
      .slice(0, -1)
      .split("\n")
      .map((l) => JSON.parse(l));
    return JSON.stringify(got) === JSON.stringify(lines) ? [] : ["the NDJSON lines are not the batch's records"];
  },
  analytics_engine: (p) => validateAnalyticsEngine(JSON.stringify(p)),
  datadog: (p) => (p as Bodies).bodies.flatMap((b) => validateDatadog(b.body)),
  loki: (p) => validateLoki((p as { body: string }).body),
  splunk: (p) => (p as Bodies).bodies.flatMap((b) => validateSplunk(b.body)),
  elasticsearch: (p) => validateElasticsearch((p as { body: string }).body),
  "elasticsearch-ds": (p) => validateElasticsearch((p as { body: string }).body, undefined, { dataStream: true }),
  otlp: (p) => validateOtlp((p as { body: string }).body),
  newrelic: (p) => (p as Bodies).bodies.flatMap((b) => validateNewRelic(b.body)),
  axiom: (p) => validateAxiom((p as { body: string }).body),
  betterstack: (p) => validateBetterStack((p as { body: string }).body),
  honeycomb: (p) => validateHoneycomb((p as { body: string }).body),
  sentry: (p) =>
    (p as SentryPayload).envelopes.flatMap((e) =>
      validateSentry(envelopeBody(e, SENTRY_DSN, new Date(NOW).toISOString())),
    ),
  slack: (p) => {
    const body = (p as { body: string | null }).body;
    return body === null ? [] : validateSlack(body, undefined, SLACK_TEXT_LIMIT);
  },
  discord: (p) => {
    const body = (p as { body: string | null }).body;
    return body === null ? [] : validateDiscord(body);
  },
};

describe("fuzz: every encoder's output passes its wire-format validator", () => {
  const encoderEnv: Record<string, unknown> = {
    ...(workerEnv as unknown as Record<string, unknown>),
    SINKS: JSON.stringify(ENCODER_SINKS),
  };
  delete encoderEnv.ROUTES;
  delete encoderEnv.DELIVERY;
  let config: ResolvedConfig;

  beforeAll(() => {
    const loaded = loadConfig(encoderEnv);
    if (!loaded.ok) throw new Error(`fuzz sinks config is invalid: ${JSON.stringify(loaded.errors)}`);
    config = loaded.config;
    // Every sink the config knows has a check here, and the other way round.
    expect(config.sinks.map((s) => s.name).sort()).toEqual(Object.keys(CHECKS).sort());
  });

  it(
    "route, split by each sink's limits, encode, validate",
    () => {
      fc.assert(
        fc.property(traceBatch, (events) => {
          const records = normalizeTraceItems(events, NOW);
          const targets = planDelivery(records, config, encoderEnv);
          for (const target of targets) {
            const check = CHECKS[target.name] as (typeof CHECKS)[string];
            const { batches, oversized } = splitBatches(target.items, target.batch);
            expect(batches.reduce((n, b) => n + b.length, 0) + oversized.length).toBe(target.items.length);
            for (const batch of batches) {
              expect(batch.length).toBeLessThanOrEqual(target.batch.maxRecords);
              const payload = target.sink.encode(batch);
              // Pure and deterministic: the same batch gives the same payload.
              expect(JSON.stringify(target.sink.encode(batch))).toBe(JSON.stringify(payload));
              const problems = check(
                payload,
                batch.map((i) => JSON.parse(i.line)),
              );
              expect(brief(problems), `${target.name} wire problems`).toEqual([]);
            }
          }
        }),
        params(300),
      );
    },
    TIMEOUT,
  );
});

// ---------------------------------------------------------------- property 1: tail() end to end

describe("fuzz: handleTail", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it(
    "never throws, resolves, and delivers every record to local R2 and the HTTP receiver",
    async () => {
      const bindings = workerEnv as unknown as Record<string, unknown>;
      const env: Record<string, unknown> = {
        LOGS_R2: bindings.LOGS_R2,
        SINKS: JSON.stringify([
          { name: "archive", type: "r2", binding: "LOGS_R2", prefix: "fuzz" },
          { name: "collector", type: "http", url: `${inject("receiverUrl")}/ok/fuzz`, format: "ndjson" },
        ]),
        DELIVERY: JSON.stringify({ attempts: 2, timeoutMs: 10_000, backoffMs: 10 }),
      };
      const errors = vi.spyOn(console, "error");
      await fc.assert(
        fc.asyncProperty(smallTraceBatch, async (events) => {
          errors.mockClear();
          const waited: Promise<unknown>[] = [];
          const ctx = { waitUntil: (p: Promise<unknown>) => void waited.push(p) };
          let returned: Promise<unknown> | undefined;
          expect(() => {
            returned = handleTail(events, env, ctx);
          }).not.toThrow();
          const reports = (await returned) as Awaited<ReturnType<typeof handleTail>>;
          await Promise.all(waited);
          // Nothing swallowed: no internal error was logged.
          expect(errors.mock.calls.map((c) => String(c[0]).slice(0, 200))).toEqual([]);
          const own = events.filter((e) => {
            try {
              return (e as { scriptName?: unknown } | null)?.scriptName !== "tailfan";
            } catch {
              return true;
            }
          });
          const expected = normalizeTraceItems(own, NOW).length;
          if (expected === 0) return;
          expect(reports.map((r) => r.sink).sort()).toEqual(["archive", "collector"]);
          for (const r of reports) {
            expect({
              sink: r.sink,
              records: r.records,
              delivered: r.delivered,
              failed: r.failed,
              errors: r.errors,
            }).toEqual({ sink: r.sink, records: expected, delivered: expected, failed: 0, errors: [] });
          }
        }),
        params(20, 0.01),
      );
    },
    TIMEOUT,
  );
});

// ---------------------------------------------------------------- found by the fuzzer

/** Issues this fuzzer found, now fixed: each is kept as an example so it stays fixed. */
describe("fuzz: regressions", () => {
  const encode = (type: string, options: Record<string, unknown>, items: unknown[]) => {
    const loaded = loadConfig({
      ...(workerEnv as unknown as Record<string, unknown>),
      SINKS: JSON.stringify([{ name: "s", type, ...options }]),
      ROUTES: undefined,
      DELIVERY: undefined,
    });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const [target] = planDelivery(normalizeTraceItems(items, NOW), loaded.config, {});
    if (!target) throw new Error("nothing routed");
    return target.sink.encode(target.items);
  };
  const item = (over: Record<string, unknown>) => ({
    event: { request: { url: "https://a.example/", method: "GET" }, response: { status: 200 } },
    eventTimestamp: NOW,
    outcome: "ok",
    scriptName: "shop-api",
    logs: [],
    ...over,
  });

  it("normalize: a log timestamp with no string form does not make normalizeTraceItems throw", () => {
    const bad = item({ logs: [{ level: "log", message: ["x"], timestamp: Object.create(null) }] });
    const records = normalizeTraceItems([bad], NOW);
    expect(records).toHaveLength(2);
    expect(records[1]?.timestamp).toBe(NOW);
  });

  it("normalize: an unknown TraceItem field named __proto__ is kept as a field", () => {
    const bad = { ...item({}), ...JSON.parse('{"__proto__": {"kept": true}}') };
    const [inv] = normalizeTraceItems([bad], NOW);
    const extra = (inv as { extra?: object }).extra;
    expect(Object.getPrototypeOf(extra)).toBe(Object.prototype);
    expect(JSON.stringify(extra)).toBe('{"__proto__":{"kept":true}}');
  });

  it("normalize: a sparse consumedEvents gives a dense tailScripts", () => {
    const consumed: unknown[] = [];
    consumed[1] = { scriptName: "a" };
    const tailScripts = normalizeTraceItems([item({ event: { consumedEvents: consumed } })], NOW)[0]?.tailScripts ?? [];
    expect(tailScripts).toEqual([null, "a"]);
    expect(0 in tailScripts).toBe(true);
  });

  it("otlp: an empty object key in console arguments becomes a visible, non-empty attribute key", () => {
    const payload = encode("otlp", { endpoint: "https://otlp.example.com" }, [
      item({ logs: [{ level: "log", message: ["x", { "": 1 }], timestamp: NOW }] }),
    ]) as { body: string };
    expect(validateOtlp(payload.body)).toEqual([]);
    expect(payload.body).toContain('"key":"(empty)"');
  });

  it("times outside September 2001 to April 2262 are replaced by the invocation's time, so every wire time is in range", () => {
    const late = item({ logs: [{ level: "error", message: ["late"], timestamp: 1e13 }] });
    expect(normalizeTraceItems([late], NOW)[1]?.timestamp).toBe(NOW);
    const loki = encode("loki", { endpoint: "https://loki.example.com" }, [late]) as { body: string };
    expect(validateLoki(loki.body)).toEqual([]);
    const epoch = item({ outcome: "exception", exceptions: [{ name: "Error", message: "x", timestamp: 0 }] });
    expect(normalizeTraceItems([epoch], NOW)[1]?.timestamp).toBe(NOW);
    const sentry = encode("sentry", { dsn: SENTRY_DSN }, [epoch]) as SentryPayload;
    const envelope = sentry.envelopes[0];
    if (!envelope) throw new Error("no envelope");
    expect(validateSentry(envelopeBody(envelope, SENTRY_DSN, new Date(NOW).toISOString()))).toEqual([]);
  });

  it("newrelic: a field whose flattened names would pass 255 characters is sent as a JSON string", () => {
    const k = "k".repeat(40);
    const deep = { [k]: { [k]: { [k]: { [k]: { [k]: { [k]: { [k]: 1 } } } } } } };
    const payload = encode("newrelic", { apiKey: "k" }, [
      item({ event: { request: { url: "https://a.example/", method: "GET", cf: deep }, response: { status: 200 } } }),
    ]) as { bodies: { body: string }[] };
    expect(payload.bodies.flatMap((b) => validateNewRelic(b.body))).toEqual([]);
    const log = JSON.parse(payload.bodies[0]?.body ?? "[]")[0].logs[0];
    expect(typeof log.attributes.event).toBe("string");
    expect(JSON.parse(log.attributes.event).request.cf).toEqual(deep);
    expect(log.attributes.url).toBe("https://a.example/");
  });
});
