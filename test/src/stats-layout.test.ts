/**
 * How the counters object stores what a flush brings, on the real SQLite
 * Durable Object: a few rows per flush whatever the number of sinks and
 * records (as `cursor.rowsWritten` counts them), the latest records as a
 * ring of pages that answers as the old ring of rows did, and the tables of
 * earlier versions folded into this layout on first start.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  COUNTERS,
  RECENT_PER_FLUSH,
  type RecentAnswer,
  type RecentQuery,
  type RecentRecord,
  type SinkDelta,
  type SinkError,
  type SinkStats,
  TailfanStats,
  zeroCounts,
} from "../../src/stats";
import { uid } from "../sinks/helpers";

afterEach(() => {
  vi.useRealTimers();
});

function freshStats() {
  return env.TAILFAN_STATS.get(env.TAILFAN_STATS.idFromName(uid("layout")));
}

/** The names of an object's tables. */
function tables(stub: ReturnType<typeof freshStats>): Promise<string[]> {
  return runInDurableObject(stub, (_instance, state) =>
    state.storage.sql
      .exec("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .toArray()
      .map((r) => String(r.name))
      .filter((name) => !name.startsWith("_cf") && name !== "sqlite_sequence"),
  );
}

/** A fresh object whose tables its first write created (once in its life): what the rows of later writes are measured on. */
async function createdStats() {
  const stub = freshStats();
  await stub.add([{ sink: "first", counts: { requests: 1 } }]);
  return stub;
}

const LEVEL_CYCLE = ["debug", "info", "log", "warn", "error", "fatal"] as const;
const RANK: Record<string, number> = { debug: 0, info: 1, log: 1, warn: 2, error: 3, fatal: 1 };

/** A latest record; `i` varies every field the filters and menus look at. */
function record(i: number, tag = "r"): RecentRecord {
  return {
    id: `${tag}-${i}`,
    at: 1_000 + i,
    type: i % 3 === 0 ? "invocation" : "log",
    level: LEVEL_CYCLE[i % LEVEL_CYCLE.length] ?? "log",
    outcome: i % 4 === 0 ? "exception" : "ok",
    script: i % 5 === 0 ? null : `script-${i % 2}`,
    eventType: "fetch",
    status: i % 2 === 0 ? 200 : null,
    message: `message ${i}`,
    sinks: i % 3 === 0 ? [] : ["a", "b"],
    line: i % 7 === 0 ? null : JSON.stringify({ id: `${tag}-${i}`, pad: "x".repeat(i % 11) }),
  };
}

function deltas(sinks: number, errors: number): SinkDelta[] {
  return Array.from({ length: sinks }, (_, i) => ({
    sink: `sink-${i}`,
    counts: { received: 10 + i, sent: 9 + i, failed: 1, requests: 2, bytes: 1_000 },
    ...(i < errors ? { lastError: { at: 5_000 + i, message: `HTTP 503: sink ${i} down`, status: 503 } } : {}),
  }));
}

async function pages(stub: ReturnType<typeof freshStats>): Promise<number> {
  return runInDurableObject(stub, (_instance, state) =>
    Number(state.storage.sql.exec("SELECT COUNT(*) AS n FROM recent_pages").one().n),
  );
}

describe("rows written per flush", () => {
  it("an object's first write creates its tables; an object only read creates none and answers empty", async () => {
    const read = freshStats();
    expect(await read.snapshot()).toEqual([]);
    expect(await read.errors()).toEqual([]);
    expect(await read.recent()).toEqual({ records: [], kept: 0, outcomes: [], scripts: [] });
    // A write with nothing in it creates nothing either.
    expect(await read.add([{ sink: "idle", counts: {} }], [record(1)], 0)).toEqual({ rowsWritten: 0 });
    expect(await tables(read)).toEqual([]);

    const written = freshStats();
    const first = await written.add([{ sink: "first", counts: { received: 1 } }]);
    expect(await tables(written)).toEqual(["counter_minutes", "counters", "recent_pages"]);
    // The tables' creation is counted with the write that made it, once: SQLite counts 2 schema rows per table.
    expect(first).toEqual({ rowsWritten: 3 * 2 + 2 });
    expect(await written.add([{ sink: "first", counts: { received: 1 } }])).toEqual({ rowsWritten: 2 });
    expect(((await written.snapshot()) as SinkStats[])[0]?.totals.received).toBe(2);
  });

  it("a flush of 4 sinks, 5 latest records and errors writes 4 rows (at most 6), 3 without errors", async () => {
    const stub = await createdStats();
    const sample = Array.from({ length: RECENT_PER_FLUSH }, (_, i) => record(i));
    // The minute's row, the totals row, the errors row and one page of latest records.
    const first = await stub.add(deltas(4, 2), sample, 200);
    expect(first.rowsWritten).toBeLessThanOrEqual(6);
    expect(first).toEqual({ rowsWritten: 4 });
    // The same rows rewritten, not more of them.
    expect(await stub.add(deltas(4, 4), sample, 200)).toEqual({ rowsWritten: 4 });
    expect(await stub.add(deltas(4, 0), sample, 200)).toEqual({ rowsWritten: 3 });
    // Nothing but counts: the minute's row and the totals row.
    expect(await stub.add(deltas(4, 0))).toEqual({ rowsWritten: 2 });
    const stats = (await stub.snapshot()) as SinkStats[];
    expect(stats.map((s) => s.sink)).toEqual(["first", "sink-0", "sink-1", "sink-2", "sink-3"]);
    expect(stats[4]?.totals).toMatchObject({ received: 52, sent: 48, failed: 4, requests: 8, bytes: 4_000 });
    expect(stats[4]?.lastError).toEqual({ at: 5_003, message: "HTTP 503: sink 3 down", status: 503 });
    expect(stats[4]?.minutes.reduce((n, m) => n + m.received, 0)).toBe(52);
    expect(((await stub.recent({ limit: 100 })) as RecentAnswer).kept).toBe(3 * RECENT_PER_FLUSH);
  });

  it("the rows do not grow with the number of sinks or errors", async () => {
    for (const sinks of [1, 4, 30]) {
      const stub = await createdStats();
      const sample = Array.from({ length: RECENT_PER_FLUSH }, (_, i) => record(i));
      expect(await stub.add(deltas(sinks, sinks), sample, 200)).toEqual({ rowsWritten: 4 });
      expect(await stub.add(deltas(sinks, sinks), sample, 200)).toEqual({ rowsWritten: 4 });
      expect(((await stub.snapshot()) as SinkStats[]).length).toBe(sinks + 1);
      expect(((await stub.errors(100)) as SinkError[]).length).toBe(2 * sinks);
    }
  });

  it("once the ring of pages is full, a flush rewrites its oldest page: one row, and no more pages than needed", async () => {
    const stub = await createdStats();
    const keep = 10;
    let n = 0;
    for (let flush = 0; flush < 12; flush++) {
      const sample = Array.from({ length: RECENT_PER_FLUSH }, () => record(n++));
      expect(await stub.add(deltas(2, 0), sample, keep)).toEqual({ rowsWritten: 3 });
    }
    // 10 records shown, 5 per page: two pages.
    expect(await pages(stub)).toBe(2);
    const answer = (await stub.recent({ limit: 100 })) as RecentAnswer;
    expect(answer.kept).toBe(keep);
    expect(answer.records.map((r) => r.id)).toEqual(Array.from({ length: keep }, (_, i) => `r-${n - 1 - i}`));
  });
});

/** What the old ring of rows answered: each write added its last `keep` records, then kept the newest `keep`. */
class ReferenceRing {
  records: RecentRecord[] = [];
  write(recent: RecentRecord[], keep: number): void {
    if (recent.length === 0 || keep <= 0) return;
    this.records = [...this.records, ...recent.slice(-keep)].slice(-keep);
  }
  answer(query: RecentQuery): RecentAnswer {
    const limit = Math.min(Math.max(Math.trunc(query.limit ?? 50) || 50, 1), 1_000);
    const newest = [...this.records].reverse();
    const wanted = newest.filter(
      (r) =>
        (!query.level || (RANK[r.level] ?? 1) >= (RANK[query.level] ?? 1)) &&
        (!query.outcome || r.outcome === query.outcome) &&
        (query.script === undefined || r.script === (query.script === "" ? null : query.script)) &&
        (!query.type || r.type === query.type),
    );
    const menu = <T extends string | null>(values: T[]) =>
      [...new Set(values)].sort((a, b) => (a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1));
    return {
      records: wanted.slice(0, limit),
      kept: this.records.length,
      outcomes: menu(this.records.map((r) => r.outcome)),
      scripts: menu(this.records.map((r) => r.script)),
    };
  }
}

describe("the ring of pages answers as the ring of rows did", () => {
  it("over writes of 0 to 12 records and a `keep` that changes, every query and menu alike", async () => {
    const stub = freshStats();
    const reference = new ReferenceRing();
    // A fixed pseudo-random sequence, so a failure replays.
    let seed = 12_345;
    const next = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % n;
    };
    const queries: RecentQuery[] = [
      { limit: 1_000 },
      { level: "warn", limit: 1_000 },
      { level: "debug", outcome: "exception" },
      { script: "", limit: 1_000 },
      { script: "script-1", type: "log", limit: 2 },
      { type: "invocation", level: "error", limit: 1_000 },
    ];
    // The writes, made on the object itself (no RPC per call, so the run is quick), then replayed on the reference.
    const writes: { sample: RecentRecord[]; keep: number }[] = [];
    let n = 0;
    let keep = 12;
    for (let write = 0; write < 120; write++) {
      if (next(10) === 0) keep = [1, 3, 8, 12, 20][next(5)] ?? 12;
      const size = next(4) === 0 ? next(13) : next(RECENT_PER_FLUSH + 1);
      writes.push({ sample: Array.from({ length: size }, () => record(n++)), keep });
    }
    const answers = await runInDurableObject(stub, (instance: TailfanStats, state) =>
      writes.map(({ sample, keep }) => {
        instance.add([], sample, keep);
        return {
          answers: queries.map((query) => instance.recent(query)),
          pages: Number(state.storage.sql.exec("SELECT COUNT(*) AS n FROM recent_pages").one().n),
        };
      }),
    );
    // A write without records trims nothing, as before: the bound is the `keep` of the last write that had some.
    let trimmedTo = 12;
    for (const [i, { sample, keep }] of writes.entries()) {
      reference.write(sample, keep);
      if (sample.length > 0) trimmedTo = keep;
      const got = answers[i];
      expect(got?.answers).toEqual(queries.map((query) => reference.answer(query)));
      // Never more pages than the records it shows could need.
      expect(got?.pages).toBeLessThanOrEqual(trimmedTo);
    }
    expect(reference.records.length).toBeGreaterThan(0);
  });

  it("an empty ring answers nothing; keep 0 writes no page", async () => {
    const stub = await createdStats();
    expect(await stub.recent()).toEqual({ records: [], kept: 0, outcomes: [], scripts: [] });
    expect(await stub.add([], [record(1)], 0)).toEqual({ rowsWritten: 0 });
    expect(await pages(stub)).toBe(0);
  });
});

