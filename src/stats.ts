/**
 * Per-sink counters that outlive an isolate: a SQLite-backed Durable Object,
 * written once per tail() or queue() invocation with that invocation's
 * deltas, read by GET /status.
 *
 * Invariant, per sink: received = sent + droppedLimit + deadLettered + failed + pending.
 */
import { DurableObject } from "cloudflare:workers";
import { LEVELS, type Level, type LogRecord, levelRank } from "./record";

export const COUNTERS = [
  /** Records routed to the sink. */
  "received",
  /** Records in batches the sink accepted. */
  "sent",
  /** Records handed to the retry queue (each time). */
  "retried",
  /** Records written to the dead-letter bucket after the last attempt. */
  "deadLettered",
  /** Records the sink's filters or the routes did not want (not part of `received`). */
  "droppedFilter",
  /** Records too large for the sink. */
  "droppedLimit",
  /** Records lost with a logged reason: no retry queue, no dead letter, or the dead letter failed. */
  "failed",
  /** Change in records waiting in the queue (buffered or retrying). */
  "pending",
  /** Bytes of record JSON the sink accepted. */
  "bytes",
  /** Send attempts. */
  "requests",
  /** Records cut to fit LIMITS (a part of `received`, not in the invariant). */
  "truncated",
  /** TraceItems of tailfan itself, dropped by the loop guard (counted under the sink name "*"). */
  "droppedLoop",
] as const;

export type Counter = (typeof COUNTERS)[number];
export type Counts = Record<Counter, number>;

export interface SinkDelta {
  sink: string;
  counts: Partial<Counts>;
  lastError?: { at: number; message: string; status?: number };
}

export interface SinkStats {
  sink: string;
  totals: Counts;
  /** Per-minute counts, oldest first, for the window asked for. */
  minutes: ({ minute: number } & Counts)[];
  lastError: { at: number; message: string; status: number | null } | null;
  /** received − (sent + droppedLimit + deadLettered + failed + pending); 0 when every record is accounted for. */
  unaccounted: number;
  /** Sums over the last 5 minutes, hour and day (each including the current minute). */
  windows: Record<StatsWindow, Counts>;
}

export const STATS_WINDOWS = { "5m": 5, "1h": 60, "24h": 1440 } as const;
export type StatsWindow = keyof typeof STATS_WINDOWS;

/** One record as the dashboard's "latest records" view keeps it. */
export interface RecentRecord {
  id: string;
  /** The record's timestamp, epoch ms. */
  at: number;
  type: string;
  level: string;
  outcome: string;
  script: string | null;
  eventType: string;
  status: number | null;
  /** The first MESSAGE_CHARS characters of the message. */
  message: string;
  /** The sinks the routes sent it to; empty when no sink wanted it. */
  sinks: string[];
  /** The record's JSON as the sinks got it (scrubbed, limited), or null when over RECORD_CHARS. */
  line: string | null;
}

export interface SinkError {
  sink: string;
  at: number;
  message: string;
  status: number | null;
}

export interface RecentQuery {
  /** Minimum level, as in routes. */
  level?: string;
  outcome?: string;
  /** Exact script name; "" for records without one. */
  script?: string;
  type?: string;
  limit?: number;
}

export interface RecentAnswer {
  records: RecentRecord[];
  /** Records kept in all, before filtering. */
  kept: number;
  /** The values present, for filter menus. */
  outcomes: string[];
  scripts: (string | null)[];
}

/** A level's rank as routes use it; an unknown level ranks with `info`. */
function rankOf(level: string): number {
  return (LEVELS as readonly string[]).includes(level) ? levelRank(level as Level) : 1;
}

const MESSAGE_CHARS = 300;
const RECORD_CHARS = 16_384;

function toRecent(record: LogRecord, line: string | null, sinks: string[]): RecentRecord {
  // A record no sink took was never serialized; records are plain JSON, so this cannot throw.
  const json = line ?? JSON.stringify(record);
  return {
    id: record.id,
    at: record.timestamp,
    type: record.type,
    level: record.level,
    outcome: record.outcome,
    script: record.scriptName,
    eventType: record.eventType,
    status: typeof record.status === "number" ? record.status : null,
    message: record.message.length > MESSAGE_CHARS ? `${record.message.slice(0, MESSAGE_CHARS)}…` : record.message,
    sinks,
    line: json.length <= RECORD_CHARS ? json : null,
  };
}

export function zeroCounts(): Counts {
  return Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Counts;
}

