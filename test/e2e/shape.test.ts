/**
 * Shaping and the Logpush format end to end: a producer Worker runs in
 * workerd, the runtime hands its TraceItems to tailfan, and tailfan sends
 * shaped records to Loki and an HTTP backend (the receiver), and
 * Logpush-shaped lines to an HTTP backend and to R2, next to an unshaped sink.
 */
import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOGPUSH_FIELDS } from "../../sinks/logpush";
import type { LogRecord } from "../../src/record";
import { validateLoki } from "../sinks/wire/loki";
import { type Receiver, startReceiver } from "../support/receiver";
import { type Bundle, bundleTailfan, readNdjsonObjects, until } from "./helpers";

let mf: Miniflare;
let receiver: Receiver;
let bundle: Bundle;

const sinks = (base: string) => [
  { name: "whole", type: "http", url: `${base}/ok/whole`, format: "ndjson" },
  {
    name: "loki",
    type: "loki",
    endpoint: `${base}/ok/loki`,
    exclude: ["event.request.headers", "event.request.cf"],
    add: { env: "prod" },
    gzip: false,
  },
  {
    name: "slim",
    type: "http",
    url: `${base}/ok/slim`,
    format: "ndjson",
    fields: ["message", "level", "url", "status"],
    rename: { url: "http.url" },
    add: { env: "prod" },
  },
  { name: "logpush", type: "http", url: `${base}/ok/logpush`, format: "logpush" },
  { name: "archive", type: "r2", binding: "LOGS_R2", prefix: "logpush", format: "logpush" },
];

beforeAll(async () => {
  receiver = await startReceiver();
  bundle = await bundleTailfan();
  mf = new Miniflare(
    convertV4MiniflareOptions({
      workers: [
        {
          name: "producer",
          modules: true,
          scriptPath: join(import.meta.dirname, "producer.js"),
          compatibilityDate: "2025-11-01",
          tails: ["tailfan"],
          durableObjects: { CLOCK: "Clock" },
          serviceBindings: { GREETER: { name: "producer", entrypoint: "Greeter" } },
          queueProducers: { JOBS: "jobs" },
        },
        {
          name: "tailfan",
          modules: true,
          scriptPath: bundle.script,
          modulesRoot: bundle.dir,
          compatibilityDate: "2025-11-01",
          bindings: { SINKS: JSON.stringify(sinks(receiver.url)) },
          r2Buckets: ["LOGS_R2"],
        },
      ],
    }),
  );
  await mf.ready;
});

afterAll(async () => {
  await mf?.dispose();
  await receiver?.close();
  bundle?.remove();
});

async function hit(path: string) {
  const res = await mf.dispatchFetch(`http://localhost${path}`, { headers: { "x-trace-me": "header-value-1" } });
  await res.arrayBuffer();
}

const at = (label: string) => receiver.received.filter((r) => r.label === label);
const lines = (label: string) =>
  at(label).flatMap((r) =>
    r.body
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>),
  );

describe("producer → workerd → tailfan: shaped sinks and format = logpush", () => {
  // Records per invocation: /ok (invocation + log), /throw (invocation + log + exception), /500 (invocation + error log).
  const expected = 2 + 3 + 2;
  let whole: LogRecord[] = [];

  beforeAll(async () => {
    await hit("/ok?n=1");
    await hit("/throw?n=2");
    await hit("/500");
    whole = (await until(
      "every record at the unshaped sink",
      () => lines("whole"),
      (ls) => ls.length >= expected,
    )) as unknown as LogRecord[];
    await until(
      "three logpush lines",
      () => lines("logpush"),
      (ls) => ls.length >= 3,
    );
    await until(
      "the shaped sinks",
      () => [lines("loki"), lines("slim")],
      (got) => (got[0]?.length ?? 0) > 0 && (got[1]?.length ?? 0) >= expected,
    );
  });

  it("the unshaped sink gets whole records, request headers included", () => {
    expect(whole).toHaveLength(expected);
    const invocation = whole.find((r) => r.type === "invocation") as unknown as {
      event: { request: { headers: Record<string, string> } };
    };
    expect(invocation.event.request.headers["x-trace-me"]).toBe("header-value-1");
  });

  it("Loki gets every record without the request headers, with env = prod, in Loki's wire format", () => {
    const pushes = at("loki");
    const values: Record<string, unknown>[] = [];
    for (const p of pushes) {
      expect(validateLoki(p.body, p.headers)).toEqual([]);
      const body = JSON.parse(p.body) as { streams: { values: [string, string][] }[] };
      for (const s of body.streams)
        for (const [, line] of s.values) values.push(JSON.parse(line) as Record<string, unknown>);
    }
    expect(values.map((v) => v.id).sort()).toEqual(whole.map((r) => r.id).sort());
    for (const v of values) {
      expect(v.env).toBe("prod");
      const request = (v.event as { request?: Record<string, unknown> } | undefined)?.request;
      if (v.type === "invocation") {
        expect(request?.url).toBeDefined();
        expect(request).not.toHaveProperty("headers");
        expect(request).not.toHaveProperty("cf");
      }
    }
    expect(JSON.stringify(values)).not.toContain("header-value-1");
  });

  it("a fields sink gets only its fields, renamed and added, and fewer bytes", () => {
    const slim = lines("slim");
    expect(slim).toHaveLength(expected);
    for (const line of slim) {
      for (const key of Object.keys(line)) expect(["message", "level", "http", "status", "env"]).toContain(key);
      expect(line.env).toBe("prod");
      expect((line.http as { url: string }).url).toMatch(/^http:\/\/localhost\//);
    }
    const bytes = (label: string) => at(label).reduce((n, r) => n + r.body.length, 0);
    expect(bytes("slim") * 3).toBeLessThan(bytes("whole"));
  });

  it("format = logpush over HTTP: one line per invocation with exactly the dataset's fields", () => {
    const logpush = lines("logpush");
    expect(logpush).toHaveLength(3);
    for (const line of logpush) expect(Object.keys(line).sort()).toEqual([...LOGPUSH_FIELDS].sort());
    const thrown = logpush.find((l) => l.Outcome === "exception");
    expect(thrown).toMatchObject({
      EventType: "fetch",
      Event: { Request: { Method: "GET" } },
      Exceptions: [{ Name: "Error", Message: "checkout failed for 2" }],
      Logs: [{ Level: "log", Message: ["about to fail"] }],
    });
    const failed = logpush.find((l) => (l.Event as { Response?: { Status: number } }).Response?.Status === 500);
    expect((failed?.Logs as { Level: string }[] | undefined)?.[0]?.Level).toBe("error");
    const invocationIds = new Set(whole.map((r) => r.invocationId));
    expect(invocationIds.size).toBe(3);
  });

  it("format = logpush into R2: a Logpush-compatible archive, one line per invocation", async () => {
    const bucket = await mf.getR2Bucket("LOGS_R2", "tailfan");
    const archived = await until(
      "three archived lines",
      () => readNdjsonObjects<Record<string, unknown>>(bucket, "logpush/"),
      (ls) => ls.length >= 3,
    );
    expect(archived).toHaveLength(3);
    for (const line of archived) expect(Object.keys(line).sort()).toEqual([...LOGPUSH_FIELDS].sort());
    expect(archived.map((l) => l.Outcome).sort()).toEqual(["exception", "ok", "ok"]);
  });
});
