/**
 * Per-sink counters that outlive an isolate: a SQLite-backed Durable Object
 * (one of DELIVERY.statsShards), written by each isolate's flush with the
 * deltas of many invocations, read (all shards summed) by GET /status and
 * the dashboard.
 *
 * A write is billed by the rows it writes, so one flush writes a few rows
 * whatever the number of sinks and records: every sink's counts of the
 * minute in one row, every sink's totals and lost counts in one row, the
 * errors (ring and each sink's last) in one row when there are any, and the
 * flush's sample of latest records as one page of a ring of pages. Each
 * table is keyed by INTEGER PRIMARY KEY, the rowid itself, so that no index
 * entry is written beside a row (SQLite counts one as a row written).
 * Counts are stored as JSON objects of the counters that are not 0, so a
 * counter added to COUNTERS needs no new column: absent, it reads as 0.
 * The tables are created by an object's first write, so a shard that is
 * only read costs no rows.
 */
import { DurableObject } from "cloudflare:workers";
import { LEVELS, type Level, levelRank } from "../record";
import { RECENT_PER_FLUSH } from "./batch";
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
/** The longest of STATS_WINDOWS, in minutes. */
const LONGEST_WINDOW = Math.max(...Object.values(STATS_WINDOWS));

/**
 * Records one page holds at most. A record carries up to 16 KiB of JSON,
 * which its escaping can double and UTF-8 triple: five stay far below the
 * 2 MB a SQLite row may hold in a Durable Object.
 */
const PAGE_RECORDS = RECENT_PER_FLUSH;

/** The rows of `counters`. */
const TOTALS_ROW = 1;
const ERRORS_ROW = 2;

/** The tables of earlier versions (a row per sink, record and error), folded into this layout on first start. */
const OLD_TABLES = ["minutes", "totals", "lost", "last_error", "errors", "recent"] as const;

/** What one flush cost: SQLite rows written (billed per row). */
export interface FlushResult {
  rowsWritten: number;
}

/** A sink's counts as stored: only the counters that are not 0. */
type Stored = Partial<Record<string, number>>;

/**
 * Sinks' counts by sink name. A Map, not an object: a sink may be named
 * `__proto__`. JSON in and out with Object.entries and Object.fromEntries,
 * which define own properties.
 */
type BySink = Map<string, Stored>;

interface TotalsRow {
  totals: BySink;
  /** Deltas an isolate gave up writing after failed flushes, written with its next successful one. */
  lost: BySink;
}

type LastError = NonNullable<SinkStats["lastError"]>;

interface ErrorsRow {
  /** Every sink's errors, oldest first, the newest ERRORS_KEPT kept. */
  list: SinkError[];
  last: Map<string, LastError>;
}

/** A latest record as a page keeps it for filtering; its JSON (`line`) is kept apart, read only when listed. */
type RecordMeta = Omit<RecentRecord, "line">;

function bySink(json: unknown): BySink {
  return new Map(Object.entries((json ?? {}) as Record<string, Stored>));
}

function addCounts(into: Stored, counts: Partial<Record<string, number>>): void {
  for (const c of COUNTERS) {
    const n = (into[c] ?? 0) + (counts[c] ?? 0);
    if (n === 0) delete into[c];
    else into[c] = n;
  }
}

function countsOf(stored: Stored | undefined): Counts {
  const out = zeroCounts();
  for (const c of COUNTERS) out[c] = Number(stored?.[c] ?? 0);
  return out;
}

function sinkOf(map: BySink, sink: string): Stored {
  let stored = map.get(sink);
  if (!stored) {
    stored = {};
    map.set(sink, stored);
  }
  return stored;
}

function counted(d: { counts: Partial<Record<string, number>> }): boolean {
  return COUNTERS.some((c) => (d.counts[c] ?? 0) !== 0);
}

function metaOf(r: RecordMeta): RecordMeta {
  return {
    id: r.id,
    at: r.at,
    type: r.type,
    level: r.level,
    outcome: r.outcome,
    script: r.script,
    eventType: r.eventType,
    status: r.status,
    message: r.message,
    sinks: r.sinks,
  };
}