/** Collects deltas during one invocation, for a single write at its end. */
export class StatsBatch {
  private readonly deltas = new Map<string, SinkDelta>();
  private seen: { record: LogRecord; line: string | null; sinks: string[] }[] = [];
  private keep = 0;

  /**
   * Notes a routed record for the latest-records view; only the last `keep`
   * of an invocation are kept, and nothing is built until the write.
   */
  see(record: LogRecord, line: string | null, sinks: string[], keep: number): void {
    if (keep <= 0) return;
    this.keep = keep;
    this.seen.push({ record, line, sinks });
    if (this.seen.length >= 2 * keep) this.seen = this.seen.slice(-keep);
  }

  /** The records noted by `see`, oldest first, as the stats object stores them. */
  recent(): RecentRecord[] {
    return this.seen.slice(-this.keep).map((s) => toRecent(s.record, s.line, s.sinks));
  }

  /** How many records the write keeps at most (0: none noted). */
  get recentKeep(): number {
    return this.seen.length === 0 ? 0 : this.keep;
  }

  private of(sink: string): SinkDelta {
    let d = this.deltas.get(sink);
    if (!d) {
      d = { sink, counts: {} };
      this.deltas.set(sink, d);
    }
    return d;
  }

  add(sink: string, counter: Counter, n: number): void {
    if (n === 0) return;
    const d = this.of(sink);
    d.counts[counter] = (d.counts[counter] ?? 0) + n;
  }

  error(sink: string, message: string, status?: number, at = Date.now()): void {
    this.of(sink).lastError = status === undefined ? { at, message } : { at, message, status };
  }

  merge(other: StatsBatch): void {
    for (const s of other.seen) this.see(s.record, s.line, s.sinks, other.keep);
    for (const d of other.list()) {
      for (const [counter, n] of Object.entries(d.counts)) this.add(d.sink, counter as Counter, n);
      if (d.lastError) this.of(d.sink).lastError = d.lastError;
    }
  }

  get size(): number {
    return this.deltas.size;
  }

  list(): SinkDelta[] {
    return [...this.deltas.values()];
  }
}

interface StatsStub {
  add(deltas: SinkDelta[], recent?: RecentRecord[], keep?: number): Promise<void>;
  snapshot(windowMinutes?: number): Promise<SinkStats[]>;
  recent(query?: RecentQuery): Promise<RecentAnswer>;
  errors(limit?: number): Promise<SinkError[]>;
}

/** How long a counters write or read may take before it is given up: it must never hold back delivery. */
export const STATS_TIMEOUT_MS = 3_000;

/** Settles with `promise`, or rejects after `ms` with a reason naming `what`. */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The one stats object of this deployment; every call gives up after STATS_TIMEOUT_MS. */
export function statsStub(env: Record<string, unknown>, binding: string): StatsStub {
  const ns = env[binding] as DurableObjectNamespace;
  const stub = ns.get(ns.idFromName("tailfan")) as unknown as StatsStub;
  const what = `the counters object ${binding}`;
  return {
    add: (deltas, recent, keep) => withTimeout(stub.add(deltas, recent, keep), STATS_TIMEOUT_MS, what),
    snapshot: (windowMinutes) => withTimeout(stub.snapshot(windowMinutes), STATS_TIMEOUT_MS, what),
    recent: (query) => withTimeout(stub.recent(query), STATS_TIMEOUT_MS, what),
    errors: (limit) => withTimeout(stub.errors(limit), STATS_TIMEOUT_MS, what),
  };
}

/**
 * Counters writes this isolate could not make: the counters object threw or
 * did not answer in time. Kept in memory (the object itself may be what
 * fails) and shown by GET /status and the dashboard.
 */
export interface FlushFailures {
  /** Failed writes since `since`. */
  failed: number;
  /** First failure, epoch ms; null when none failed. */
  since: number | null;
  /** The latest failure's time and reason. */
  last: { at: number; message: string } | null;
}

const flushFailures: FlushFailures = { failed: 0, since: null, last: null };

/** This isolate's failed counters writes so far. */
export function counterFlushFailures(): FlushFailures {
  return { ...flushFailures, last: flushFailures.last && { ...flushFailures.last } };
}

