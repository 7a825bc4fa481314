/**
 * The counters at scale, on the real Durable Objects: deltas summed per
 * isolate and written once per window, spread over shards and summed when
 * read, a shard that does not answer named, deltas that could not be written
 * carried and, when given up, reported as lost.
 */
import { createExecutionContext, createMessageBatch, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { toMessages } from "../../src/delivery/durable";
import worker from "../../src/index";
import { runQueue, runTail } from "../../src/pipeline";
import {
  counterFlushCost,
  counterFlushFailures,
  FLUSH_TRIES,
  flushStats,
  pendingWindow,
  readCounters,
  recordStats,
  type SinkDelta,
  type SinkStats,
  StatsBatch,
  shardName,
  statsStub,
} from "../../src/stats";
import { serialized, traceItem, uid } from "../sinks/helpers";

const vars = env as unknown as Record<string, unknown>;
const ADMIN = "stats-scale-admin-token";

beforeEach(() => {
  vi.spyOn(console, "error").mockImplementation(() => {});
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** The real namespace, with some shards broken on purpose: `add` and reads throw while `broken(shard)` says so. */
function brokenShards(real: DurableObjectNamespace, broken: (name: string, call: "add" | "read") => boolean) {
  const names = new Map<string, string>();
  return {
    idFromName: (name: string) => {
      const id = real.idFromName(name);
      names.set(id.toString(), name);
      return id;
    },
    get: (id: DurableObjectId) => {
      const name = names.get(id.toString()) ?? "";
      const stub = real.get(id) as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
      const call =
        (method: string, kind: "add" | "read") =>
        (...args: unknown[]) =>
          broken(name, kind) ? Promise.reject(new Error(`${name} is down`)) : stub[method]?.(...args);
      return {
        add: call("add", "add"),
        snapshot: call("snapshot", "read"),
        errors: call("errors", "read"),
        recent: call("recent", "read"),
      };
    },
  };
}

/**
 * The rows one write makes, whatever the number of sinks and records: the
 * minute's row, the totals row and one page of latest records, and the
 * errors row when a sink failed.
 */
const rowsPerFlush = ({ errors }: { errors: boolean }) => (errors ? 4 : 3);

/**
 * Makes sure shard 0 has its tables: a shard's first write creates them,
 * once in its life, and the writes measured here are the ones after.
 */
async function withTables(): Promise<void> {
  await statsStub(vars, "TAILFAN_STATS", 0).add([{ sink: uid("tables"), counts: { requests: 1 } }]);
}

function sinkOf(stats: SinkStats[] | null, name: string): SinkStats | undefined {
  return stats?.find((s) => s.sink === name);
}

/** Starts `n` tail() invocations at once, as concurrent requests in one isolate; resolves when all are done. */
async function tails(environment: Record<string, unknown>, n: number, make: (i: number) => Record<string, unknown>) {
  const ctxs = Array.from({ length: n }, (_, i) => {
    const ctx = createExecutionContext();
    runTail([make(i)], environment, ctx);
    return ctx;
  });
  await Promise.all(ctxs.map((ctx) => waitOnExecutionContext(ctx)));
}

describe("one window per isolate: 1,000 tail() calls", () => {
  // Two sinks, both filtering every record out: counters are written, nothing is delivered.
  const setup = (delivery: Record<string, unknown>) => {
    const [a, b] = [uid("scale-a"), uid("scale-b")];
    const environment = {
      ...vars,
      SINKS: JSON.stringify([
        { name: a, type: "r2", binding: "LOGS_R2", prefix: a, level: "error" },
        { name: b, type: "r2", binding: "LOGS_R2", prefix: b, level: "error" },
      ]),
      DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", statsShards: 1, ...delivery }),
    };
    return { a, b, environment };
  };

  it("make a handful of counters RPCs, rows bounded by sinks × minutes, every record counted", async () => {
    const { a, b, environment } = setup({ statsFlushMs: 1_000 });
    await withTables();
    const before = counterFlushCost();
    await tails(environment, 1_000, (i) => traceItem({ path: `/n/${i}` }));
    const after = counterFlushCost();
    const flushes = after.flushes - before.flushes;
    const rows = after.rowsWritten - before.rowsWritten;
    // The window is 1 s; on a slow machine the 1,000 may straddle a few windows, never hundreds.
    expect(flushes).toBeGreaterThanOrEqual(1);
    expect(flushes).toBeLessThanOrEqual(10);
    expect(rows).toBeLessThanOrEqual(flushes * rowsPerFlush({ errors: false }));
    const { sinks } = await readCounters(environment, "TAILFAN_STATS", 1, 60, 20);
    // 1,000 invocations of 2 records each (invocation and log line), all filtered out by level.
    expect(sinkOf(sinks, a)?.totals.droppedFilter).toBe(2_000);
    expect(sinkOf(sinks, b)?.totals.droppedFilter).toBe(2_000);
  });

  it("for comparison, a write per invocation (statsFlushMs 0) makes one RPC and 3 rows each", async () => {
    const { a, environment } = setup({ statsFlushMs: 0 });
    await withTables();
    const before = counterFlushCost();
    for (let i = 0; i < 100; i++) await tails(environment, 1, () => traceItem({ path: `/n/${i}` }));
    const after = counterFlushCost();
    expect(after.flushes - before.flushes).toBe(100);
    // Per invocation the minute's row, the totals row and a page of latest records: as many rows as a window's write.
    expect(after.rowsWritten - before.rowsWritten).toBe(100 * rowsPerFlush({ errors: false }));
    const { sinks } = await readCounters(environment, "TAILFAN_STATS", 1, 60, 20);
    expect(sinkOf(sinks, a)?.totals.droppedFilter).toBe(200);
  });

  it("only the window's opener waits for the write; a later tail() adds its counts and is done at once", async () => {
    const { a, environment } = setup({ statsFlushMs: 3_000 });
    const before = counterFlushCost().flushes;
    const opener = createExecutionContext();
    runTail([traceItem({ path: "/opener" })], environment, opener);
    // Let the opener reach the window before the second invocation starts.
    while (!pendingWindow("TAILFAN_STATS")) await new Promise((r) => setTimeout(r, 20));
    const later = createExecutionContext();
    runTail([traceItem({ path: "/later" })], environment, later);
    await waitOnExecutionContext(later);
    // The later invocation is done while the window is still open: nothing written yet.
    expect(counterFlushCost().flushes).toBe(before);
    await waitOnExecutionContext(opener);
    expect(counterFlushCost().flushes).toBe(before + 1);
    const { sinks } = await readCounters(environment, "TAILFAN_STATS", 1, 60, 20);
    expect(sinkOf(sinks, a)?.totals.droppedFilter).toBe(4);
  });

  it("keep the invariant exact across windows, with real deliveries", async () => {
    const sink = uid("scale-exact");
    const environment = {
      ...vars,
      SINKS: JSON.stringify([{ name: sink, type: "r2", binding: "LOGS_R2", prefix: sink }]),
      DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", statsShards: 3, statsFlushMs: 200 }),
    };
    for (let round = 0; round < 3; round++) await tails(environment, 50, (i) => traceItem({ path: `/r/${i}` }));
    const { sinks, missing } = await readCounters(environment, "TAILFAN_STATS", 3, 60, 20);
    expect(missing).toEqual([]);
    const s = sinkOf(sinks, sink);
    expect(s?.totals.received).toBe(300);
    expect(s?.totals.sent).toBe(300);
    expect(s?.unaccounted).toBe(0);
  });
});

describe("buffered mode: one consumer batch", () => {
  it("writes rows bounded by sinks, not by records (the latest records are a sample)", async () => {
    const sink = uid("scale-queue");
    const environment = {
      ...vars,
      SINKS: JSON.stringify([{ name: sink, type: "r2", binding: "LOGS_R2", prefix: sink }]),
      DELIVERY: JSON.stringify({
        mode: "buffered",
        queue: "TAILFAN_QUEUE",
        stats: "TAILFAN_STATS",
        statsShards: 1,
        statsFlushMs: 0,
      }),
    };
    const items = serialized(Array.from({ length: 100 }, (_, i) => traceItem({ path: `/q/${i}` })));
    const bodies = toMessages({ v: 1, kind: "records", at: Date.now() }, items).bodies;
    const batch = createMessageBatch(
      "tailfan-work",
      bodies.map((body, i) => ({ id: `${sink}-${i}`, timestamp: new Date(), attempts: 1, body })),
    );
    await withTables();
    const before = counterFlushCost();
    await runQueue(batch, environment);
    const after = counterFlushCost();
    expect(after.flushes - before.flushes).toBe(1);
    // The old write kept every record of the batch and trimmed as many: about 600 rows.
    expect(after.rowsWritten - before.rowsWritten).toBe(rowsPerFlush({ errors: false }));
    const { sinks } = await readCounters(environment, "TAILFAN_STATS", 1, 60, 20);
    expect(sinkOf(sinks, sink)?.totals).toMatchObject({ received: 200, sent: 200 });
  });
});

describe("latest records: a sample per write", () => {
  it("keeps at most RECENT_PER_FLUSH records of a write, warn and error first", async () => {
    const script = uid("sample");
    const batch = new StatsBatch();
    const records = [
      ...Array.from({ length: 10 }, (_, i) => ({ level: "info", message: `quiet ${i}` })),
      { level: "error", message: "loud 1" },
      ...Array.from({ length: 10 }, (_, i) => ({ level: "info", message: `quiet ${10 + i}` })),
      { level: "warn", message: "loud 2" },
    ];
    for (const [i, r] of records.entries()) {
      batch.see(
        {
          id: `${script}-${i}`,
          timestamp: i,
          type: "log",
          level: r.level,
          outcome: "ok",
          scriptName: script,
          eventType: "fetch",
          message: r.message,
        } as never,
        null,
        [],
        200,
      );
    }
    // Both loud ones, then the newest others to fill the sample; oldest first.
    expect(batch.recent().map((r) => r.message)).toEqual(["loud 1", "quiet 17", "quiet 18", "quiet 19", "loud 2"]);
  });
});

describe("shards", () => {
  it("an isolate writes to one shard; reads sum every shard", async () => {
    const sink = uid("shards-sum");
    for (let shard = 0; shard < 4; shard++) {
      await statsStub(vars, "TAILFAN_STATS", shard).add([
        { sink, counts: { received: 10 * (shard + 1), sent: 10 * (shard + 1), requests: 1 } },
      ]);
    }
    const { sinks, missing } = await readCounters(vars, "TAILFAN_STATS", 4, 60, 20);
    expect(missing).toEqual([]);
    expect(sinkOf(sinks, sink)).toMatchObject({ totals: { received: 100, sent: 100, requests: 4 }, unaccounted: 0 });
    expect(sinkOf(sinks, sink)?.windows["5m"]).toMatchObject({ received: 100 });
    expect(sinkOf(sinks, sink)?.minutes.reduce((n, m) => n + m.received, 0)).toBe(100);

    // The same sums through GET /status.
    const environment = {
      ...vars,
      ADMIN_TOKEN: ADMIN,
      DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", statsShards: 4 }),
    };
    const res = await worker.fetch(
      new Request("https://tailfan.test/status", { headers: { authorization: `Bearer ${ADMIN}` } }),
      environment as never,
      createExecutionContext(),
    );
    const body = (await res.json()) as { counters: string; sinks: SinkStats[]; countersExact: { exact: boolean } };
    expect(body.counters).toBe("kept");
    expect(sinkOf(body.sinks, sink)?.totals).toMatchObject({ received: 100, sent: 100 });
  });

  it("a shard that does not answer is named, in /status, /records and the dashboard, never summed silently", async () => {
    const sink = uid("shards-missing");
    for (let shard = 0; shard < 3; shard++) {
      await statsStub(vars, "TAILFAN_STATS", shard).add([{ sink, counts: { received: 5, sent: 5 } }]);
    }
    const ns = brokenShards(vars.TAILFAN_STATS as DurableObjectNamespace, (name, call) => {
      return call === "read" && name === shardName(2);
    });
    const environment = {
      ...vars,
      HALF_STATS: ns,
      ADMIN_TOKEN: ADMIN,
      DELIVERY: JSON.stringify({ stats: "HALF_STATS", statsShards: 3 }),
    };
    const { sinks, missing } = await readCounters(environment, "HALF_STATS", 3, 60, 20);
    expect(missing).toEqual([{ shard: 2, error: "tailfan-2 is down" }]);
    expect(sinkOf(sinks, sink)?.totals.received).toBe(10);

    const get = (path: string) =>
      worker.fetch(
        new Request(`https://tailfan.test${path}`, { headers: { authorization: `Bearer ${ADMIN}` } }),
        environment as never,
        createExecutionContext(),
      );
    const res = await get("/status");
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      counters: string;
      countersExact: { exact: boolean; missingShards: number[] };
    };
    expect(body.counters).toMatch(/^incomplete: the counts of 1 of 3 counters shard\(s\) are missing \(shard 2: /);
    expect(body.countersExact).toMatchObject({ exact: false, missingShards: [2] });
    const records = (await (await get("/records")).json()) as { missing: { shard: number }[] };
    expect(records.missing.map((m) => m.shard)).toEqual([2]);
    const html = await (await get("/")).text();
    expect(html).toContain("Counters incomplete: the counts of 1 of 3 counters shard(s) are missing");
  });
});

describe("failed writes: carried, then given up and reported as lost", () => {
  it("a failed flush's deltas ride along with the next one: nothing missing", async () => {
    const sink = uid("carry");
    let failing = true;
    const ns = brokenShards(vars.TAILFAN_STATS as DurableObjectNamespace, (_, call) => call === "add" && failing);
    const environment = { ...vars, FLAKY_STATS: ns };
    const delivery = { stats: "FLAKY_STATS", statsFlushMs: 0, statsShards: 1 };
    const one = () => {
      const b = new StatsBatch();
      b.add(sink, "received", 7);
      b.add(sink, "sent", 7);
      return b;
    };
    await recordStats(environment, delivery, one());
    expect(counterFlushFailures().held).toBeGreaterThanOrEqual(7);
    failing = false;
    await recordStats(environment, delivery, one());
    const { sinks } = await readCounters(environment, "FLAKY_STATS", 1, 60, 20);
    expect(sinkOf(sinks, sink)).toMatchObject({ totals: { received: 14, sent: 14 }, unaccounted: 0 });
    expect(sinkOf(sinks, sink)?.lost.received).toBe(0);
  });

  it(`after ${FLUSH_TRIES} failed flushes the deltas are given up, counted as lost and shown by /status`, async () => {
    const sink = uid("lost");
    let failing = true;
    const ns = brokenShards(vars.TAILFAN_STATS as DurableObjectNamespace, (_, call) => call === "add" && failing);
    const environment = {
      ...vars,
      LOSSY_STATS: ns,
      ADMIN_TOKEN: ADMIN,
      DELIVERY: JSON.stringify({ stats: "LOSSY_STATS", statsShards: 1 }),
    };
    const delivery = { stats: "LOSSY_STATS", statsFlushMs: 0, statsShards: 1 };
    const lostBefore = counterFlushFailures().lost;
    for (let i = 0; i < FLUSH_TRIES; i++) {
      const b = new StatsBatch();
      b.add(sink, "received", 4);
      b.add(sink, "sent", 4);
      await recordStats(environment, delivery, b);
    }
    expect(counterFlushFailures().lost - lostBefore).toBe(4 * FLUSH_TRIES);
    failing = false;
    const last = new StatsBatch();
    last.add(sink, "received", 1);
    last.add(sink, "sent", 1);
    await recordStats(environment, delivery, last);
    const res = await worker.fetch(
      new Request("https://tailfan.test/status", { headers: { authorization: `Bearer ${ADMIN}` } }),
      environment as never,
      createExecutionContext(),
    );
    const body = (await res.json()) as {
      sinks: SinkStats[];
      countersExact: { exact: boolean; lostRecords: number };
      counterWrites: { lost: number };
    };
    const s = sinkOf(body.sinks, sink);
    // What was written adds up; what was given up is said, not hidden behind unaccounted: 0.
    expect(s?.totals).toMatchObject({ received: 1, sent: 1 });
    expect(s?.lost).toMatchObject({ received: 4 * FLUSH_TRIES, sent: 4 * FLUSH_TRIES });
    expect(body.countersExact.exact).toBe(false);
    expect(body.countersExact.lostRecords).toBeGreaterThanOrEqual(4 * FLUSH_TRIES);
    expect(body.counterWrites.lost).toBeGreaterThanOrEqual(4 * FLUSH_TRIES);
  });

  it("the object reports the rows each write made", async () => {
    await withTables();
    const stub = statsStub(vars, "TAILFAN_STATS", 0);
    const deltas: SinkDelta[] = [
      { sink: uid("rows-a"), counts: { received: 1 } },
      { sink: uid("rows-b"), counts: { received: 2 } },
    ];
    // Two sinks, one minute's row and one totals row for both (no index entry beside them: the key is the rowid).
    expect(await stub.add(deltas)).toEqual({ rowsWritten: 2 });
  });

  it("flushStats still writes at once to shard 0", async () => {
    const sink = uid("at-once");
    const b = new StatsBatch();
    b.add(sink, "received", 2);
    await flushStats(vars, "TAILFAN_STATS", b);
    const { sinks } = await readCounters(vars, "TAILFAN_STATS", 1, 60, 20);
    expect(sinkOf(sinks, sink)?.totals.received).toBe(2);
  });
});
