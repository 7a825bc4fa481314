/**
 * Buffered mode's shared work messages and its overflow path, on the real
 * local Queue (behind a proxy that counts every sendBatch call and forwards
 * it, or refuses the first N), R2 (the spool), the stats object and the HTTP
 * receiver: many tail() calls share few messages, every record reaches the
 * sink once through queue(), a tail() resolves only once its own records are
 * enqueued, and a refused send is retried, spooled and drained, never
 * multiplied into per-invocation deliveries.
 */
import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { loadConfig } from "../../src/config";
import type { DeliveryOptions } from "../../src/delivery/deliver";
import { fromMessage, unpackBody } from "../../src/delivery/durable";
import { drainSpool } from "../../src/delivery/spool";
import worker from "../../src/index";
import { openChunkCount } from "../../src/pipeline/coalesce";
import { handleQueue } from "../../src/queue";
import type { SinkStats } from "../../src/stats";
import { handleTail } from "../../src/tail";
import { parseNdjson, received, receiverUrl, traceItem, uid } from "../sinks/helpers";
import { STATS_AT_ONCE } from "../support/stats";

const vars = env as unknown as Record<string, unknown>;
const FAST: Partial<DeliveryOptions> = { timeoutMs: 10_000, maxAttempts: 1, backoffMs: 0, budgetMs: 15_000 };

interface Proxy {
  queue: Queue;
  /** Every sendBatch call, refused or not. */
  calls: MessageSendRequest[][];
  /** The messages the real queue took. */
  taken: MessageSendRequest[];
}

/** Forwards sendBatch to the real work queue; `refuse(n)` says whether call n (1-based) throws instead; `hold` delays a call. */
function proxyQueue(refuse: (n: number) => boolean = () => false, hold?: (n: number) => Promise<void>): Proxy {
  const real = env.TAILFAN_QUEUE;
  const p: Proxy = { queue: undefined as unknown as Queue, calls: [], taken: [] };
  p.queue = {
    send: (body: unknown, options?: QueueSendOptions) => real.send(body, options),
    sendBatch: async (messages: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) => {
      const list = [...messages];
      p.calls.push(list);
      const n = p.calls.length;
      if (hold) await hold(n);
      if (refuse(n)) throw new Error("Queue sendBatch failed: Too Many Requests");
      await real.sendBatch(list, options);
      for (const m of list) p.taken.push(m);
    },
    metrics: () => real.metrics(),
  } as unknown as Queue;
  return p;
}

function setup(proxy: Proxy, delivery: Record<string, unknown> = {}) {
  const sink = uid("co");
  const binding = uid("WORK").replace(/[^A-Za-z0-9_]/g, "_");
  const spoolPrefix = uid("spool");
  const environment: Record<string, unknown> = {
    ...vars,
    [binding]: proxy.queue,
    SINKS: JSON.stringify([{ name: sink, type: "http", url: `${receiverUrl()}/ok/${sink}`, format: "ndjson" }]),
    DELIVERY: JSON.stringify({
      mode: "buffered",
      queue: binding,
      deadLetter: "LOGS_R2",
      deadLetterPrefix: uid("co-dl"),
      spoolPrefix,
      stats: "TAILFAN_STATS",
      ...STATS_AT_ONCE,
      retryDelaySeconds: 900,
      // Buffered mode's windows are 5 s by default; these tests share 1 s windows, well inside their timeouts.
      bufferMs: 1000,
      ...delivery,
    }),
  };
  return { sink, spoolPrefix, env: environment };
}

/** `n` invocations, each with two log lines: three records apiece. */
function invocations(n: number, script: string) {
  return Array.from({ length: n }, (_, i) =>
    traceItem({
      script,
      path: `/p/${i}`,
      logs: [
        { level: "log", message: [`first ${i}`] },
        { level: "info", message: [`second ${i}`] },
      ],
    }),
  );
}