/** The schema of earlier versions, as they created it: a row per sink, error and record. */
function oldSchema(sql: SqlStorage, counters: readonly string[]): void {
  const cols = counters.map((c) => `"${c}" INTEGER NOT NULL DEFAULT 0`).join(", ");
  sql.exec(`CREATE TABLE minutes (sink TEXT NOT NULL, minute INTEGER NOT NULL, ${cols}, PRIMARY KEY (sink, minute))`);
  sql.exec(`CREATE TABLE totals (sink TEXT PRIMARY KEY, ${cols})`);
  sql.exec(`CREATE TABLE lost (sink TEXT PRIMARY KEY, ${cols})`);
  sql.exec(
    "CREATE TABLE last_error (sink TEXT PRIMARY KEY, at INTEGER NOT NULL, message TEXT NOT NULL, status INTEGER)",
  );
  sql.exec(
    "CREATE TABLE errors (seq INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, at INTEGER NOT NULL, message TEXT NOT NULL, status INTEGER)",
  );
  sql.exec(
    "CREATE TABLE recent (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, at INTEGER NOT NULL, type TEXT NOT NULL, level TEXT NOT NULL, rank INTEGER NOT NULL, outcome TEXT NOT NULL, script TEXT, event_type TEXT NOT NULL, status INTEGER, message TEXT NOT NULL, sinks TEXT NOT NULL, line TEXT)",
  );
}

