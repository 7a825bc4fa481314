/**
 * End to end on the real runtime: a producer Worker runs in workerd, the
 * runtime hands its TraceItems to tailfan (Miniflare's `tails`), and tailfan
 * delivers into R2, KV, a Queue and an HTTP backend at once. The test checks,
 * per record id, that each sink got exactly what the routes say.
 */
import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogRecord } from "../../src/record";
import { type Receiver, startReceiver } from "../support/receiver";
import { type Bundle, bundleTailfan, readNdjsonObjects, until } from "./helpers";

let mf: Miniflare;
let receiver: Receiver;
let bundle: Bundle;
const queued: LogRecord[] = [];

/** The routes under test, written out here rather than taken from tailfan's router. */
const SINKS = [
  { name: "archive", type: "r2", binding: "LOGS_R2", prefix: "e2e" },
  { name: "problems", type: "kv", binding: "LOGS_KV", key: "e2e/{script}/{ts}-{id}" },
  { name: "exceptions", type: "queue", binding: "LOGS_QUEUE" },
  {
    name: "hook",
    type: "http",
    url: "",
    format: "ndjson",
    gzip: true,
    headers: { authorization: "Bearer ${HOOK_TOKEN}" },
  },
];
const ROUTES = [
  { sinks: ["exceptions"], types: ["exception"] },
  { sinks: ["problems"], level: "warn" },
  { sinks: ["archive"] },
  { sinks: ["hook"], status: "5xx" },
  { sinks: ["hook"], outcomes: ["exception"] },
];
const expectProblems = (r: LogRecord) => r.level === "warn" || r.level === "error";
const expectExceptions = (r: LogRecord) => r.type === "exception";
const expectHook = (r: LogRecord) => (r.status !== undefined && r.status >= 500) || r.outcome === "exception";

beforeAll(async () => {
  receiver = await startReceiver();
  bundle = await bundleTailfan();
  const sinks = SINKS.map((s) => (s.name === "hook" ? { ...s, url: `${receiver.url}/ok/e2e` } : s));
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
          queueConsumers: { jobs: { maxBatchTimeout: 0.05 } },
        },
        {
          // A raw TCP `connect` handler: its event can only be told apart by the runtime's class.
          name: "tcp-producer",
          modules: true,
          script: `export default { async connect(socket) { console.log("tcp client"); const w = socket.writable.getWriter(); await w.write(new TextEncoder().encode("hi")); await w.close(); } };`,
          compatibilityDate: "2025-11-01",
          tails: ["tailfan"],
          connectHandlers: [{ protocol: "tcp", port: 0 }],
        },
        {
          name: "tailfan",
          modules: true,
          scriptPath: bundle.script,
          modulesRoot: bundle.dir,
          compatibilityDate: "2025-11-01",
          bindings: { SINKS: JSON.stringify(sinks), ROUTES: JSON.stringify(ROUTES), HOOK_TOKEN: "e2e-token" },
          kvNamespaces: ["LOGS_KV"],
          r2Buckets: ["LOGS_R2"],
          queueProducers: { LOGS_QUEUE: "tailfan-exceptions" },
        },
        {
          // Stands for a user's own consumer of the exceptions queue.
          name: "exceptions-reader",
          modules: true,
          script: `export default { async queue(batch, env) { await env.COLLECT.fetch("http://c/", { method: "POST", body: JSON.stringify(batch.messages.map((m) => m.body)) }); batch.ackAll(); } };`,
          compatibilityDate: "2025-11-01",
          queueConsumers: { "tailfan-exceptions": { maxBatchTimeout: 0.05 } },
          serviceBindings: {
            COLLECT: async (req: { text(): Promise<string> }) => {
              queued.push(...(JSON.parse(await req.text()) as LogRecord[]));
              return new Response("ok");
            },
          },
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
  const res = await mf.dispatchFetch(`http://localhost${path}`, {
    headers: { authorization: "Bearer producer-secret" },
  });
  await res.arrayBuffer();
  return res.status;
}

async function archived(): Promise<LogRecord[]> {
  return readNdjsonObjects<LogRecord>(await mf.getR2Bucket("LOGS_R2", "tailfan"), "e2e/");
}

async function inKv(): Promise<{ records: LogRecord[]; keys: { name: string; metadata: unknown }[] }> {
  const kv = await mf.getKVNamespace("LOGS_KV", "tailfan");
  const { keys } = await kv.list({ prefix: "e2e/" });
  const records: LogRecord[] = [];
  for (const k of keys) {
    const value = await kv.get(k.name);
    for (const line of (value ?? "").split("\n")) if (line) records.push(JSON.parse(line) as LogRecord);
  }
  return { records, keys: keys.map((k) => ({ name: k.name, metadata: k.metadata })) };
}

function atHook(): LogRecord[] {
  return receiver.received
    .filter((r) => r.label === "e2e")
    .flatMap((r) =>
      r.body
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as LogRecord),
    );
}