function matches(r: RecordMeta, query: RecentQuery): boolean {
  if (query.level && rankOf(r.level) < rankOf(query.level)) return false;
  if (query.outcome && r.outcome !== query.outcome) return false;
  if (query.script !== undefined && r.script !== (query.script === "" ? null : query.script)) return false;
  if (query.type && r.type !== query.type) return false;
  return true;
}

/** SQLite's order for the filter menus: null first, then by value. */
function sorted<T extends string | null>(values: Iterable<T>): T[] {
  return [...values].sort((a, b) => (a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1));
}

export class TailfanStats extends DurableObject {
  private readonly sql: SqlStorage;
  private pruned = 0;
  private written = 0;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    this.sql = ctx.storage.sql;
    // Synchronous, so it is done before the object serves its first call: no blockConcurrencyWhile needed.
    this.migrate();
  }

  /** Whether this object's tables exist: an object only read so far (a shard no isolate wrote to) has none. */
  private hasTables(): boolean {
    const row = this.sql.exec("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'counters'");
    return Number(row.one().n) > 0;
  }

  /**
   * Creates the tables, with the object's first write: once in its life,
   * and never for a shard that is only read.
   */
  private createTables(): void {
    if (this.hasTables()) return;
    // Every sink's counts of one minute: {"sink": {"received": 3, ...}, ...}.
    this.run("CREATE TABLE IF NOT EXISTS counter_minutes (minute INTEGER PRIMARY KEY, sinks TEXT NOT NULL)");
    // TOTALS_ROW: {"totals": {sink: counts}, "lost": {sink: counts}}; ERRORS_ROW: {"list": [...], "last": {sink: error}}.
    this.run("CREATE TABLE IF NOT EXISTS counters (id INTEGER PRIMARY KEY, value TEXT NOT NULL)");
    // The latest records, a ring of pages: a page is one write's sample; `upto` counts the records
    // written up to and including it, and a record is shown while its number is at or above `floor`.
    this.run(
      "CREATE TABLE IF NOT EXISTS recent_pages (slot INTEGER PRIMARY KEY, upto INTEGER NOT NULL, n INTEGER NOT NULL, floor INTEGER NOT NULL, meta TEXT NOT NULL, lines TEXT NOT NULL)",
    );
  }

  /**
   * One flush: the minute's row and the totals row (rewritten with every
   * sink's deltas added), the errors row when a delta carries an error, a
   * page of the sampled latest records, all or nothing. Returns the rows it
   * wrote.
   */
  add(deltas: SinkDelta[], recent: RecentRecord[] = [], keep = 0, lost: SinkDelta[] = []): FlushResult {
    this.written = 0;
    this.ctx.storage.transactionSync(() => this.write(deltas, recent, keep, lost));
    return { rowsWritten: this.written };
  }

  /** Runs one statement to its end and counts the rows it wrote. */
  private run(query: string, ...args: SqlStorageValue[]): void {
    const cursor = this.sql.exec(query, ...args);
    cursor.toArray();
    this.written += cursor.rowsWritten;
  }

  private write(deltas: SinkDelta[], recent: RecentRecord[], keep: number, lost: SinkDelta[]): void {
    const minute = Math.floor(Date.now() / 60_000);
    const changed = deltas.filter(counted);
    const failed = deltas.filter((d) => d.lastError);
    if (changed.length > 0 || lost.length > 0 || failed.length > 0 || (recent.length > 0 && keep > 0)) {
      this.createTables();
    } else if (!this.hasTables()) {
      return;
    }
    if (changed.length > 0) {
      const sinks = this.minute(minute);
      for (const d of changed) addCounts(sinkOf(sinks, d.sink), d.counts);
      this.putMinute(minute, sinks);
    }
    if (changed.length > 0 || lost.length > 0) {
      const row = this.totals();
      for (const d of changed) addCounts(sinkOf(row.totals, d.sink), d.counts);
      for (const d of lost) addCounts(sinkOf(row.lost, d.sink), d.counts);
      this.putTotals(row);
    }
    if (failed.length > 0) {
      const row = this.errorsRow();
      for (const { sink, lastError } of failed) {
        if (!lastError) continue;
        const error = { at: lastError.at, message: lastError.message.slice(0, 1000), status: lastError.status ?? null };
        row.list.push({ sink, ...error });
        row.last.set(sink, error);
      }
      this.putErrors(row);
    }
    if (recent.length > 0 && keep > 0) {
      const sample = recent.slice(-keep);
      for (let i = 0; i < sample.length; i += PAGE_RECORDS) this.putPage(sample.slice(i, i + PAGE_RECORDS), keep);
    }
    if (minute !== this.pruned) {
      this.pruned = minute;
      this.run("DELETE FROM counter_minutes WHERE minute < ?", minute - KEEP_MINUTES);
    }
  }

  private minute(minute: number): BySink {
    const row = this.sql.exec("SELECT sinks FROM counter_minutes WHERE minute = ?", minute).toArray()[0];
    return bySink(row && JSON.parse(String(row.sinks)));
  }

  private putMinute(minute: number, sinks: BySink): void {
    this.run(
      "INSERT INTO counter_minutes (minute, sinks) VALUES (?, ?) ON CONFLICT (minute) DO UPDATE SET sinks = excluded.sinks",
      minute,
      JSON.stringify(Object.fromEntries(sinks)),
    );
  }

  private row(id: number): Record<string, unknown> {
    const row = this.sql.exec("SELECT value FROM counters WHERE id = ?", id).toArray()[0];
    return row ? (JSON.parse(String(row.value)) as Record<string, unknown>) : {};
  }

  private put(id: number, value: Record<string, unknown>): void {
    this.run(
      "INSERT INTO counters (id, value) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET value = excluded.value",
      id,
      JSON.stringify(value),
    );
  }

  private totals(): TotalsRow {
    const row = this.row(TOTALS_ROW);
    return { totals: bySink(row.totals), lost: bySink(row.lost) };
  }

  private putTotals(row: TotalsRow): void {
    this.put(TOTALS_ROW, { totals: Object.fromEntries(row.totals), lost: Object.fromEntries(row.lost) });
  }

  private errorsRow(): ErrorsRow {
    const row = this.row(ERRORS_ROW);
    return {
      list: (row.list ?? []) as SinkError[],
      last: new Map(Object.entries((row.last ?? {}) as Record<string, LastError>)),
    };
  }

  private putErrors(row: ErrorsRow): void {
    this.put(ERRORS_ROW, { list: row.list.slice(-ERRORS_KEPT), last: Object.fromEntries(row.last) });
  }

  /**
   * Adds one page of latest records. The ring never holds more pages than
   * `keep`: the oldest page is rewritten in place (one row) once none of its
   * records is among the newest `keep`, and a new page is added (one row)
   * only while the ring is still filling.
   */
  private putPage(records: RecentRecord[], keep: number): void {
    const ring = this.sql
      .exec("SELECT COUNT(*) AS pages, MIN(upto) AS oldest, MAX(upto) AS total, MAX(slot) AS last FROM recent_pages")
      .one();
    const pages = Number(ring.pages);
    const total = Number(ring.total ?? 0);
    const upto = total + records.length;
    // As the old ring buffer trimmed: once a record is out of the newest `keep`, a larger `keep` does not bring it back.
    const floor = Math.max(this.floor(), upto - keep);
    const values = [
      upto,
      records.length,
      floor,
      JSON.stringify(records.map(metaOf)),
      JSON.stringify(records.map((r) => r.line)),
    ];
    if (pages > keep) {
      // `keep` was lowered: the pages no longer shown go at once, rather than wait to be rewritten.
      this.run("DELETE FROM recent_pages WHERE upto <= ?", floor);
    } else if (pages > 0 && Number(ring.oldest) <= floor) {
      this.run(
        "UPDATE recent_pages SET upto = ?, n = ?, floor = ?, meta = ?, lines = ? WHERE upto = ?",
        ...values,
        Number(ring.oldest),
      );
      return;
    }
    this.run(
      "INSERT INTO recent_pages (slot, upto, n, floor, meta, lines) VALUES (?, ?, ?, ?, ?, ?)",
      Number(ring.last ?? 0) + 1,
      ...values,
    );
  }

  /** The number of the oldest record shown: the newest page's `floor` (0 when there is none). */
  private floor(): number {
    const row = this.sql.exec("SELECT floor FROM recent_pages ORDER BY upto DESC LIMIT 1").toArray()[0];
    return Number(row?.floor ?? 0);
  }

  /**
   * Folds the tables of earlier versions (minutes, totals, lost, last_error,
   * errors, recent: a row per sink, error and record) into this layout and
   * drops them, in one transaction: a deployed object keeps its counts,
   * errors and latest records. Counts are added to what the new tables
   * hold. A failure rolls it all back and fails the object's calls, which
   * the isolates and the read routes report; nothing is half moved.
   */
  private migrate(): void {
    const placeholders = OLD_TABLES.map(() => "?").join(", ");
    const old = new Set(
      this.sql
        .exec(`SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (${placeholders})`, ...OLD_TABLES)
        .toArray()
        .map((r) => String(r.name)),
    );
    if (old.size === 0) return;
    this.ctx.storage.transactionSync(() => {
      this.createTables();
      if (old.has("minutes")) {
        const byMinute = new Map<number, BySink>();
        for (const row of this.sql.exec("SELECT * FROM minutes ORDER BY minute")) {
          const minute = Number(row.minute);
          let sinks = byMinute.get(minute);
          if (!sinks) {
            sinks = this.minute(minute);
            byMinute.set(minute, sinks);
          }
          addCounts(sinkOf(sinks, String(row.sink)), row as Record<string, number>);
        }
        for (const [minute, sinks] of byMinute) this.putMinute(minute, sinks);
      }
      const totals = this.totals();
      for (const table of ["totals", "lost"] as const) {
        if (!old.has(table)) continue;
        for (const row of this.sql.exec(`SELECT * FROM ${table}`)) {
          const into = table === "totals" ? totals.totals : totals.lost;
          addCounts(sinkOf(into, String(row.sink)), row as Record<string, number>);
        }
      }
      this.putTotals(totals);
      const errors = this.errorsRow();
      const errorOf = (row: Record<string, SqlStorageValue>) => ({
        at: Number(row.at),
        message: String(row.message),
        status: row.status === null ? null : Number(row.status),
      });
      if (old.has("errors")) {
        const list = [...this.sql.exec("SELECT sink, at, message, status FROM errors ORDER BY seq")].map((row) => ({
          sink: String(row.sink),
          ...errorOf(row),
        }));
        errors.list = [...list, ...errors.list];
      }
      if (old.has("last_error")) {
        for (const row of this.sql.exec("SELECT sink, at, message, status FROM last_error")) {
          const sink = String(row.sink);
          if (!errors.last.has(sink)) errors.last.set(sink, errorOf(row));
        }
      }
      if (errors.list.length > 0 || errors.last.size > 0) this.putErrors(errors);
      if (old.has("recent")) {
        const records = [...this.sql.exec("SELECT * FROM recent ORDER BY seq")].map(
          (row): RecentRecord => ({
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
          }),
        );
        // The old ring was already trimmed to its `keep`: all of it stays, and the next write trims to its own.
        const keep = this.kept() + records.length;
        for (let i = 0; i < records.length; i += PAGE_RECORDS) this.putPage(records.slice(i, i + PAGE_RECORDS), keep);
      }
      for (const table of old) this.sql.exec(`DROP TABLE ${table}`);
    });
  }

  /** The latest delivery errors of every sink, newest first (one per sink and invocation at most). */
  errors(limit = 20): SinkError[] {
    const n = Math.min(Math.max(Math.trunc(limit) || 20, 1), ERRORS_KEPT);
    if (!this.hasTables()) return [];
    return this.errorsRow().list.slice(-n).reverse();
  }

  /** How many latest records are shown. */
  private kept(): number {
    const floor = this.floor();
    const row = this.sql
      .exec("SELECT SUM(upto - MAX(upto - n, ?)) AS n FROM recent_pages WHERE upto > ?", floor, floor)
      .one();
    return Number(row.n ?? 0);
  }

  /** The latest records, newest first, filtered; with the outcomes and scripts present, for filter menus. */
  recent(query: RecentQuery = {}): RecentAnswer {
    const limit = Math.min(Math.max(Math.trunc(query.limit ?? 50) || 50, 1), 1_000);
    if (!this.hasTables()) return { records: [], kept: 0, outcomes: [], scripts: [] };
    const floor = this.floor();
    const picked: { slot: number; index: number; meta: RecordMeta }[] = [];
    const outcomes = new Set<string>();
    const scripts = new Set<string | null>();
    let kept = 0;
    for (const page of this.sql.exec(
      "SELECT slot, upto, n, meta FROM recent_pages WHERE upto > ? ORDER BY upto DESC",
      floor,
    )) {
      const metas = JSON.parse(String(page.meta)) as RecordMeta[];
      const first = Number(page.upto) - Number(page.n);
      for (let index = metas.length - 1; index >= 0 && first + index >= floor; index--) {
        const meta = metas[index] as RecordMeta;
        kept++;
        outcomes.add(meta.outcome);
        scripts.add(meta.script);
        if (picked.length < limit && matches(meta, query)) picked.push({ slot: Number(page.slot), index, meta });
      }
    }
    // The records' JSON, of the pages listed only: it is most of a page's size.
    const lines = new Map<number, (string | null)[]>();
    if (picked.length > 0) {
      const slots = JSON.stringify([...new Set(picked.map((p) => p.slot))]);
      for (const row of this.sql.exec(
        "SELECT slot, lines FROM recent_pages WHERE slot IN (SELECT value FROM json_each(?))",
        slots,
      )) {
        lines.set(Number(row.slot), JSON.parse(String(row.lines)) as (string | null)[]);
      }
    }
    return {
      records: picked.map(({ slot, index, meta }) => ({ ...metaOf(meta), line: lines.get(slot)?.[index] ?? null })),
      kept,
      outcomes: sorted(outcomes),
      scripts: sorted(scripts),
    };
  }

  snapshot(windowMinutes = 60): SinkStats[] {
    if (!this.hasTables()) return [];
    const current = Math.floor(Date.now() / 60_000);
    const since = current - windowMinutes;
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
    const { totals, lost } = this.totals();
    for (const [sink, stored] of totals) entry(sink, countsOf(stored));
    const windows = Object.entries(STATS_WINDOWS) as [StatsWindow, number][];
    for (const row of this.sql.exec(
      "SELECT minute, sinks FROM counter_minutes WHERE minute >= ? ORDER BY minute",
      Math.min(since, current - LONGEST_WINDOW + 1),
    )) {
      const minute = Number(row.minute);
      for (const [sink, stored] of bySink(JSON.parse(String(row.sinks)))) {
        const s = stats.get(sink);
        if (!s) continue;
        const counts = countsOf(stored);
        if (minute >= since) s.minutes.push({ minute: minute * 60_000, ...counts });
        for (const [name, minutes] of windows) {
          if (minute > current - minutes) for (const c of COUNTERS) s.windows[name][c] += counts[c];
        }
      }
    }
    for (const [sink, stored] of lost) (stats.get(sink) ?? entry(sink, zeroCounts())).lost = countsOf(stored);
    for (const [sink, error] of this.errorsRow().last) {
      const s = stats.get(sink);
      if (s) s.lastError = { at: error.at, message: error.message, status: error.status };
    }
    return [...stats.values()].sort((a, b) => (a.sink < b.sink ? -1 : a.sink > b.sink ? 1 : 0));
  }
}
