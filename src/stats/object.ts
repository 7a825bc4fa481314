/**
 * Per-sink counters that outlive an isolate: a SQLite-backed Durable Object
 * (one of DELIVERY.statsShards), written by each isolate's flush with the
 * deltas of many invocations, read (all shards summed) by GET /status and
 * the dashboard.
 */
import { DurableObject } from "cloudflare:workers";
import { LEVELS, type Level, levelRank } from "../record";
import {
  COUNTERS,
  type Counts,
  type RecentAnswer,
  type RecentQuery,
  type RecentRecord,
  type SinkDelta,
  type SinkError,
  type SinkStats,
  STATS_WINDOWS,
  type StatsWindow,
  unaccountedOf,
  zeroCounts,
} from "./types";

/** A level's rank as routes use it; an unknown level ranks with `info`. */
function rankOf(level: string): number {
  return (LEVELS as readonly string[]).includes(level) ? levelRank(level as Level) : 1;
}

const KEEP_MINUTES = 7 * 24 * 60;
/** Delivery errors kept for the dashboard and GET /status. */
export const ERRORS_KEPT = 100;
const COLUMNS = COUNTERS.map((c) => `"${c}"`).join(", ");

/** Adds the counters a table made by an older version lacks (a new counter starts at 0). */
export function addCounterColumns(sql: SqlStorage, table: string): void {
  const have = new Set(sql.exec(`SELECT * FROM ${table} LIMIT 0`).columnNames);
  for (const c of COUNTERS) {
    if (!have.has(c)) sql.exec(`ALTER TABLE ${table} ADD COLUMN "${c}" INTEGER NOT NULL DEFAULT 0`);
  }
}

/** What one flush cost: SQLite rows written (billed per row). */
export interface FlushResult {
  rowsWritten: number;
}