const ids = (rs: LogRecord[]) => rs.map((r) => r.id).sort();

describe("producer → workerd → tailfan → R2, KV, Queue, HTTP", () => {
  // Records each producer invocation must give: invocation + logs + exceptions.
  const traffic: [string, number][] = [
    ["/ok?n=1", 2],
    ["/ok?n=2", 2],
    ["/warn", 2],
    ["/throw?n=7", 3],
    ["/500", 2],
    ["/404", 1],
    ["/rpc", 1], // the caller's fetch invocation; the callee's RPC invocation is counted below
    ["/alarm", 1], // the caller's fetch invocation; the Durable Object's fetch and alarm below
    ["/enqueue?n=5", 1], // the queue consumer's invocation below
  ];
  // rpc callee (invocation + info) + DO fetch (invocation + log) + DO alarm (invocation + warn)
  // + queue consumer (invocation + log) + scheduled (invocation + log) + TCP connect (invocation + log)
  const background = 2 + 2 + 2 + 2 + 2 + 2;
  const expected = traffic.reduce((n, [, c]) => n + c, 0) + background;
  let all: LogRecord[] = [];

  beforeAll(async () => {
    for (const [path] of traffic) await hit(path);
    const producer = await mf.getWorker("producer");
    await producer.scheduled({ cron: "0 3 * * *" });
    const socket = await mf.dispatchConnect({ workerName: "tcp-producer", protocol: "tcp" });
    socket.resume();
    await new Promise((resolve, reject) => socket.on("close", resolve).on("error", reject));
    all = await until("every record in the R2 archive", archived, (rs) => rs.length >= expected);
    // Give the other sinks the same chance, then read them all.
    await until(
      "the exception in the queue",
      () => queued,
      (q) => q.length >= 1,
    );
    await new Promise((r) => setTimeout(r, 500));
    all = await archived();
  });

  it("archives every record exactly once, with unique stable ids", () => {
    expect(all).toHaveLength(expected);
    expect(new Set(ids(all)).size).toBe(all.length);
    for (const r of all) expect(r.id).toBe(`${r.invocationId}-${r.id.split("-").pop()}`);
  });

  it("sends warn-and-above to KV and nothing else, one entry per invocation", async () => {
    const { records, keys } = await inKv();
    const want = all.filter(expectProblems);
    expect(want.length).toBeGreaterThan(0);
    expect(ids(records)).toEqual(ids(want));
    expect(keys).toHaveLength(new Set(want.map((r) => r.invocationId)).size);
    for (const k of keys) expect(k.name).toMatch(/^e2e\/(unknown|[\w.-]+)\/\d+-[0-9a-z]+-\d+$/);
    const throwKey = keys.find((k) => (k.metadata as { outcome: string }).outcome === "exception");
    expect(throwKey?.metadata).toMatchObject({ level: "error", outcome: "exception", eventType: "fetch" });
  });

  it("sends exceptions, and only exceptions, to the Queue", async () => {
    await until(
      "queue drain",
      () => queued,
      (q) => q.length >= all.filter(expectExceptions).length,
    );
    expect(ids(queued)).toEqual(ids(all.filter(expectExceptions)));
    expect(queued[0]).toMatchObject({
      type: "exception",
      exceptionName: "Error",
      message: "checkout failed for 7",
      outcome: "exception",
    });
    expect(queued[0]?.type === "exception" && queued[0].stack).toContain("producer.js");
  });

  it("sends 5xx and exception invocations to the HTTP backend as gzip NDJSON with the resolved secret", () => {
    const got = atHook();
    expect(ids(got)).toEqual(ids(all.filter(expectHook)));
    const reqs = receiver.received.filter((r) => r.label === "e2e");
    for (const r of reqs) {
      expect(r.headers["content-encoding"]).toBe("gzip");
      expect(r.headers["content-type"]).toBe("application/x-ndjson");
      expect(r.headers.authorization).toBe("Bearer e2e-token");
      expect(r.body.endsWith("\n")).toBe(true);
    }
  });

  it("keeps every event type's fields", () => {
    const inv = (pred: (r: LogRecord) => boolean) => all.filter((r) => r.type === "invocation" && pred(r));
    const [ok] = inv((r) => r.url?.endsWith("/ok?n=1") === true);
    expect(ok).toMatchObject({
      eventType: "fetch",
      method: "GET",
      status: 200,
      outcome: "ok",
      level: "info",
      executionModel: "stateless",
    });
    expect(ok?.colo).toMatch(/^[A-Z]{3}$/);
    expect(
      ok?.type === "invocation" &&
        (ok.event as { request: { headers: Record<string, string> } }).request.headers.authorization,
    ).toBe("REDACTED");
    expect(inv((r) => r.url?.endsWith("/500") === true)[0]).toMatchObject({
      status: 500,
      level: "error",
      outcome: "ok",
    });
    expect(inv((r) => r.url?.endsWith("/404") === true)[0]).toMatchObject({ status: 404, level: "warn" });
    const [thrown] = inv((r) => r.outcome === "exception");
    expect(thrown).toMatchObject({ eventType: "fetch", level: "error", exceptionCount: 1, logCount: 1 });
    expect(thrown?.status).toBeUndefined();
    expect(inv((r) => r.eventType === "scheduled")[0]).toMatchObject({ cron: "0 3 * * *", outcome: "ok" });
    expect(inv((r) => r.eventType === "scheduled")[0]?.scheduledTime).toEqual(expect.any(Number));
    expect(inv((r) => r.eventType === "queue")[0]).toMatchObject({ queue: "jobs", batchSize: 1 });
    expect(inv((r) => r.eventType === "rpc")[0]).toMatchObject({ rpcMethod: "greet", entrypoint: "Greeter" });
    const [alarm] = inv((r) => r.eventType === "alarm");
    expect(alarm).toMatchObject({ executionModel: "durableObject", entrypoint: "Clock", level: "info" });
    expect(alarm?.durableObjectId).toMatch(/^[0-9a-f]{64}$/);
    expect(alarm?.scheduledTime).toEqual(expect.any(Number));
    expect(inv((r) => r.eventType === "connect")[0]).toMatchObject({ outcome: "ok", logCount: 1 });
    // Every record of an invocation carries its context.
    const warnLine = all.find((r) => r.type === "log" && r.message === "clock rang");
    expect(warnLine).toMatchObject({
      eventType: "alarm",
      executionModel: "durableObject",
      invocationId: alarm?.invocationId,
      level: "warn",
    });
  });

  it("keeps console arguments and errors", () => {
    const served = all.find((r) => r.type === "log" && r.url?.endsWith("/ok?n=2"));
    expect(served).toMatchObject({
      message: 'served {"path":"/ok","n":2}',
      level: "log",
      args: ["served", { path: "/ok", n: 2 }],
    });
    const dbDown = all.find((r) => r.type === "log" && r.level === "error");
    expect(dbDown?.message).toMatch(/^db down /);
    expect(dbDown?.type === "log" && dbDown.errors?.[0]).toMatchObject({
      name: "Error",
      message: "connection refused",
    });
  });
});