let seq = 0;
/** Hands messages to queue() as the runtime would. */
async function consume(bodies: unknown[], e: Record<string, unknown>, queue = "tailfan-work") {
  const batch = createMessageBatch(
    queue,
    bodies.map((body) => ({ id: `co-${++seq}`, timestamp: new Date(), attempts: 1, body })),
  );
  await handleQueue(batch, e, FAST);
}

async function receivedIds(label: string): Promise<string[]> {
  return (await received(label)).flatMap((r) => parseNdjson(r.body).map((x) => (x as { id: string }).id));
}

async function statsOf(sink: string): Promise<SinkStats | undefined> {
  const stub = env.TAILFAN_STATS.get(env.TAILFAN_STATS.idFromName("tailfan"));
  return ((await stub.snapshot()) as SinkStats[]).find((s) => s.sink === sink);
}

/** A work message read back as queue() reads it (gzipped bodies unpacked). */
const readBack = async (body: unknown) => fromMessage(await unpackBody(body));

const idsIn = async (messages: readonly MessageSendRequest[]) =>
  (await Promise.all(messages.map((m) => readBack(m.body)))).flatMap((w) => w.items.map((i) => i.record.id));

const sizeOf = (body: unknown) =>
  body instanceof Uint8Array || body instanceof ArrayBuffer
    ? body.byteLength
    : new TextEncoder().encode(String(body)).length;

