/**
 * The queue() handler on real work messages: buffered records delivered to
 * every routed sink, retries for one sink with growing delays, dead letters
 * at the last attempt, and what is not tailfan's. Real local queue (behind a
 * counting proxy that forwards every call), R2, stats object and HTTP receiver.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import type { DeliveryOptions } from "../../src/delivery/deliver";
import { fromMessage, retryDelay, toMessages, type WorkHeader } from "../../src/delivery/durable";
import { handleQueue } from "../../src/queue";
import type { SerializedRecord } from "../../src/record";
import { flushStats, type SinkStats, StatsBatch } from "../../src/stats";
import {
  gunzipText,
  must,
  parseNdjson,
  received,
  receiverUrl,
  serialized,
  someRecords,
  traceItem,
  uid,
} from "../sinks/helpers";
import { STATS_AT_ONCE } from "../support/stats";

const base = receiverUrl();
const vars = env as unknown as Record<string, unknown>;

/** One attempt per delivery, so a failing endpoint fails at once (generous timeouts: a busy machine is not a failure). */
const FAST: Partial<DeliveryOptions> = { timeoutMs: 10_000, maxAttempts: 1, backoffMs: 0, budgetMs: 15_000 };

/** A Queue binding that records every sendBatch call and forwards it to the real binding. */
function countingQueue(real: Queue) {
  const calls: { messages: MessageSendRequest[] }[] = [];
  const queue = {
    send: (body: unknown, options?: QueueSendOptions) => real.send(body, options),
    sendBatch: (messages: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) => {
      const list = [...messages];
      calls.push({ messages: list });
      return real.sendBatch(list, options);
    },
    metrics: () => real.metrics(),
  } as unknown as Queue;
  return { queue, calls };
}

interface Scenario {
  env: Record<string, unknown>;
  calls: ReturnType<typeof countingQueue>["calls"];
  deadLetterPrefix: string;
  /** The messages this handler queued (retries), read back. */
  queued(): { header: WorkHeader; ids: string[]; delaySeconds: number | undefined }[];
  deadLetters(sink: string): Promise<Record<string, unknown>[]>;
}

/** A fresh SINKS/DELIVERY (unique strings, so a fresh config) with the work queue behind a counting proxy. */
function scenario(sinks: Record<string, unknown>[], delivery: Record<string, unknown> = {}, extra = {}): Scenario {
  const { queue, calls } = countingQueue(env.TAILFAN_QUEUE);
  const deadLetterPrefix = uid("q-dl");
  const environment = {
    ...vars,
    WORK_Q: queue,
    SINKS: JSON.stringify(sinks),
    DELIVERY: JSON.stringify({
      queue: "WORK_Q",
      deadLetter: "LOGS_R2",
      deadLetterPrefix,
      retries: 3,
      // Far past the end of the run: what these tests queue is never consumed by the local consumer.
      retryDelaySeconds: 900,
      stats: "TAILFAN_STATS",
      ...STATS_AT_ONCE,
      // Buffered mode's windows are 5 s by default; these tests share 1 s windows, well inside their timeouts.
      bufferMs: 1000,
      ...delivery,
    }),
    ...extra,
  };
  return {
    env: environment,
    calls,
    deadLetterPrefix,
    queued: () =>
      calls
        .flatMap((c) => c.messages)
        .map((m) => {
          const work = fromMessage(m.body);
          return { header: work.header, ids: work.items.map((i) => i.record.id), delaySeconds: m.delaySeconds };
        }),
    async deadLetters(sink) {
      const out: Record<string, unknown>[] = [];
      const { objects } = await env.LOGS_R2.list({ prefix: `${deadLetterPrefix}/${sink}/` });
      for (const o of objects) {
        const obj = must(await env.LOGS_R2.get(o.key));
        out.push(...(parseNdjson(await gunzipText(await obj.arrayBuffer())) as Record<string, unknown>[]));
      }
      return out;
    },
  };
}