describe("migration from the tables of earlier versions", () => {
  it("folds minutes, totals, lost, errors and the latest records into the new layout, in one go, and drops the old tables", async () => {
    const t0 = Date.UTC(2031, 2, 3, 4, 5, 6);
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(t0);
    const now = Math.floor(t0 / 60_000);
    // The old tables had a column per counter of their time: the newest counter was not there yet.
    const oldCounters = COUNTERS.slice(0, -1);
    const newest = COUNTERS.at(-1) as string;
    const stub = freshStats();
    const sample = Array.from({ length: 7 }, (_, i) => record(i, "old"));
    const answers = await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      oldSchema(sql, oldCounters);
      const put = (table: string, key: Record<string, string | number>, counts: Record<string, number>) => {
        const names = [...Object.keys(key), ...Object.keys(counts)];
        sql.exec(
          `INSERT INTO ${table} (${names.map((c) => `"${c}"`).join(", ")}) VALUES (${names.map(() => "?").join(", ")})`,
          ...Object.values(key),
          ...Object.values(counts),
        );
      };
      put("minutes", { sink: "a", minute: now }, { received: 3, sent: 3 });
      put("minutes", { sink: "a", minute: now - 2 }, { received: 2, sent: 1, failed: 1 });
      put("minutes", { sink: "b", minute: now - 2 }, { received: 5, sent: 5 });
      put("minutes", { sink: "a", minute: now - 120 }, { received: 7, sent: 7 });
      put("minutes", { sink: "a", minute: now - 3_000 }, { received: 11, sent: 11 });
      put("totals", { sink: "a" }, { received: 23, sent: 22, failed: 1, bytes: 900 });
      put("totals", { sink: "b" }, { received: 5, sent: 5 });
      put("lost", { sink: "a" }, { received: 4, sent: 4 });
      put("lost", { sink: "gone" }, { received: 2, sent: 2 });
      sql.exec("INSERT INTO last_error (sink, at, message, status) VALUES ('a', 300, 'HTTP 503: down', 503)");
      sql.exec("INSERT INTO last_error (sink, at, message, status) VALUES ('b', 200, 'timed out', NULL)");
      for (const [sink, at, message, status] of [
        ["b", 200, "timed out", null],
        ["a", 250, "HTTP 500: oops", 500],
        ["a", 300, "HTTP 503: down", 503],
      ] as const) {
        sql.exec("INSERT INTO errors (sink, at, message, status) VALUES (?, ?, ?, ?)", sink, at, message, status);
      }
      for (const r of sample) {
        sql.exec(
          "INSERT INTO recent (id, at, type, level, rank, outcome, script, event_type, status, message, sinks, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          r.id,
          r.at,
          r.type,
          r.level,
          RANK[r.level] ?? 1,
          r.outcome,
          r.script,
          r.eventType,
          r.status,
          r.message,
          JSON.stringify(r.sinks),
          r.line,
        );
      }
      // The new code starting on this storage, as a deployed object does after an update.
      const migrated = new TailfanStats(state, {});
      const tables = sql
        .exec("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .toArray()
        .map((r) => String(r.name));
      // Starting again finds nothing left to fold and changes nothing.
      const again = new TailfanStats(state, {});
      return {
        tables,
        snapshot: migrated.snapshot(60),
        week: again.snapshot(7 * 24 * 60),
        errors: again.errors(10),
        recent: migrated.recent({ limit: 100 }),
        loud: again.recent({ level: "warn", script: "script-1" }),
        noScript: again.recent({ script: "" }),
      };
    });
    expect(answers.tables.filter((t) => !t.startsWith("_cf") && t !== "sqlite_sequence")).toEqual([
      "counter_minutes",
      "counters",
      "recent_pages",
    ]);
    const [a, b, gone] = answers.snapshot;
    expect(answers.snapshot.map((s) => s.sink)).toEqual(["a", "b", "gone"]);
    expect(a?.totals).toEqual({ ...zeroCounts(), received: 23, sent: 22, failed: 1, bytes: 900 });
    expect(a?.totals[newest as keyof SinkStats["totals"]]).toBe(0);
    expect(a?.unaccounted).toBe(0);
    expect(a?.lost).toEqual({ ...zeroCounts(), received: 4, sent: 4 });
    expect(a?.lastError).toEqual({ at: 300, message: "HTTP 503: down", status: 503 });
    expect(a?.minutes).toEqual([
      { ...zeroCounts(), minute: (now - 2) * 60_000, received: 2, sent: 1, failed: 1 },
      { ...zeroCounts(), minute: now * 60_000, received: 3, sent: 3 },
    ]);
    expect(a?.windows["5m"]).toEqual({ ...zeroCounts(), received: 5, sent: 4, failed: 1 });
    expect(a?.windows["1h"]).toEqual(a?.windows["5m"]);
    expect(a?.windows["24h"]).toEqual({ ...zeroCounts(), received: 12, sent: 11, failed: 1 });
    expect(b).toMatchObject({ totals: { received: 5, sent: 5 }, lastError: { at: 200, status: null } });
    expect(b?.windows["5m"]).toMatchObject({ received: 5 });
    expect(gone).toMatchObject({ totals: zeroCounts(), lost: { received: 2, sent: 2 }, lastError: null });
    expect(answers.week[0]?.minutes.map((m) => m.minute)).toEqual(
      [now - 3_000, now - 120, now - 2, now].map((m) => m * 60_000),
    );
    expect(answers.errors).toEqual([
      { sink: "a", at: 300, message: "HTTP 503: down", status: 503 },
      { sink: "a", at: 250, message: "HTTP 500: oops", status: 500 },
      { sink: "b", at: 200, message: "timed out", status: null },
    ]);
    const reference = new ReferenceRing();
    reference.write(sample, sample.length);
    expect(answers.recent).toEqual(reference.answer({ limit: 100 }));
    expect(answers.loud).toEqual(reference.answer({ level: "warn", script: "script-1" }));
    expect(answers.loud.records.length).toBeGreaterThan(0);
    expect(answers.noScript).toEqual(reference.answer({ script: "" }));

    // Over RPC, the migrated object goes on adding: counts, errors and records.
    const sampleAfter = [record(100, "new"), record(101, "new")];
    await stub.add(
      [{ sink: "a", counts: { received: 1, sent: 1 }, lastError: { at: 400, message: "HTTP 502: bad" } }],
      sampleAfter,
      5,
    );
    reference.write(sampleAfter, 5);
    const after = (await stub.snapshot(60)) as SinkStats[];
    expect(after[0]?.totals).toMatchObject({ received: 24, sent: 23 });
    expect(after[0]?.minutes.at(-1)).toMatchObject({ minute: now * 60_000, received: 4, sent: 4 });
    expect(after[0]?.lastError).toEqual({ at: 400, message: "HTTP 502: bad", status: null });
    expect(((await stub.errors(2)) as SinkError[]).map((e) => e.at)).toEqual([400, 300]);
    expect(await stub.recent({ limit: 100 })).toEqual(reference.answer({ limit: 100 }));
    expect(((await stub.recent({ limit: 100 })) as RecentAnswer).kept).toBe(5);
  });

  it("an object of earlier versions with empty tables starts empty, the old tables gone", async () => {
    const stub = freshStats();
    const result = await runInDurableObject(stub, (_instance, state) => {
      oldSchema(state.storage.sql, COUNTERS);
      const migrated = new TailfanStats(state, {});
      const old = state.storage.sql
        .exec("SELECT COUNT(*) AS n FROM sqlite_master WHERE name IN ('minutes', 'totals', 'recent', 'errors')")
        .one().n;
      return { old: Number(old), snapshot: migrated.snapshot(), recent: migrated.recent(), errors: migrated.errors() };
    });
    expect(result).toEqual({
      old: 0,
      snapshot: [],
      recent: { records: [], kept: 0, outcomes: [], scripts: [] },
      errors: [],
    });
  });
});
