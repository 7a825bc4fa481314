/** Per-sink shaping: the rules at config load, what a shape does to records, and how it meets limits, sharing and retries. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import configurationDoc from "../../docs/configuration.md?raw";
import { SINK_TYPES } from "../../sinks";
import { buildConfig, formatConfigErrors, summarizeConfig } from "../../src/config";
import { normalizeTraceItems } from "../../src/normalize";
import { planDelivery, prepareRecords } from "../../src/pipeline";
import type { LogRecord } from "../../src/record";
import { compileShape, queuedLine } from "../../src/shape";
import { StatsBatch } from "../../src/stats";
import captured from "../fixtures/trace-items.json";

const vars = env as unknown as Record<string, unknown>;
const URL_A = "https://logs.example.com/a";

function build(sinks: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  return buildConfig({ ...vars, SINKS: JSON.stringify(sinks), ...extra });
}

function configWith(sinks: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  const built = build(sinks, extra);
  if (!built.ok) throw new Error(formatConfigErrors(built.errors));
  return built.config;
}

function errorsOf(
  shape: Record<string, unknown>,
  type: Record<string, unknown> = { type: "http", url: URL_A },
): string {
  const built = build([{ name: "s", ...type, ...shape }]);
  return built.ok ? "" : formatConfigErrors(built.errors);
}

const fetchRecords = () => normalizeTraceItems([captured["fetch-ok"]]);
const parsed = (line: string) => JSON.parse(line) as Record<string, unknown>;

describe("shaping options at config load", () => {
  it("refuses each mistake with the path of it", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ fields: ["message"], exclude: ["event"] }, "SINKS[0].exclude: cannot be used with fields"],
      [{ fields: [] }, "SINKS[0].fields: expected a non-empty list of dotted paths"],
      [{ fields: "message" }, "SINKS[0].fields: expected a non-empty list of dotted paths"],
      [{ exclude: ["event", ""] }, "SINKS[0].exclude[1]: is empty"],
      [{ exclude: ["event..request"] }, 'SINKS[0].exclude[0]: "event..request" has an empty segment'],
      [{ exclude: [".event"] }, 'SINKS[0].exclude[0]: ".event" has an empty segment'],
      [{ exclude: ["message", "message"] }, 'SINKS[0].exclude[1]: "message" is listed twice (also exclude[0])'],
      [{ exclude: [3] }, "SINKS[0].exclude[0]: expected a dotted path (a string), got a number"],
      [{ exclude: ["limited"] }, 'SINKS[0].exclude[0]: "limited" is one of the size limits\' marks'],
      [{ exclude: ["a.__proto__"] }, 'SINKS[0].exclude[0]: "a.__proto__" names __proto__'],
      [
        { rename: { url: "message" } },
        'SINKS[0].rename["url"]: "message" would overwrite "message", which the record keeps',
      ],
      [
        { fields: ["url", "status"], rename: { url: "status" } },
        'SINKS[0].rename["url"]: "status" would overwrite "status", which the record keeps',
      ],
      [
        { fields: ["event.request"], rename: { url: "event.request.url" } },
        'SINKS[0].rename["url"]: "event.request.url" would overwrite "event.request"',
      ],
      [{ rename: { url: "" } }, 'SINKS[0].rename["url"]: the new name is empty'],
      [{ rename: { "": "x" } }, 'SINKS[0].rename[""]: the source is empty'],
      [
        { rename: { url: 7 } },
        'SINKS[0].rename["url"]: expected the new name as a dotted path (a string), got a number',
      ],
      [{ rename: { event: "event.old" } }, 'SINKS[0].rename["event"]: "event" cannot be renamed to "event.old"'],
      [
        { exclude: ["event"], rename: { "event.request.url": "u" } },
        'SINKS[0].rename["event.request.url"]: "event.request.url" is removed by exclude ("event")',
      ],
      [
        { rename: { url: "u", method: "u" } },
        'SINKS[0].rename["method"]: "u" clashes with the target of rename["url"] ("u")',
      ],
      [{ rename: {} }, "SINKS[0].rename: expected a non-empty table"],
      [{ add: { level: "x" } }, 'SINKS[0].add["level"]: would overwrite "level", which the record keeps'],
      [
        { add: { limitedFields: "x" } },
        'SINKS[0].add["limitedFields"]: "limitedFields" is one of the size limits\' marks',
      ],
      [{ add: { env: null } }, 'SINKS[0].add["env"]: expected a string, number or boolean, got null'],
      [{ add: { env: { a: 1 } } }, 'SINKS[0].add["env"]: expected a string, number or boolean, got an object'],
      [
        { add: { token: "${API_KEY}" } },
        'SINKS[0].add["token"]: is written as it is: secrets are never read into records',
      ],
      [{ rename: { url: "u" }, add: { u: "x" } }, 'SINKS[0].add["u"]: clashes with the rename target "u"'],
      [{ add: { labels: "x", "labels.env": "y" } }, 'SINKS[0].add["labels.env"]: clashes with add["labels"]'],
      [{ fields: ["message"], add: { message: "x" } }, 'SINKS[0].add["message"]: would overwrite "message"'],
    ];
    for (const [shape, want] of cases) expect(errorsOf(shape), JSON.stringify(shape)).toContain(want);
  });

  it("accepts what frees the name first: excluding or renaming the field a rename or add lands on", () => {
    expect(errorsOf({ exclude: ["message"], rename: { url: "message" } })).toBe("");
    expect(errorsOf({ rename: { level: "severity" }, add: { level: "x" } })).toBe("");
    expect(errorsOf({ fields: ["url"], rename: { url: "message" } })).toBe("");
    expect(errorsOf({ add: { env: "prod", "labels.team": "shop", sampled: true, weight: 2 } })).toBe("");
  });

  it("refuses shaping on a sink that does not write the record's JSON, and on format = logpush", () => {
    expect(errorsOf({ exclude: ["event"] }, { type: "otlp", endpoint: "https://otlp.example.com" })).toContain(
      "SINKS[0].exclude: the otlp sink builds its payload from the record's fields",
    );
    expect(errorsOf({ add: { env: "prod" } }, { type: "r2", binding: "LOGS_R2", format: "logpush" })).toContain(
      'SINKS[0].add: format = "logpush" writes the dataset\'s own fields',
    );
    expect(errorsOf({ add: { env: "prod" } }, { type: "r2", binding: "LOGS_R2" })).toBe("");
  });

  it("docs/configuration.md lists the sink types that take shaping, and those that refuse it", () => {
    const section = configurationDoc.slice(configurationDoc.indexOf("Shaping applies to the sinks"));
    const paragraph = section.slice(0, section.indexOf("\n\n"));
    const [takes, refuses] = paragraph.split("The others") as [string, string];
    // Sink types as the paragraph names them (the other code spans are the part of a payload each writes to).
    const named = (text: string) =>
      [...text.matchAll(/`([a-z0-9_]+)`/g)]
        .map((m) => m[1] as string)
        .filter((name) => Object.hasOwn(SINK_TYPES, name))
        .sort();
    const writes = Object.values(SINK_TYPES).filter((d) => d.writesLine !== undefined);
    expect(named(takes)).toEqual(writes.map((d) => d.type).sort());
    expect(named(refuses.slice(0, refuses.indexOf("as does")))).toEqual(
      Object.values(SINK_TYPES)
        .filter((d) => d.writesLine === undefined)
        .map((d) => d.type)
        .sort(),
    );
  });

  it("shows each sink's shape in the config summary", () => {
    const config = configWith([
      { name: "a", type: "http", url: URL_A, exclude: ["event.request.headers"], add: { env: "prod" } },
      { name: "b", type: "http", url: URL_A },
    ]);
    const [a, b] = summarizeConfig(config).sinks;
    expect(a?.shape).toEqual({ exclude: ["event.request.headers"], add: { env: "prod" } });
    expect(a?.options).not.toHaveProperty("exclude");
    expect(b).not.toHaveProperty("shape");
  });
});

describe("what a shape does to a record", () => {
  const [invocation, log] = fetchRecords() as [LogRecord, LogRecord];

  it("fields keeps only the listed paths, nested ones as objects, in the order listed", () => {
    const out = compileShape({ fields: ["url", "event.request.method", "nope", "event.request.cf.colo"] }).apply(
      invocation,
    );
    expect(out).toEqual({ url: invocation.url, event: { request: { method: "GET", cf: { colo: "DFW" } } } });
    expect(Object.keys(out)).toEqual(["url", "event"]);
  });

  it("exclude drops the paths and leaves the record itself untouched", () => {
    const before = JSON.stringify(invocation);
    const out = compileShape({ exclude: ["event.request.headers", "cpuTime"] }).apply(invocation) as unknown as Record<
      string,
      unknown
    >;
    expect(JSON.stringify(invocation)).toBe(before);
    expect(out.cpuTime).toBeUndefined();
    const request = (out.event as { request: Record<string, unknown> }).request;
    expect(request).not.toHaveProperty("headers");
    expect(request).toMatchObject({ url: invocation.url, method: "GET" });
    expect(out.message).toBe(invocation.message);
  });

  it("gives the record itself when nothing applies to it (a log record has no event)", () => {
    expect(compileShape({ exclude: ["event.request.headers"] }).apply(log)).toBe(log);
  });

  it("rename moves a value, nested or not, and add sets static fields last", () => {
    const shape = compileShape({
      rename: { "event.request.method": "http.verb", level: "severity" },
      add: { env: "prod", "labels.team": "shop" },
    });
    const out = shape.apply(invocation) as unknown as Record<string, unknown>;
    expect(out.http).toEqual({ verb: "GET" });
    expect((out.event as { request: Record<string, unknown> }).request.method).toBeUndefined();
    expect(out.severity).toBe(invocation.level);
    expect(out.level).toBeUndefined();
    expect(out.env).toBe("prod");
    expect(out.labels).toEqual({ team: "shop" });
    expect(((invocation as { event?: unknown }).event as { request: { method: string } }).request.method).toBe("GET");
  });

  it("fields keeps the rename sources and the limits' marks", () => {
    const cut = { ...log, limited: true, limitedFields: ["message"] } as LogRecord;
    const out = compileShape({ fields: ["message"], rename: { level: "severity" } }).apply(cut);
    expect(out).toEqual({ message: log.message, severity: log.level, limited: true, limitedFields: ["message"] });
  });
});

describe("shaping in the pipeline", () => {
  it("sinks with the same shape share one shaped line; unshaped sinks keep sharing theirs", () => {
    const shape = { exclude: ["event.request.headers"], add: { env: "prod" } };
    const config = configWith([
      { name: "a", type: "http", url: URL_A, ...shape },
      { name: "b", type: "loki", endpoint: "https://loki.example.com", ...shape },
      { name: "c", type: "http", url: URL_A },
      { name: "d", type: "r2", binding: "LOGS_R2" },
    ]);
    const records = fetchRecords();
    const [a, b, c, d] = planDelivery(records, config, vars);
    a?.items.forEach((item, i) => {
      expect(b?.items[i]).toBe(item);
      expect(c?.items[i]).toBe(d?.items[i]);
      expect(item).not.toBe(c?.items[i]);
      expect(parsed(item.line).env).toBe("prod");
      // The record sinks read for keys and times is the one before shaping.
      expect(item.record).toBe(records[i]);
    });
    const invocationLine = parsed(a?.items[0]?.line ?? "{}");
    expect((invocationLine.event as { request: Record<string, unknown> }).request).not.toHaveProperty("headers");
    expect((parsed(c?.items[0]?.line ?? "{}").event as { request: Record<string, unknown> }).request).toHaveProperty(
      "headers",
    );
  });

  it("a shape that changes nothing in a record leaves it the shared line of the unshaped sinks", () => {
    const config = configWith([
      { name: "whole", type: "http", url: URL_A },
      { name: "headless", type: "http", url: URL_A, exclude: ["event.request.headers"] },
    ]);
    const records = fetchRecords();
    const [whole, headless] = planDelivery(records, config, vars);
    records.forEach((record, i) => {
      if (record.type === "invocation") expect(headless?.items[i]).not.toBe(whole?.items[i]);
      else expect(headless?.items[i]).toBe(whole?.items[i]);
    });
  });

  it("a record the shape only adds to is written as its own line with the fields spliced in", () => {
    const config = configWith([
      { name: "a", type: "http", url: URL_A, exclude: ["event.request.headers"], add: { env: "prod", n: 2 } },
      { name: "b", type: "http", url: URL_A, exclude: ["event.request.headers"], add: { "labels.env": "prod" } },
    ]);
    const records = fetchRecords();
    const [a, b] = planDelivery(records, config, vars);
    records.forEach((record, i) => {
      const want = { ...(compileShape({ exclude: ["event.request.headers"] }).apply(record) as object) };
      expect(parsed(a?.items[i]?.line ?? "{}")).toEqual({ ...want, env: "prod", n: 2 });
      expect(parsed(b?.items[i]?.line ?? "{}")).toEqual({ ...want, labels: { env: "prod" } });
      expect(a?.items[i]?.bytes).toBe(new TextEncoder().encode(a?.items[i]?.line).byteLength);
    });
  });

  it("the size limits measure the shaped record: a record shaped small is not cut for what it lost", () => {
    const config = configWith(
      [
        { name: "whole", type: "http", url: URL_A },
        { name: "small", type: "http", url: URL_A, exclude: ["args", "message"], add: { note: "args dropped" } },
      ],
      { LIMITS: JSON.stringify({ maxRecordBytes: 4096 }) },
    );
    const item = {
      ...captured["fetch-ok"],
      logs: [{ message: [{ blob: "x".repeat(20_000) }], level: "log", timestamp: 1_795_248_103_711 }],
    };
    const records = normalizeTraceItems([item]);
    const stats = new StatsBatch();
    const [whole, small] = planDelivery(records, config, vars, stats);
    const log = (t: typeof whole) => t?.items.find((x) => x.record.type === "log");
    expect(parsed(log(whole)?.line ?? "{}").limited).toBe(true);
    const shaped = parsed(log(small)?.line ?? "{}");
    expect(shaped.limited).toBeUndefined();
    expect(shaped.note).toBe("args dropped");
    expect(shaped).not.toHaveProperty("args");
    const counts = Object.fromEntries(stats.list().map((s) => [s.sink, s.counts]));
    expect(counts.whole?.truncated).toBe(1);
    expect(counts.small?.truncated ?? 0).toBe(0);
  });

  it("a record still too large after shaping is cut from its shaped form and counted truncated", () => {
    const config = configWith([{ name: "s", type: "http", url: URL_A, exclude: ["event"], add: { env: "prod" } }], {
      LIMITS: JSON.stringify({ maxRecordBytes: 4096 }),
    });
    const item = { ...captured["fetch-ok"], logs: [{ message: ["y".repeat(20_000)], level: "log", timestamp: 1 }] };
    const stats = new StatsBatch();
    const [s] = planDelivery(normalizeTraceItems([item]), config, vars, stats);
    const log = s?.items.find((x) => x.record.type === "log");
    const line = parsed(log?.line ?? "{}");
    expect(line.limited).toBe(true);
    expect(line.env).toBe("prod");
    expect(log?.bytes).toBeLessThanOrEqual(4096);
    expect(stats.list().find((x) => x.sink === "s")?.counts.truncated).toBe(1);
  });

  it("a retry message carries the record before shaping, and the consumer's target shapes it again", async () => {
    const config = configWith([
      { name: "s", type: "http", url: URL_A, fields: ["message", "level"], add: { env: "prod" } },
    ]);
    const { records } = await prepareRecords(fetchRecords(), config);
    const [s] = planDelivery(records, config, vars);
    const item = s?.items[1];
    const queued = item ? queuedLine(item) : undefined;
    expect(parsed(queued?.line ?? "{}").id).toBe(records[1]?.id);
    expect(parsed(queued?.line ?? "{}")).not.toHaveProperty("env");
    const { targetFor } = await import("../../src/pipeline/plan");
    const again = targetFor(config, vars, "s", [queued as NonNullable<typeof queued>]);
    expect(parsed(again?.items[0]?.line ?? "{}")).toEqual({
      message: records[1]?.message,
      level: records[1]?.level,
      env: "prod",
    });
  });

  it("the buffered queue gets one unshaped line per record, whatever the sinks' shapes", () => {
    const config = configWith([
      { name: "a", type: "http", url: URL_A, add: { env: "prod" } },
      { name: "b", type: "http", url: URL_A, add: { env: "dev" } },
    ]);
    const records = fetchRecords();
    const [a, b] = planDelivery(records, config, vars, undefined, undefined, false);
    a?.items.forEach((item, i) => {
      expect(b?.items[i]).toBe(item);
      expect(parsed(item.line)).not.toHaveProperty("env");
    });
  });
});

describe("what sinks read besides the line", () => {
  it("keys, times and labels come from the record before shaping: an R2 key, Datadog's status and http", () => {
    const config = configWith([
      { name: "r2", type: "r2", binding: "LOGS_R2", fields: ["message"] },
      { name: "dd", type: "datadog", apiKey: "k".repeat(32), exclude: ["url", "level"], add: { env: "prod" } },
    ]);
    const records = fetchRecords();
    const [r2, dd] = planDelivery(records, config, vars);
    const object = r2?.sink.encode(r2.items) as { key: string; body: string };
    expect(object.key).toContain(`_${records[0]?.id}.ndjson.gz`);
    expect(object.key).toMatch(/^logs\/2026\/11\/21\/08\//);
    expect(
      object.body
        .split("\n")
        .filter(Boolean)
        .map((l) => Object.keys(parsed(l))),
    ).toEqual(records.map(() => ["message"]));
    const payload = dd?.sink.encode(dd.items) as { bodies: { body: string }[] };
    const entries = JSON.parse(payload.bodies[0]?.body ?? "[]") as {
      status: string;
      http?: { url: string };
      worker: Record<string, unknown>;
    }[];
    expect(entries[0]?.worker).not.toHaveProperty("url");
    expect(entries[0]?.worker).not.toHaveProperty("level");
    expect(entries[0]?.worker.env).toBe("prod");
    // Datadog's own attributes are copied from the record before shaping.
    expect(entries[0]?.status).toBe("info");
    expect(entries[0]?.http?.url).toBe(records[0]?.url);
  });
});