/** Writes an invocation's counters; never throws and never waits longer than STATS_TIMEOUT_MS. */
export async function flushStats(
  env: Record<string, unknown>,
  binding: string | null,
  batch: StatsBatch,
): Promise<void> {
  if (binding === null || (batch.size === 0 && batch.recentKeep === 0)) return;
  try {
    await statsStub(env, binding).add(batch.list(), batch.recent(), batch.recentKeep);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const at = Date.now();
    flushFailures.failed++;
    flushFailures.since ??= at;
    flushFailures.last = { at, message };
    console.error(`tailfan: could not write counters to ${binding}: ${message}`);
  }
}

const KEEP_MINUTES = 7 * 24 * 60;
/** Delivery errors kept for the dashboard and GET /status. */
export const ERRORS_KEPT = 100;
const COLUMNS = COUNTERS.map((c) => `"${c}"`).join(", ");

export class TailfanStats extends DurableObject {
  private readonly sql: SqlStorage;
  private pruned = 0;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    this.sql = ctx.storage.sql;
    const cols = COUNTERS.map((c) => `"${c}" INTEGER NOT NULL DEFAULT 0`).join(", ");
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS minutes (sink TEXT NOT NULL, minute INTEGER NOT NULL, ${cols}, PRIMARY KEY (sink, minute))`,
    );
    this.sql.exec(`CREATE TABLE IF NOT EXISTS totals (sink TEXT PRIMARY KEY, ${cols})`);
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

  add(deltas: SinkDelta[], recent: RecentRecord[] = [], keep = 0): void {
    this.keepRecent(recent, keep);
    const minute = Math.floor(Date.now() / 60_000);
    const placeholders = COUNTERS.map(() => "?").join(", ");
    const update = COUNTERS.map((c) => `"${c}" = "${c}" + excluded."${c}"`).join(", ");
    for (const d of deltas) {
      const values = COUNTERS.map((c) => d.counts[c] ?? 0);
      this.sql.exec(
        `INSERT INTO minutes (sink, minute, ${COLUMNS}) VALUES (?, ?, ${placeholders}) ON CONFLICT (sink, minute) DO UPDATE SET ${update}`,
        d.sink,
        minute,
        ...values,
      );
      this.sql.exec(
        `INSERT INTO totals (sink, ${COLUMNS}) VALUES (?, ${placeholders}) ON CONFLICT (sink) DO UPDATE SET ${update}`,
        d.sink,
        ...values,
      );
      if (d.lastError) {
        this.sql.exec(
          "INSERT INTO errors (sink, at, message, status) VALUES (?, ?, ?, ?)",
          d.sink,
          d.lastError.at,
          d.lastError.message.slice(0, 1000),
          d.lastError.status ?? null,
        );
        this.sql.exec(
          "INSERT INTO last_error (sink, at, message, status) VALUES (?, ?, ?, ?) ON CONFLICT (sink) DO UPDATE SET at = excluded.at, message = excluded.message, status = excluded.status",
          d.sink,
          d.lastError.at,
          d.lastError.message.slice(0, 1000),
          d.lastError.status ?? null,
        );
      }
    }
    if (deltas.some((d) => d.lastError)) this.trim("errors", ERRORS_KEPT);
    if (minute !== this.pruned) {
      this.pruned = minute;
      this.sql.exec("DELETE FROM minutes WHERE minute < ?", minute - KEEP_MINUTES);
    }
  }

  private keepRecent(recent: RecentRecord[], keep: number): void {
    if (recent.length === 0 || keep <= 0) return;
    for (const r of recent.slice(-keep)) {
      this.sql.exec(
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
    const last = Number(this.sql.exec(`SELECT MAX(seq) AS seq FROM ${table}`).one().seq ?? 0);
    this.sql.exec(`DELETE FROM ${table} WHERE seq <= ?`, last - keep);
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
    for (const row of this.sql.exec("SELECT * FROM totals ORDER BY sink")) {
      const totals = pick(row);
      stats.set(String(row.sink), {
        sink: String(row.sink),
        totals,
        minutes: [],
        lastError: null,
        unaccounted:
          totals.received - (totals.sent + totals.droppedLimit + totals.deadLettered + totals.failed + totals.pending),
        windows: { "5m": zeroCounts(), "1h": zeroCounts(), "24h": zeroCounts() },
      });
    }
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
    for (const row of this.sql.exec("SELECT * FROM last_error")) {
      const s = stats.get(String(row.sink));
      if (s)
        s.lastError = {
          at: Number(row.at),
          message: String(row.message),
          status: row.status === null ? null : Number(row.status),
        };
    }
    return [...stats.values()];
  }
}