let errors: MockInstance<typeof console.error>;
beforeEach(() => {
  errors = vi.spyOn(console, "error").mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

describe("buffered mode: one work message for many tail() calls", () => {
  it("60 concurrent tail() calls share one message; queue() delivers every record once, counters exact", async () => {
    const proxy = proxyQueue();
    // A window long enough for all 60 to join on a busy machine.
    const s = setup(proxy, { bufferMs: 1_000 });
    const items = invocations(60, uid("many"));
    const done = items.map((item) => handleTail([item], s.env, createExecutionContext(), FAST));
    expect(await Promise.all(done)).toEqual(items.map(() => []));
    expect(openChunkCount()).toBe(0);
    // Before: one sendBatch call and one message per invocation (60).
    expect(proxy.calls).toHaveLength(1);
    expect(proxy.taken).toHaveLength(1);
    const queued = await idsIn(proxy.taken);
    expect(queued).toHaveLength(180);
    expect(new Set(queued).size).toBe(180);

    await consume(
      proxy.taken.map((m) => m.body),
      s.env,
    );
    const got = await receivedIds(s.sink);
    expect(got.sort()).toEqual([...queued].sort());
    expect(await statsOf(s.sink)).toMatchObject({
      totals: { received: 180, sent: 180, pending: 0, failed: 0 },
      unaccounted: 0,
    });
    expect(errors).not.toHaveBeenCalled();
  });

  it("gzips a shared message: 100 invocations of 2 KB lines go in one message under 64 KB, one billed Queue operation", async () => {
    const proxy = proxyQueue();
    const s = setup(proxy, { bufferMs: 1_000 });
    const script = uid("big");
    const items = Array.from({ length: 100 }, (_, i) =>
      traceItem({ script, path: `/b/${i}`, logs: [{ level: "log", message: [`line ${i} ${"x".repeat(2_000)}`] }] }),
    );
    await Promise.all(items.map((item) => handleTail([item], s.env, createExecutionContext(), FAST)));
    // Before: 2 text messages of about 120 KB each, 2 billed 64 KB operations apiece.
    expect(proxy.taken).toHaveLength(1);
    expect(proxy.taken[0]?.contentType).toBe("bytes");
    expect(sizeOf(proxy.taken[0]?.body)).toBeLessThan(64_000);
    expect(new Set(await idsIn(proxy.taken)).size).toBe(200);
  });

  it("fills a chunk to 512 KiB of records, then opens the next; a body that does not gzip small enough is cut, each message within the Queue's limit", async () => {
    const proxy = proxyQueue();
    const s = setup(proxy, { bufferMs: 1_000 });
    const script = uid("noisy");
    // Random hex compresses only to about half: 400 invocations of 2 KB are about 900 KB of records.
    const noise = (n: number) =>
      Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b.toString(16).padStart(2, "0")).join("");
    const items = Array.from({ length: 400 }, (_, i) =>
      traceItem({ script, path: `/n/${i}`, logs: [{ level: "log", message: [noise(1_000)] }] }),
    );
    await Promise.all(items.map((item) => handleTail([item], s.env, createExecutionContext(), FAST)));
    const sizes = proxy.taken.map((m) => sizeOf(m.body));
    for (const size of sizes) expect(size).toBeLessThanOrEqual(128_000);
    // Two chunks, each cut until it fits: a few messages, not one per invocation.
    expect(proxy.taken.length).toBeGreaterThanOrEqual(4);
    expect(proxy.taken.length).toBeLessThanOrEqual(16);
    const ids = await idsIn(proxy.taken);
    expect(ids).toHaveLength(800);
    expect(new Set(ids).size).toBe(800);
    await consume(
      proxy.taken.map((m) => m.body),
      s.env,
    );
    expect(await statsOf(s.sink)).toMatchObject({ totals: { received: 800, sent: 800, pending: 0 }, unaccounted: 0 });
  });

  it("a tail() whose records another tail() is sending resolves only once that send has taken them", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const proxy = proxyQueue(
      () => false,
      () => gate,
    );
    const s = setup(proxy, { bufferMs: 100 });
    const [a, b] = invocations(2, uid("gate"));
    const settled: string[] = [];
    const first = handleTail([a], s.env, createExecutionContext(), FAST).then(() => settled.push("a"));
    await new Promise((r) => setTimeout(r, 30));
    const second = handleTail([b], s.env, createExecutionContext(), FAST).then(() => settled.push("b"));
    // Long past the window: the message is being sent, and held at the queue.
    await new Promise((r) => setTimeout(r, 400));
    expect(proxy.calls).toHaveLength(1);
    expect(settled).toEqual([]);
    release();
    await Promise.all([first, second]);
    expect(settled.sort()).toEqual(["a", "b"]);
    expect(proxy.taken).toHaveLength(1);
    expect(await idsIn(proxy.taken)).toHaveLength(6);
  });

  it("a tail() does not wait forever on another tail()'s send that never ends: it sends its own records itself", async () => {
    let fail: () => void = () => {};
    const hung = new Promise<void>((_, reject) => {
      fail = () => reject(new Error("the sending request is gone"));
    });
    // The first call hangs (its request's context gone), the rest pass.
    const proxy = proxyQueue(
      () => false,
      (n) => (n === 1 ? hung : Promise.resolve()),
    );
    const s = setup(proxy, { bufferMs: 50, budgetMs: 1_000 });
    const [a, b] = invocations(2, uid("stall"));
    // Whichever of the two sends the shared message hangs; the other must still resolve, on its own.
    const first = handleTail([a], s.env, createExecutionContext(), FAST).then(() => "a");
    const second = handleTail([b], s.env, createExecutionContext(), FAST).then(() => "b");
    const waiter = await Promise.race([first, second]);
    // Its own records went in a message of its own, after the stall limit (budgetMs / 2).
    expect(proxy.calls).toHaveLength(2);
    const own = await idsIn(proxy.taken);
    expect(own).toHaveLength(3);
    const urls = new Set((await readBack(proxy.taken[0]?.body)).items.map((i) => i.record.url));
    expect([...urls]).toEqual([`https://shop.example.com${waiter === "a" ? "/p/0" : "/p/1"}`]);
    fail();
    await Promise.all([first, second]);
  });
});

