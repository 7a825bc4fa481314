/**
 * Per-sink counters that outlive an isolate: a SQLite-backed Durable Object,
 * written once per tail() or queue() invocation with that invocation's
 * deltas, read by GET /status.
 *
 * Invariant, per sink: received = sent + droppedLimit + deadLettered + failed + pending.
 */
import { DurableObject } from "cloudflare:workers";

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
}

export function zeroCounts(): Counts {
  return Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Counts;
}

/** Collects deltas during one invocation, for a single write at its end. */
export class StatsBatch {
  private readonly deltas = new Map<string, SinkDelta>();

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
  add(deltas: SinkDelta[]): Promise<void>;
  snapshot(windowMinutes?: number): Promise<SinkStats[]>;
}

/** The one stats object of this deployment. */
export function statsStub(env: Record<string, unknown>, binding: string): StatsStub {
  const ns = env[binding] as DurableObjectNamespace;
  return ns.get(ns.idFromName("tailfan")) as unknown as StatsStub;
}

/** Writes the batch's deltas with one subrequest; failures are logged, never thrown. */
export async function flushStats(
  env: Record<string, unknown>,
  binding: string | null,
  batch: StatsBatch,
): Promise<void> {
  if (binding === null || batch.size === 0) return;
  try {
    await statsStub(env, binding).add(batch.list());
  } catch (err) {
    console.error(
      `tailfan: could not write counters to ${binding}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

const KEEP_MINUTES = 7 * 24 * 60;
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
  }

  add(deltas: SinkDelta[]): void {
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
          "INSERT INTO last_error (sink, at, message, status) VALUES (?, ?, ?, ?) ON CONFLICT (sink) DO UPDATE SET at = excluded.at, message = excluded.message, status = excluded.status",
          d.sink,
          d.lastError.at,
          d.lastError.message.slice(0, 1000),
          d.lastError.status ?? null,
        );
      }
    }
    if (minute !== this.pruned) {
      this.pruned = minute;
      this.sql.exec("DELETE FROM minutes WHERE minute < ?", minute - KEEP_MINUTES);
    }
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
      });
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
