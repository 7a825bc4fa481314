/**
 * The counters: StatsBatch in memory, TailfanStats as the real SQLite-backed
 * Durable Object (through the TAILFAN_STATS binding and RPC), and flushStats.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { normalizeTraceItems } from "../../src/normalize";
import {
  COUNTERS,
  ERRORS_KEPT,
  flushStats,
  type RecentAnswer,
  type RecentRecord,
  type SinkDelta,
  type SinkStats,
  StatsBatch,
  zeroCounts,
} from "../../src/stats";
import { TailfanStats } from "../../src/stats/object";
import { traceItem, uid } from "../sinks/helpers";

const vars = env as unknown as Record<string, unknown>;

/** A stats object of its own for one test. */
function freshStats() {
  return env.TAILFAN_STATS.get(env.TAILFAN_STATS.idFromName(uid("stats")));
}

async function snapshot(stub: ReturnType<typeof freshStats>, window?: number): Promise<SinkStats[]> {
  return (await stub.snapshot(window)) as SinkStats[];
}

const minuteOf = (ms: number) => Math.floor(ms / 60_000) * 60_000;

let errors: MockInstance<typeof console.error>;
beforeEach(() => {
  errors = vi.spyOn(console, "error").mockImplementation(() => {});
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("StatsBatch", () => {
  it("adds up deltas per sink and counter, ignoring zeros", () => {
    const b = new StatsBatch();
    b.add("a", "received", 3);
    b.add("a", "received", 2);
    b.add("a", "pending", 4);
    b.add("a", "pending", -1);
    b.add("b", "sent", 0);
    expect(b.size).toBe(1);
    b.add("b", "failed", 1);
    expect(b.list()).toEqual([
      { sink: "a", counts: { received: 5, pending: 3 } },
      { sink: "b", counts: { failed: 1 } },
    ]);
    expect(b.size).toBe(2);
  });

  it("keeps the last error per sink, with its status when there is one", () => {
    const b = new StatsBatch();
    b.error("a", "HTTP 503: down", 503, 10);
    b.error("a", "timed out after 5000 ms", undefined, 20);
    b.error("b", "HTTP 400: bad", 400, 30);
    expect(b.list()).toEqual([
      { sink: "a", counts: {}, lastError: { at: 20, message: "timed out after 5000 ms" } },
      { sink: "b", counts: {}, lastError: { at: 30, message: "HTTP 400: bad", status: 400 } },
    ]);
  });

  it("zeroCounts has every counter at 0", () => {
    expect(zeroCounts()).toEqual(Object.fromEntries(COUNTERS.map((c) => [c, 0])));
  });
});

describe("TailfanStats (the real Durable Object, over RPC)", () => {
  it("adds deltas up across calls and computes unaccounted per sink", async () => {
    const stub = freshStats();
    await stub.add([{ sink: "a", counts: { received: 5, sent: 3, bytes: 300, requests: 1 } }]);
    await stub.add([
      { sink: "a", counts: { sent: 1, pending: 1, droppedFilter: 7 } },
      { sink: "b", counts: { received: 10, sent: 6, deadLettered: 1 } },
    ]);
    await stub.add([{ sink: "a", counts: { pending: -1, deadLettered: 1 } }]);
    const stats = await snapshot(stub);
    expect(stats.map((s) => s.sink)).toEqual(["a", "b"]);
    const [a, b] = stats;
    expect(a?.totals).toEqual({
      ...zeroCounts(),
      received: 5,
      sent: 4,
      deadLettered: 1,
      droppedFilter: 7,
      bytes: 300,
      requests: 1,
    });
    expect(a?.unaccounted).toBe(0);
    // received − (sent + droppedLimit + deadLettered + failed + pending) = 10 − 7
    expect(b?.unaccounted).toBe(3);
    expect(a?.lastError).toBeNull();
  });

  it("keeps per-minute rows: one row per minute with that minute's sums, oldest first", async () => {
    const stub = freshStats();
    const t0 = Date.UTC(2030, 0, 2, 3, 4, 5);
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(t0);
    await stub.add([{ sink: "m", counts: { received: 2, sent: 2 } }]);
    await stub.add([{ sink: "m", counts: { received: 1, failed: 1 } }]);
    vi.setSystemTime(t0 + 60_000);
    await stub.add([{ sink: "m", counts: { received: 4, sent: 4 } }]);
    vi.setSystemTime(t0 + 3 * 60_000);
    await stub.add([{ sink: "m", counts: { received: 1, pending: 1 } }]);
    const [m] = await snapshot(stub, 60);
    expect(m?.minutes).toEqual([
      { ...zeroCounts(), minute: minuteOf(t0), received: 3, sent: 2, failed: 1 },
      { ...zeroCounts(), minute: minuteOf(t0) + 60_000, received: 4, sent: 4 },
      { ...zeroCounts(), minute: minuteOf(t0) + 180_000, received: 1, pending: 1 },
    ]);
    expect(m?.totals).toMatchObject({ received: 8, sent: 6, failed: 1, pending: 1 });

    // A shorter window leaves the older minutes out of `minutes`, never out of the totals.
    const [recent] = await snapshot(stub, 1);
    expect(recent?.minutes.map((x) => x.minute)).toEqual([minuteOf(t0) + 180_000]);
    expect(recent?.totals).toEqual(m?.totals);
  });

  it("forgets per-minute rows older than 7 days, and keeps the totals", async () => {
    const stub = freshStats();
    const t0 = Date.UTC(2030, 5, 1, 0, 0, 0);
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(t0);
    await stub.add([{ sink: "old", counts: { received: 1, sent: 1 } }]);
    vi.setSystemTime(t0 + 7 * 24 * 3_600_000 + 60_000);
    await stub.add([{ sink: "old", counts: { received: 1, sent: 1 } }]);
    // One row per minute, every sink's counts in it: the first minute's row is gone.
    const rows = await runInDurableObject(stub, (_instance, state) =>
      state.storage.sql.exec("SELECT minute, sinks FROM counter_minutes ORDER BY minute").toArray(),
    );
    expect(rows.map((r) => Number(r.minute) * 60_000)).toEqual([minuteOf(t0) + 7 * 24 * 3_600_000 + 60_000]);
    expect(JSON.parse(String(rows[0]?.sinks))).toEqual({ old: { received: 1, sent: 1 } });
    const [old] = await snapshot(stub, 7 * 24 * 60);
    expect(old?.totals).toMatchObject({ received: 2, sent: 2 });
  });

  it("migrates tables made by an older version that lack a newer counter, keeping their counts", async () => {
    const stub = freshStats();
    await runInDurableObject(stub, (_instance, state) => {
      const older = COUNTERS.filter((c) => c !== "droppedSample")
        .map((c) => `"${c}" INTEGER NOT NULL DEFAULT 0`)
        .join(", ");
      for (const t of ["minutes", "totals", "lost"]) state.storage.sql.exec(`DROP TABLE IF EXISTS ${t}`);
      state.storage.sql.exec(
        `CREATE TABLE minutes (sink TEXT NOT NULL, minute INTEGER NOT NULL, ${older}, PRIMARY KEY (sink, minute))`,
      );
      state.storage.sql.exec(`CREATE TABLE totals (sink TEXT PRIMARY KEY, ${older})`);
      state.storage.sql.exec(`CREATE TABLE lost (sink TEXT PRIMARY KEY, ${older})`);
      state.storage.sql.exec(`INSERT INTO totals (sink, "received", "sent") VALUES ('old', 3, 3)`);
      // What a new version's object does when it starts on that storage.
      const upgraded = new TailfanStats(state, env);
      upgraded.add([{ sink: "old", counts: { received: 1, sent: 1, droppedSample: 4 } }]);
    });
    const [old] = await snapshot(stub);
    expect(old?.totals).toMatchObject({ received: 4, sent: 4, droppedSample: 4 });
  });

  it("keeps each sink's last error with its time and status; a later one replaces it", async () => {
    const stub = freshStats();
    await stub.add([
      { sink: "e", counts: { failed: 1 }, lastError: { at: 100, message: "HTTP 503: down", status: 503 } },
    ]);
    expect((await snapshot(stub))[0]?.lastError).toEqual({ at: 100, message: "HTTP 503: down", status: 503 });
    // A delta without an error leaves the last one in place.
    await stub.add([{ sink: "e", counts: { sent: 1 } }]);
    expect((await snapshot(stub))[0]?.lastError).toEqual({ at: 100, message: "HTTP 503: down", status: 503 });
    await stub.add([{ sink: "e", counts: {}, lastError: { at: 200, message: "x".repeat(5_000) } }]);
    const lastError = (await snapshot(stub))[0]?.lastError;
    expect(lastError).toEqual({ at: 200, message: "x".repeat(1_000), status: null });
  });

  it("keeps the latest ERRORS_KEPT errors of all sinks, newest first", async () => {
    const stub = freshStats();
    for (let i = 0; i < ERRORS_KEPT + 5; i++) {
      await stub.add([
        {
          sink: i % 2 ? "odd" : "even",
          counts: { failed: 1 },
          lastError: { at: i, message: `error ${i}`, status: 500 },
        },
        // A delta without an error adds nothing to the list.
        { sink: "quiet", counts: { sent: 1 } },
      ]);
    }
    const all = await stub.errors(1_000);
    expect(all).toHaveLength(ERRORS_KEPT);
    expect(all[0]).toEqual({ sink: "even", at: ERRORS_KEPT + 4, message: `error ${ERRORS_KEPT + 4}`, status: 500 });
    expect(all.at(-1)?.message).toBe("error 5");
    expect((await stub.errors(3)).map((e) => e.at)).toEqual([ERRORS_KEPT + 4, ERRORS_KEPT + 3, ERRORS_KEPT + 2]);
    expect(await freshStats().errors()).toEqual([]);
  });

  it("sums the 5-minute, hour and day windows per sink", async () => {
    const stub = freshStats();
    await stub.add([{ sink: "w", counts: { received: 2, sent: 2 } }]);
    const [w] = await snapshot(stub);
    for (const window of ["5m", "1h", "24h"] as const) {
      expect(w?.windows[window]).toEqual({ ...zeroCounts(), received: 2, sent: 2 });
    }
  });

  it("an empty object answers an empty list", async () => {
    expect(await snapshot(freshStats())).toEqual([]);
  });
});

describe("flushStats", () => {
  /** A namespace that counts the stubs it hands out and their add() calls, forwarding both to the real binding. */
  function countingNamespace(real: DurableObjectNamespace) {
    const seen = { gets: 0, adds: [] as SinkDelta[][], recent: [] as RecentRecord[][] };
    const ns = {
      idFromName: (name: string) => real.idFromName(name),
      get: (id: DurableObjectId) => {
        seen.gets++;
        const stub = real.get(id) as unknown as {
          add(d: SinkDelta[], r?: RecentRecord[], keep?: number): Promise<void>;
        };
        return {
          add: (deltas: SinkDelta[], recent: RecentRecord[] = [], keep = 0) => {
            seen.adds.push(deltas);
            seen.recent.push(recent);
            return stub.add(deltas, recent, keep);
          },
        };
      },
    };
    return { ns, seen };
  }

  it("writes a whole batch with exactly one RPC to the deployment's stats object", async () => {
    const { ns, seen } = countingNamespace(env.TAILFAN_STATS as unknown as DurableObjectNamespace);
    const [a, b] = [uid("flush-a"), uid("flush-b")];
    const batch = new StatsBatch();
    batch.add(a, "received", 3);
    batch.add(a, "sent", 3);
    batch.add(b, "received", 2);
    batch.add(b, "failed", 2);
    batch.error(b, "HTTP 500: oops", 500, 1_000);
    await flushStats({ ...vars, COUNTING_STATS: ns }, "COUNTING_STATS", batch);
    expect(seen.gets).toBe(1);
    expect(seen.adds).toEqual([batch.list()]);
    const stub = env.TAILFAN_STATS.get(env.TAILFAN_STATS.idFromName("tailfan"));
    const all = (await stub.snapshot()) as SinkStats[];
    expect(all.find((s) => s.sink === a)?.totals).toMatchObject({ received: 3, sent: 3 });
    expect(all.find((s) => s.sink === b)).toMatchObject({
      totals: { received: 2, failed: 2 },
      lastError: { at: 1_000, message: "HTTP 500: oops", status: 500 },
      unaccounted: 0,
    });
    expect(errors).not.toHaveBeenCalled();
  });

  it("sends the latest records in the same one RPC, the last `keep` of them, messages and lines cut", async () => {
    const { ns, seen } = countingNamespace(env.TAILFAN_STATS as unknown as DurableObjectNamespace);
    const script = uid("flush-recent");
    const records = normalizeTraceItems([
      traceItem({
        script,
        logs: [
          { level: "log", message: ["x".repeat(400)] },
          { level: "log", message: ["y".repeat(20_000)] },
          { level: "warn", message: ["short"] },
        ],
      }),
    ]);
    const batch = new StatsBatch();
    batch.add("r", "received", records.length);
    for (const r of records) batch.see(r, null, ["r"], 3);
    await flushStats({ ...vars, COUNTING_STATS: ns }, "COUNTING_STATS", batch);
    expect(seen.gets).toBe(1);
    expect(seen.recent).toHaveLength(1);
    // 4 records (an invocation and three lines), the last 3 kept.
    expect(seen.recent[0]?.map((r) => r.id)).toEqual(records.slice(1).map((r) => r.id));
    const stub = env.TAILFAN_STATS.get(env.TAILFAN_STATS.idFromName("tailfan"));
    const { records: kept } = (await stub.recent({ script, limit: 10 })) as RecentAnswer;
    expect(kept.map((r) => r.level)).toEqual(["warn", "log", "log"]);
    const [short, long, cut] = kept;
    expect(short?.line).toBe(JSON.stringify(records[3]));
    // Over 16 KiB of JSON: listed, without the record itself.
    expect(long?.line).toBeNull();
    expect(long?.message).toHaveLength(301);
    // The message is cut at 300 characters, marked with an ellipsis.
    expect(cut?.message).toBe(`${"x".repeat(300)}…`);
    expect(JSON.parse(cut?.line ?? "{}").message).toBe("x".repeat(400));
  });

  it('finds records without a script with script ""', async () => {
    const stub = freshStats();
    const records = normalizeTraceItems([traceItem({ script: "named" }), { ...traceItem(), scriptName: null }]);
    const batch = new StatsBatch();
    for (const r of records) batch.see(r, null, [], 10);
    await stub.add([], batch.recent(), 10);
    const answer = (await stub.recent({ script: "" })) as RecentAnswer;
    // The second invocation: its invocation record and its log line, newest first.
    expect(answer.records.map((r) => r.script)).toEqual([null, null]);
    expect(answer.records.map((r) => r.id)).toEqual(
      records
        .slice(2)
        .reverse()
        .map((r) => r.id),
    );
    expect(answer.scripts).toEqual([null, "named"]);
  });

  it("makes no call without a binding or without deltas", async () => {
    const { ns, seen } = countingNamespace(env.TAILFAN_STATS as unknown as DurableObjectNamespace);
    const full = new StatsBatch();
    full.add("x", "sent", 1);
    await flushStats({ ...vars, COUNTING_STATS: ns }, null, full);
    await flushStats({ ...vars, COUNTING_STATS: ns }, "COUNTING_STATS", new StatsBatch());
    expect(seen).toEqual({ gets: 0, adds: [], recent: [] });
  });

  it("swallows a failure and logs it: the binding is missing", async () => {
    const batch = new StatsBatch();
    batch.add("f", "sent", 1);
    await expect(flushStats(vars, "NO_SUCH_STATS", batch)).resolves.toBeUndefined();
    expect(errors).toHaveBeenCalledTimes(1);
    expect(String(errors.mock.calls[0]?.[0])).toMatch(/^tailfan: could not write counters to NO_SUCH_STATS: .+/);
  });

  it("swallows a failure and logs it: the binding is not a Durable Object namespace", async () => {
    const batch = new StatsBatch();
    batch.add("g", "sent", 1);
    await expect(flushStats(vars, "LOGS_KV", batch)).resolves.toBeUndefined();
    expect(String(errors.mock.calls[0]?.[0])).toMatch(/^tailfan: could not write counters to LOGS_KV: /);
  });
});