describe("buffered mode: overflow", () => {
  it("a refused send is tried again after a pause: one message, nothing spooled, nothing delivered directly", async () => {
    const proxy = proxyQueue((n) => n === 1);
    const s = setup(proxy);
    const items = invocations(20, uid("retry"));
    await Promise.all(items.map((item) => handleTail([item], s.env, createExecutionContext(), FAST)));
    expect(proxy.calls).toHaveLength(2);
    expect(proxy.taken).toHaveLength(1);
    expect(await idsIn(proxy.taken)).toHaveLength(60);
    expect(await received(s.sink)).toEqual([]);
    expect((await env.LOGS_R2.list({ prefix: `${s.spoolPrefix}/` })).objects).toEqual([]);
  });

  it("a queue that keeps refusing spools the shared message (counted pending); the next queue() drains it, each record delivered once", async () => {
    let refusing = true;
    const proxy = proxyQueue(() => refusing);
    const s = setup(proxy);
    const items = invocations(30, uid("spool"));
    await Promise.all(items.map((item) => handleTail([item], s.env, createExecutionContext(), FAST)));
    // Three tries of one shared message, then one spool object: no delivery per invocation.
    expect(proxy.calls).toHaveLength(3);
    expect(await received(s.sink)).toEqual([]);
    const spooled = (await env.LOGS_R2.list({ prefix: `${s.spoolPrefix}/` })).objects;
    expect(spooled).toHaveLength(1);
    expect(await statsOf(s.sink)).toMatchObject({ totals: { received: 90, pending: 90, sent: 0 }, unaccounted: 0 });

    // The queue takes sends again; the next queue() batch (here an empty one) puts the spool back on it.
    refusing = false;
    await consume([], s.env);
    expect((await env.LOGS_R2.list({ prefix: `${s.spoolPrefix}/` })).objects).toEqual([]);
    expect(proxy.taken).toHaveLength(1);
    expect((await readBack(proxy.taken[0]?.body)).header).toMatchObject({ kind: "records", counted: true });
    await consume(
      proxy.taken.map((m) => m.body),
      s.env,
    );
    const got = await receivedIds(s.sink);
    expect(got).toHaveLength(90);
    expect(new Set(got).size).toBe(90);
    expect(await statsOf(s.sink)).toMatchObject({
      totals: { received: 90, sent: 90, pending: 0, failed: 0 },
      unaccounted: 0,
    });
  });

  it("the cron leaves the spool alone while the queue still refuses, and drains it once the queue takes sends", async () => {
    let refusing = true;
    const proxy = proxyQueue(() => refusing);
    const s = setup(proxy);
    await handleTail(invocations(1, uid("cron")), s.env, createExecutionContext(), FAST);
    const loaded = loadConfig(s.env);
    if (!loaded.ok) throw new Error("config");
    expect(await drainSpool(loaded.config.delivery, s.env)).toBe(0);
    expect((await env.LOGS_R2.list({ prefix: `${s.spoolPrefix}/` })).objects).toHaveLength(1);
    expect(String(errors.mock.calls.at(-1)?.[0])).toMatch(/^tailfan: draining the spool stopped after 0 object\(s\): /);

    refusing = false;
    const ctx = createExecutionContext();
    worker.scheduled(createScheduledController({ cron: "*/5 * * * *" }), s.env, ctx);
    await waitOnExecutionContext(ctx);
    expect((await env.LOGS_R2.list({ prefix: `${s.spoolPrefix}/` })).objects).toEqual([]);
    expect(await idsIn(proxy.taken)).toHaveLength(3);
  });

  it("with no spool bucket and a queue that refuses, each invocation is delivered directly, and the log says so", async () => {
    const proxy = proxyQueue(() => true);
    const s = setup(proxy, { deadLetter: null });
    const items = invocations(4, uid("nospool"));
    await Promise.all(items.map((item) => handleTail([item], s.env, createExecutionContext(), FAST)));
    const got = await receivedIds(s.sink);
    expect(got).toHaveLength(12);
    expect(new Set(got).size).toBe(12);
    const logged = errors.mock.calls.map((c) => String(c[0]));
    // One line for the four: repeats of a kind are throttled per isolate (src/log.ts).
    expect(logged.filter((l) => l.includes("delivering them directly"))).toHaveLength(1);
    expect(logged[0]).toContain("no spool (DELIVERY.deadLetter is not set)");
    expect(await statsOf(s.sink)).toMatchObject({ totals: { received: 12, sent: 12 }, unaccounted: 0 });
  });
});