export class TailfanStats extends DurableObject {
  private readonly sql: SqlStorage;
  private pruned = 0;
  private written = 0;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    this.sql = ctx.storage.sql;
    const cols = COUNTERS.map((c) => `"${c}" INTEGER NOT NULL DEFAULT 0`).join(", ");
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS minutes (sink TEXT NOT NULL, minute INTEGER NOT NULL, ${cols}, PRIMARY KEY (sink, minute))`,
    );
    this.sql.exec(`CREATE TABLE IF NOT EXISTS totals (sink TEXT PRIMARY KEY, ${cols})`);
    // Deltas an isolate gave up writing after failed flushes, written with its next successful one.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS lost (sink TEXT PRIMARY KEY, ${cols})`);
    for (const table of ["minutes", "totals", "lost"]) addCounterColumns(this.sql, table);
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS last_error (sink TEXT PRIMARY KEY, at INTEGER NOT NULL, message TEXT NOT NULL, status INTEGER)",
    );
    // Every sink's errors, newest kept: a ring buffer of ERRORS_KEPT rows.
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS errors (seq INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, at INTEGER NOT NULL, message TEXT NOT NULL, status INTEGER)",
    );
    // The latest records, a ring buffer: `seq` grows, the oldest rows beyond `keep` are deleted on each write.
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS recent (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, at INTEGER NOT NULL, type TEXT NOT NULL, level TEXT NOT NULL, rank INTEGER NOT NULL, outcome TEXT NOT NULL, script TEXT, event_type TEXT NOT NULL, status INTEGER, message TEXT NOT NULL, sinks TEXT NOT NULL, line TEXT)",
    );
  }

  /**
   * One flush: a row per sink in `minutes` and in `totals` (added with
   * ON CONFLICT DO UPDATE), the sampled latest records and the deltas given
   * up elsewhere (`lost`), all or nothing. Returns the rows it wrote.
   */
  add(deltas: SinkDelta[], recent: RecentRecord[] = [], keep = 0, lost: SinkDelta[] = []): FlushResult {
    this.written = 0;
    this.ctx.storage.transactionSync(() => this.write(deltas, recent, keep, lost));
    return { rowsWritten: this.written };
  }

  /** Runs one statement to its end and counts the rows it wrote. */
  private run(query: string, ...args: SqlStorageValue[]): SqlStorageCursor<Record<string, SqlStorageValue>> {
    const cursor = this.sql.exec(query, ...args);
    cursor.toArray();
    this.written += cursor.rowsWritten;
    return cursor;
  }

  private write(deltas: SinkDelta[], recent: RecentRecord[], keep: number, lost: SinkDelta[]): void {
    this.keepRecent(recent, keep);
    const minute = Math.floor(Date.now() / 60_000);
    const placeholders = COUNTERS.map(() => "?").join(", ");
    const update = COUNTERS.map((c) => `"${c}" = "${c}" + excluded."${c}"`).join(", ");
    for (const d of lost) {
      this.run(
        `INSERT INTO lost (sink, ${COLUMNS}) VALUES (?, ${placeholders}) ON CONFLICT (sink) DO UPDATE SET ${update}`,
        d.sink,
        ...COUNTERS.map((c) => d.counts[c] ?? 0),
      );
    }
    for (const d of deltas) {
      const values = COUNTERS.map((c) => d.counts[c] ?? 0);
      if (values.some((n) => n !== 0)) {
        this.run(
          `INSERT INTO minutes (sink, minute, ${COLUMNS}) VALUES (?, ?, ${placeholders}) ON CONFLICT (sink, minute) DO UPDATE SET ${update}`,
          d.sink,
          minute,
          ...values,
        );
        this.run(
          `INSERT INTO totals (sink, ${COLUMNS}) VALUES (?, ${placeholders}) ON CONFLICT (sink) DO UPDATE SET ${update}`,
          d.sink,
          ...values,
        );
      }
      if (d.lastError) {
        const row = [d.sink, d.lastError.at, d.lastError.message.slice(0, 1000), d.lastError.status ?? null];
        this.run("INSERT INTO errors (sink, at, message, status) VALUES (?, ?, ?, ?)", ...row);
        this.run(
          "INSERT INTO last_error (sink, at, message, status) VALUES (?, ?, ?, ?) ON CONFLICT (sink) DO UPDATE SET at = excluded.at, message = excluded.message, status = excluded.status",
          ...row,
        );
      }
    }
    if (deltas.some((d) => d.lastError)) this.trim("errors", ERRORS_KEPT);
    if (minute !== this.pruned) {
      this.pruned = minute;
      this.run("DELETE FROM minutes WHERE minute < ?", minute - KEEP_MINUTES);
    }
  }

  private keepRecent(recent: RecentRecord[], keep: number): void {
    if (recent.length === 0 || keep <= 0) return;
    for (const r of recent.slice(-keep)) {
      this.run(
        "INSERT INTO recent (id, at, type, level, rank, outcome, script, event_type, status, message, sinks, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        r.id,
        r.at,
        r.type,
        r.level,
        rankOf(r.level),
        r.outcome,
        r.script,
        r.eventType,
        r.status,
        r.message,
        JSON.stringify(r.sinks),
        r.line,
      );
    }
    this.trim("recent", keep);
  }

  /** Keeps the newest `keep` rows of a ring-buffer table. */
  private trim(table: "errors" | "recent", keep: number): void {
    // Deletes as many rows as the write added once the ring is full: bounded by the sample, not by the ring.
    const last = Number(this.sql.exec(`SELECT MAX(seq) AS seq FROM ${table}`).one().seq ?? 0);
    this.run(`DELETE FROM ${table} WHERE seq <= ?`, last - keep);
  }

  /** The latest delivery errors of every sink, newest first (one per sink and invocation at most). */
  errors(limit = 20): SinkError[] {
    const n = Math.min(Math.max(Math.trunc(limit) || 20, 1), ERRORS_KEPT);
    return [...this.sql.exec(`SELECT sink, at, message, status FROM errors ORDER BY seq DESC LIMIT ${n}`)].map(
      (row) => ({
        sink: String(row.sink),
        at: Number(row.at),
        message: String(row.message),
        status: row.status === null ? null : Number(row.status),
      }),
    );
  }

  /** The latest records, newest first, filtered; with the outcomes and scripts present, for filter menus. */
  recent(query: RecentQuery = {}): RecentAnswer {
    const where: string[] = [];
    const args: SqlStorageValue[] = [];
    if (query.level) {
      where.push("rank >= ?");
      args.push(rankOf(query.level));
    }
    if (query.outcome) {
      where.push("outcome = ?");
      args.push(query.outcome);
    }
    if (query.script !== undefined) {
      where.push(query.script === "" ? "script IS NULL" : "script = ?");
      if (query.script !== "") args.push(query.script);
    }
    if (query.type) {
      where.push("type = ?");
      args.push(query.type);
    }
    const limit = Math.min(Math.max(Math.trunc(query.limit ?? 50) || 50, 1), 1_000);
    const rows = this.sql.exec(
      `SELECT * FROM recent ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY seq DESC LIMIT ${limit}`,
      ...args,
    );
    const records: RecentRecord[] = [];
    for (const row of rows) {
      records.push({
        id: String(row.id),
        at: Number(row.at),
        type: String(row.type),
        level: String(row.level),
        outcome: String(row.outcome),
        script: row.script === null ? null : String(row.script),
        eventType: String(row.event_type),
        status: row.status === null ? null : Number(row.status),
        message: String(row.message),
        sinks: JSON.parse(String(row.sinks)) as string[],
        line: row.line === null ? null : String(row.line),
      });
    }
    const column = (name: string) => [...this.sql.exec(`SELECT DISTINCT ${name} AS v FROM recent ORDER BY v`)];
    return {
      records,
      kept: Number(this.sql.exec("SELECT COUNT(*) AS n FROM recent").one().n),
      outcomes: column("outcome").map((r) => String(r.v)),
      scripts: column("script").map((r) => (r.v === null ? null : String(r.v))),
    };
  }

  snapshot(windowMinutes = 60): SinkStats[] {
    const since = Math.floor(Date.now() / 60_000) - windowMinutes;
    const pick = (row: Record<string, SqlStorageValue>): Counts => {
      const out = zeroCounts();
      for (const c of COUNTERS) out[c] = Number(row[c] ?? 0);
      return out;
    };
    const stats = new Map<string, SinkStats>();
    const entry = (sink: string, totals: Counts): SinkStats => {
      const s: SinkStats = {
        sink,
        totals,
        minutes: [],
        lastError: null,
        lost: zeroCounts(),
        unaccounted: unaccountedOf(totals),
        windows: { "5m": zeroCounts(), "1h": zeroCounts(), "24h": zeroCounts() },
      };
      stats.set(sink, s);
      return s;
    };
    for (const row of this.sql.exec("SELECT * FROM totals ORDER BY sink")) entry(String(row.sink), pick(row));
    const current = Math.floor(Date.now() / 60_000);
    const sums = COUNTERS.map((c) => `SUM("${c}") AS "${c}"`).join(", ");
    for (const [name, minutes] of Object.entries(STATS_WINDOWS) as [StatsWindow, number][]) {
      for (const row of this.sql.exec(
        `SELECT sink, ${sums} FROM minutes WHERE minute > ? GROUP BY sink`,
        current - minutes,
      )) {
        const s = stats.get(String(row.sink));
        if (s) s.windows[name] = pick(row);
      }
    }
    for (const row of this.sql.exec("SELECT * FROM minutes WHERE minute >= ? ORDER BY minute", since)) {
      stats.get(String(row.sink))?.minutes.push({ minute: Number(row.minute) * 60_000, ...pick(row) });
    }
    for (const row of this.sql.exec("SELECT * FROM lost")) {
      const sink = String(row.sink);
      (stats.get(sink) ?? entry(sink, zeroCounts())).lost = pick(row);
    }
    for (const row of this.sql.exec("SELECT * FROM last_error")) {
      const s = stats.get(String(row.sink));
      if (s)
        s.lastError = {
          at: Number(row.at),
          message: String(row.message),
          status: row.status === null ? null : Number(row.status),
        };
    }
    return [...stats.values()].sort((a, b) => (a.sink < b.sink ? -1 : a.sink > b.sink ? 1 : 0));
  }
}