let seq = 0;
/** Queue messages as the runtime hands them over, with bodies made by toMessages. */
function batchOf(queue: string, bodies: unknown[]) {
  return createMessageBatch(
    queue,
    bodies.map((body) => ({ id: `msg-${++seq}`, timestamp: new Date(), attempts: 1, body })),
  );
}

function retryBodies(sink: string, items: SerializedRecord[], over: Partial<WorkHeader> = {}): string[] {
  const header = {
    v: 1,
    kind: "retry",
    sink,
    attempt: 1,
    tries: 3,
    status: 503,
    reason: "HTTP 503: answered 503",
    since: 1_700_000_000_000,
    ...over,
  } as WorkHeader;
  return toMessages(header, items).bodies;
}

function recordBodies(items: SerializedRecord[]): string[] {
  return toMessages({ v: 1, kind: "records", at: Date.now() }, items).bodies;
}

/** Record ids the receiver got under `label` (ndjson bodies). */
async function receivedIds(label: string): Promise<string[]> {
  const requests = await received(label);
  return requests.flatMap((r) => parseNdjson(r.body).map((x) => (x as { id: string }).id));
}

async function r2Ids(prefix: string): Promise<string[]> {
  const out: string[] = [];
  const { objects } = await env.LOGS_R2.list({ prefix });
  for (const o of objects) {
    const obj = must(await env.LOGS_R2.get(o.key));
    for (const x of parseNdjson(await gunzipText(await obj.arrayBuffer()))) out.push((x as { id: string }).id);
  }
  return out;
}

/** The counters of one sink in the deployment's stats object. */
async function statsOf(sink: string): Promise<SinkStats | undefined> {
  const stub = env.TAILFAN_STATS.get(env.TAILFAN_STATS.idFromName("tailfan"));
  const all = (await stub.snapshot()) as SinkStats[];
  return all.find((s) => s.sink === sink);
}

const ids = (items: readonly SerializedRecord[]) => items.map((i) => i.record.id);
const http = (name: string, path: string) => ({ name, type: "http", url: `${base}${path}`, format: "ndjson" });

let errors: MockInstance<typeof console.error>;
beforeEach(() => {
  errors = vi.spyOn(console, "error").mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

describe("queue(): retry messages", () => {
  it("delivers a retry to its one sink only, acks it, and takes the records off pending", async () => {
    const [a, b] = [uid("qa"), uid("qb")];
    const archive = uid("q-archive");
    const s = scenario([
      http(a, `/ok/${a}`),
      http(b, `/ok/${b}`),
      { name: archive, type: "r2", binding: "LOGS_R2", prefix: archive },
    ]);
    const items = someRecords(3, uid("retry-ok"));
    const batch = batchOf("tailfan-work", retryBodies(a, items, { attempt: 2 }));
    const ctx = createExecutionContext();
    await handleQueue(batch, s.env, FAST);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(batch.messages.map((m) => m.id));
    expect(result.retryMessages).toEqual([]);
    expect(result.retryBatch.retry).toBe(false);

    expect(await receivedIds(a)).toEqual(ids(items));
    expect(await received(b)).toEqual([]);
    expect(await r2Ids(`${archive}/`)).toEqual([]);
    expect(s.calls).toEqual([]);
    expect(await statsOf(a)).toMatchObject({ totals: { sent: 6, pending: -6, requests: 1, retried: 0 } });
  });

  it("a retry that fails again (HTTP 500) is queued again with attempt + 1 and the doubled delay, and acked", async () => {
    const a = uid("q500");
    const s = scenario([http(a, `/status/500/${a}`)]);
    const items = someRecords(2, uid("retry-500"));
    const batch = batchOf("tailfan-work", retryBodies(a, items, { attempt: 1, tries: 3, since: 42 }));
    const ctx = createExecutionContext();
    await handleQueue(batch, s.env, FAST);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(batch.messages.map((m) => m.id));
    expect(result.retryMessages).toEqual([]);

    expect(await received(a)).toHaveLength(1);
    expect(s.queued()).toEqual([
      {
        header: {
          v: 1,
          kind: "retry",
          sink: a,
          attempt: 2,
          tries: 4,
          status: 500,
          reason: "HTTP 500: answered 500",
          since: 42,
        },
        ids: ids(items),
        delaySeconds: retryDelay(900, 2),
      },
    ]);
    expect(await s.deadLetters(a)).toEqual([]);
    const stats = await statsOf(a);
    expect(stats?.totals).toMatchObject({ retried: 4, pending: 0, deadLettered: 0 });
    expect(stats?.lastError).toMatchObject({ message: "HTTP 500: answered 500", status: 500 });
  });

  it("at the last attempt, a failing retry goes to the dead-letter bucket instead of the queue", async () => {
    const a = uid("qlast");
    const s = scenario([http(a, `/status/500/${a}`)], { retries: 3 });
    const items = someRecords(2, uid("retry-last"));
    const batch = batchOf("tailfan-work", retryBodies(a, items, { attempt: 3, tries: 9 }));
    const ctx = createExecutionContext();
    await handleQueue(batch, s.env, FAST);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(batch.messages.map((m) => m.id));

    expect(s.calls).toEqual([]);
    const dead = await s.deadLetters(a);
    expect(dead.map((d) => (d.record as { id: string }).id)).toEqual(ids(items));
    expect(dead[0]).toMatchObject({ sink: a, status: 500, reason: "HTTP 500: answered 500", attempts: 10 });
    expect(await statsOf(a)).toMatchObject({ totals: { deadLettered: 4, pending: -4, retried: 0 } });
  });

  it("retries for the same sink and attempt are sent together, in one request", async () => {
    const a = uid("qgroup");
    const s = scenario([http(a, `/ok/${a}`)]);
    const [x, y] = [someRecords(1, uid("g1")), someRecords(2, uid("g2"))];
    const batch = batchOf("tailfan-work", [...retryBodies(a, x), ...retryBodies(a, y)]);
    await handleQueue(batch, s.env, FAST);
    const requests = await received(a);
    expect(requests).toHaveLength(1);
    expect(await receivedIds(a)).toEqual([...ids(x), ...ids(y)]);
  });

  it("a retry for a sink that is no longer configured is dead-lettered and acked", async () => {
    const kept = uid("qkept");
    const gone = uid("qgone");
    const s = scenario([http(kept, `/ok/${kept}`)]);
    const items = someRecords(1, uid("gone"));
    const batch = batchOf("tailfan-work", retryBodies(gone, items, { attempt: 2, tries: 6 }));
    const ctx = createExecutionContext();
    await handleQueue(batch, s.env, FAST);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(batch.messages.map((m) => m.id));

    expect(await received(kept)).toEqual([]);
    const dead = await s.deadLetters(gone);
    expect(dead.map((d) => (d.record as { id: string }).id)).toEqual(ids(items));
    expect(dead[0]).toMatchObject({ sink: gone, reason: "the sink is no longer configured", attempts: 6 });
    expect(await statsOf(gone)).toMatchObject({ totals: { deadLettered: 2, pending: -2 } });
  });
});

describe("queue(): buffered records", () => {
  it("delivers a records message to every sink its records are routed to", async () => {
    const [all, problems] = [uid("qall"), uid("qexc")];
    const archive = uid("q-arch");
    const s = scenario(
      [
        http(all, `/ok/${all}`),
        { ...http(problems, `/ok/${problems}`), types: ["exception"] },
        { name: archive, type: "r2", binding: "LOGS_R2", prefix: archive },
      ],
      { mode: "buffered" },
    );
    const script = uid("buf");
    const items = serialized([
      traceItem({ script, path: "/a" }),
      traceItem({ script, path: "/b", outcome: "exception", exceptions: [{ name: "Error", message: "boom" }] }),
    ]);
    const exceptions = items.filter((i) => i.record.type === "exception");
    expect(exceptions).toHaveLength(1);
    const batch = batchOf("tailfan-work", recordBodies(items));
    const ctx = createExecutionContext();
    await handleQueue(batch, s.env, FAST);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(batch.messages.map((m) => m.id));

    expect(await receivedIds(all)).toEqual(ids(items));
    expect(await receivedIds(problems)).toEqual(ids(exceptions));
    expect((await r2Ids(`${archive}/`)).sort()).toEqual(ids(items).sort());
    expect(s.calls).toEqual([]);
    // Buffered records enter the counters here, where queue() first routes them.
    expect(await statsOf(all)).toMatchObject({
      totals: { received: items.length, sent: items.length, pending: 0, droppedFilter: 0 },
      unaccounted: 0,
    });
    expect(await statsOf(problems)).toMatchObject({
      totals: { received: 1, sent: 1, pending: 0, droppedFilter: items.length - 1 },
      unaccounted: 0,
    });
  });

  it("a buffered tail() sends only routed records, and queue() counts the rest as droppedFilter for every sink", async () => {
    const [errorsOnly, warns] = [uid("qerr"), uid("qwarn")];
    const s = scenario(
      [
        { ...http(errorsOnly, `/ok/${errorsOnly}`), level: "error" },
        { ...http(warns, `/ok/${warns}`), level: "warn" },
      ],
      { mode: "buffered" },
    );
    const script = uid("unrouted");
    const item = traceItem({
      script,
      path: "/c",
      logs: [
        { level: "debug", message: ["d"] },
        { level: "info", message: ["i"] },
        { level: "warn", message: ["w"] },
        { level: "error", message: ["e"] },
      ],
    });
    const ctx = createExecutionContext();
    const { handleTail } = await import("../../src/tail");
    await handleTail([item], s.env, ctx, FAST);
    // tail(): one message holding the warn and error lines only, and the count of the three no sink wanted.
    const [message, ...more] = s.queued();
    expect(more).toEqual([]);
    expect(message?.header).toMatchObject({ kind: "records", unrouted: 3 });
    expect(message?.ids).toHaveLength(2);
    // queue(): delivers them, and counts the invocation's five records per sink.
    const batch = batchOf("tailfan-work", [must(s.calls[0]?.messages[0]).body]);
    await handleQueue(batch, s.env, FAST);
    expect(await statsOf(errorsOnly)).toMatchObject({
      totals: { received: 1, sent: 1, droppedFilter: 4 },
      unaccounted: 0,
    });
    expect(await statsOf(warns)).toMatchObject({ totals: { received: 2, sent: 2, droppedFilter: 3 }, unaccounted: 0 });
  });

  it("a buffered tail() carries what sampling alone dropped per sink, and queue() counts it as droppedSample", async () => {
    const [none, warns] = [uid("qsample"), uid("qsample-warn")];
    const s = scenario(
      [
        // Samples every 2xx invocation out: the whole invocation is droppedSample there.
        { ...http(none, `/ok/${none}`), sample: { "2xx": 0 } },
        { ...http(warns, `/ok/${warns}`), level: "warn" },
      ],
      { mode: "buffered" },
    );
    const item = traceItem({
      script: uid("sampled"),
      logs: [
        { level: "info", message: ["i"] },
        { level: "warn", message: ["w"] },
      ],
    });
    const ctx = createExecutionContext();
    const { handleTail } = await import("../../src/tail");
    await handleTail([item], s.env, ctx, FAST);
    const [message, ...more] = s.queued();
    expect(more).toEqual([]);
    // Three records: the warn line went to the warn sink; the other two no sink took, both sampled out of `none`.
    expect(message?.header).toMatchObject({ kind: "records", unrouted: 2, sampled: { [none]: 2 } });
    const batch = batchOf("tailfan-work", [must(s.calls[0]?.messages[0]).body]);
    await handleQueue(batch, s.env, FAST);
    expect(await statsOf(none)).toMatchObject({
      totals: { received: 0, sent: 0, droppedFilter: 0, droppedSample: 3 },
      unaccounted: 0,
    });
    expect(await statsOf(warns)).toMatchObject({
      totals: { received: 1, sent: 1, droppedFilter: 2, droppedSample: 0 },
      unaccounted: 0,
    });
  });

  it("a buffered record a sink refuses for now is queued as a first retry for that sink alone", async () => {
    const [up, down] = [uid("qup"), uid("qdown")];
    const s = scenario([http(up, `/ok/${up}`), http(down, `/status/503/${down}`)], { mode: "buffered" });
    const items = someRecords(2, uid("buf-retry"));
    const batch = batchOf("tailfan-work", recordBodies(items));
    await handleQueue(batch, s.env, FAST);
    expect(await receivedIds(up)).toEqual(ids(items));
    const queued = s.queued();
    expect(
      queued.map((q) => [q.header.kind === "retry" && q.header.sink, q.header.kind === "retry" && q.header.attempt]),
    ).toEqual([[down, 1]]);
    expect(queued[0]?.ids).toEqual(ids(items));
    expect(queued[0]?.delaySeconds).toBe(900);
    // Received here, and now waiting in the queue for a retry.
    expect(await statsOf(down)).toMatchObject({ totals: { received: 4, retried: 4, pending: 4 }, unaccounted: 0 });
    expect(await statsOf(up)).toMatchObject({ totals: { received: 4, sent: 4, pending: 0 }, unaccounted: 0 });
  });
});

describe("queue(): shaped sinks", () => {
  /** The records the receiver got under `label`, parsed. */
  async function receivedLines(label: string): Promise<Record<string, unknown>[]> {
    return (await received(label)).flatMap((r) => parseNdjson(r.body) as Record<string, unknown>[]);
  }

  it("buffered: the work message carries each record once, unshaped; queue() shapes it for each sink", async () => {
    const [prod, dev] = [uid("qprod"), uid("qdev")];
    const s = scenario(
      [
        { ...http(prod, `/ok/${prod}`), fields: ["id", "message"], add: { env: "prod" } },
        { ...http(dev, `/ok/${dev}`), exclude: ["event"], add: { env: "dev" } },
      ],
      { mode: "buffered" },
    );
    const item = traceItem({ script: uid("shape-buf"), path: "/s" });
    const { handleTail } = await import("../../src/tail");
    await handleTail([item], s.env, createExecutionContext(), FAST);
    const [message, ...more] = s.queued();
    expect(more).toEqual([]);
    expect(message?.ids).toHaveLength(2);
    const body = must(s.calls[0]?.messages[0]).body as string;
    expect(body).not.toContain('"env"');
    await handleQueue(batchOf("tailfan-work", [body]), s.env, FAST);
    const atProd = await receivedLines(prod);
    expect(atProd.map((l) => Object.keys(l).sort())).toEqual([
      ["env", "id", "message"],
      ["env", "id", "message"],
    ]);
    const atDev = await receivedLines(dev);
    expect(atDev.map((l) => l.env)).toEqual(["dev", "dev"]);
    expect(atDev.every((l) => l.event === undefined && l.scriptName !== undefined)).toBe(true);
    expect(await statsOf(prod)).toMatchObject({ totals: { received: 2, sent: 2 }, unaccounted: 0 });
  });

  it("buffered: a logpush sink writes one line per invocation of the work message", async () => {
    const lp = uid("qlogpush");
    const s = scenario([{ name: lp, type: "http", url: `${base}/ok/${lp}`, format: "logpush" }], { mode: "buffered" });
    const script = uid("lp-buf");
    const traces = [
      traceItem({ script, path: "/a" }),
      traceItem({ script, path: "/b", logs: [{ level: "warn", message: ["w"] }] }),
    ];
    const { handleTail } = await import("../../src/tail");
    for (const t of traces) await handleTail([t], s.env, createExecutionContext(), FAST);
    const bodies = s.calls.flatMap((c) => c.messages.map((m) => m.body));
    await handleQueue(batchOf("tailfan-work", bodies), s.env, FAST);
    const lines = await receivedLines(lp);
    expect(lines.map((l) => (l.Event as { Request: { URL: string } }).Request.URL).sort()).toEqual([
      "https://shop.example.com/a",
      "https://shop.example.com/b",
    ]);
    expect(lines.find((l) => String(JSON.stringify(l.Event)).includes("/b"))?.Logs).toEqual([
      { Level: "warn", Message: ["w"], TimestampMs: expect.any(Number) },
    ]);
  });

  it("a shaped sink's failed batch is queued before shaping, and shaped again when retried", async () => {
    const down = uid("qshdown");
    const shape = { fields: ["id", "level"], rename: { level: "severity" }, add: { env: "prod" } };
    const failing = scenario([{ ...http(down, `/status/503/${down}`), ...shape }]);
    const { handleTail } = await import("../../src/tail");
    const traces = [traceItem({ script: uid("shape-retry"), path: "/r" })];
    await handleTail(traces, failing.env, createExecutionContext(), FAST);
    const [retry] = failing.queued();
    expect(retry?.header).toMatchObject({ kind: "retry", sink: down });
    const retryBody = must(failing.calls[0]?.messages[0]).body as string;
    // The whole records (scriptName, timestamp, ...), not the shaped lines.
    for (const line of retryBody.split("\n").slice(1)) {
      expect(JSON.parse(line)).toHaveProperty("scriptName");
      expect(JSON.parse(line)).not.toHaveProperty("env");
    }
    // The sink is back: the same name, now answering 200, gets the records shaped.
    const up = scenario([{ ...http(down, `/ok/${down}`), ...shape }]);
    await handleQueue(batchOf("tailfan-work", [retryBody]), up.env, FAST);
    const lines = (await received(down)).filter((r) => r.answer === 200).flatMap((r) => parseNdjson(r.body));
    expect(lines).toHaveLength(2);
    for (const l of lines as Record<string, unknown>[])
      expect(Object.keys(l).sort()).toEqual(["env", "id", "severity"]);
    // What the failing attempt sent was shaped too.
    const refused = (await received(down)).filter((r) => r.answer === 503).flatMap((r) => parseNdjson(r.body));
    expect(refused.map((l) => Object.keys(l as object).sort())).toEqual([
      ["env", "id", "severity"],
      ["env", "id", "severity"],
    ]);
  });
});

describe("queue(): what is not tailfan's, and a broken config", () => {
  it("acknowledges and logs a message that is not tailfan's, and still handles the rest", async () => {
    const a = uid("qmix");
    const s = scenario([http(a, `/ok/${a}`)]);
    const items = someRecords(1, uid("mix"));
    const batch = batchOf("tailfan-work", [{ hello: "world" }, "plain text", ...retryBodies(a, items)]);
    const ctx = createExecutionContext();
    await handleQueue(batch, s.env, FAST);
    const result = await getQueueResult(batch, ctx);
    expect([...result.explicitAcks].sort()).toEqual(batch.messages.map((m) => m.id).sort());
    expect(result.retryMessages).toEqual([]);
    expect(await receivedIds(a)).toEqual(ids(items));
    const logged = errors.mock.calls.map((c) => String(c[0]));
    expect(logged.filter((l) => l.includes("that is not tailfan's"))).toEqual([
      "tailfan: acknowledging a message on tailfan-work that is not tailfan's: Error: expected a text message, got object",
      expect.stringMatching(/^tailfan: acknowledging a message on tailfan-work that is not tailfan's: SyntaxError: /),
    ]);
  });

  it("with an invalid config, retries the whole batch in 5 minutes and says what to fix", async () => {
    const s = scenario([{ name: "x", type: "nope" }]);
    const batch = batchOf("tailfan-work", retryBodies("x", someRecords(1, uid("bad"))));
    const retryAll = vi.spyOn(batch, "retryAll"); // observes the call and passes it on
    const ctx = createExecutionContext();
    await handleQueue(batch, s.env, FAST);
    const result = await getQueueResult(batch, ctx);
    expect(result.retryBatch.retry).toBe(true);
    expect(retryAll.mock.calls).toEqual([[{ delaySeconds: 300 }]]);
    expect(result.explicitAcks).toEqual([]);
    const message = String(errors.mock.calls[0]?.[0]);
    expect(message).toContain("1 queued message(s) will be retried in 5 minutes");
    expect(message).toContain('SINKS[0].type: unknown sink type "nope"');
  });
});

describe("queue(): the dead_letter_queue", () => {
  it("turns what the queue gave up on into dead letters: a retry for its sink, records for every routed sink", async () => {
    const [a, b] = [uid("qdlq-a"), uid("qdlq-b")];
    const s = scenario([http(a, `/ok/${a}`), http(b, `/ok/${b}`)], { deadLetterQueue: "tailfan-dead-letter" });
    const retried = someRecords(1, uid("dlq-r"));
    const buffered = someRecords(1, uid("dlq-b"));
    const batch = batchOf("tailfan-dead-letter", [
      ...retryBodies(a, retried, { attempt: 2, tries: 7, reason: "HTTP 502: bad gateway" }),
      ...recordBodies(buffered),
    ]);
    const ctx = createExecutionContext();
    await handleQueue(batch, s.env, FAST);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(batch.messages.map((m) => m.id));
    // Nothing is delivered or queued again.
    expect(await received(a)).toEqual([]);
    expect(await received(b)).toEqual([]);
    expect(s.calls).toEqual([]);

    const deadA = await s.deadLetters(a);
    expect(deadA.map((d) => (d.record as { id: string }).id).sort()).toEqual(
      [...ids(retried), ...ids(buffered)].sort(),
    );
    expect(deadA.find((d) => (d.record as { id: string }).id === ids(retried)[0])).toMatchObject({
      attempts: 7,
      reason: "the queue gave up on this message (dead_letter_queue); last error: HTTP 502: bad gateway",
    });
    const deadB = await s.deadLetters(b);
    expect(deadB.map((d) => (d.record as { id: string }).id)).toEqual(ids(buffered));
    expect(deadB[0]).toMatchObject({ attempts: 0, reason: "the queue gave up on this message (dead_letter_queue)" });
  });

  it("a retry message from the dead_letter_queue leaves pending and is counted dead-lettered", async () => {
    const a = uid("qdlq-retry");
    const s = scenario([http(a, `/ok/${a}`)], { deadLetterQueue: "tailfan-dead-letter" });
    // Earlier: the records failed in tail() and were queued for a retry (pending +2) ...
    const items = someRecords(1, uid("dlq-retry"));
    const enqueue = new StatsBatch();
    enqueue.add(a, "received", 2);
    enqueue.add(a, "retried", 2);
    enqueue.add(a, "pending", 2);
    await flushStats(s.env, "TAILFAN_STATS", enqueue);
    // ... then queue() crashed on the retry until the queue gave up on it.
    await handleQueue(batchOf("tailfan-dead-letter", retryBodies(a, items, { attempt: 1 })), s.env, FAST);
    expect(await statsOf(a)).toMatchObject({
      totals: { received: 2, deadLettered: 2, pending: 0 },
      unaccounted: 0,
    });
  });

  // A buffered message was never counted (records enter the counters when queue() first routes them),
  // so the dead_letter_queue path counts it as received, not as leaving `pending`.
  it("a buffered records message from the dead_letter_queue is counted received and dead-lettered, pending untouched", async () => {
    const b = uid("qdlq-records");
    const s = scenario([http(b, `/ok/${b}`)], { deadLetterQueue: "tailfan-dead-letter", mode: "buffered" });
    const items = someRecords(1, uid("dlq-records"));
    await handleQueue(batchOf("tailfan-dead-letter", recordBodies(items)), s.env, FAST);
    expect((await s.deadLetters(b)).length).toBe(2);
    expect(await statsOf(b)).toMatchObject({
      totals: { received: 2, deadLettered: 2, pending: 0 },
      unaccounted: 0,
    });
  });
});
