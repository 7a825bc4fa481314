/**
 * What the counters are and how they are read: the counter names, per-sink
 * deltas and snapshots, the recent-records ring and its queries.
 *
 * Invariant, per sink: received = sent + droppedLimit + deadLettered + failed + pending.
 */

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
  /** Records the sink would have taken but sampling dropped (not part of `received`, nor of `droppedFilter`). */
  "droppedSample",
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
  /**
   * Deltas an isolate gave up writing after its flushes failed: these counts
   * are missing from `totals` (all zero when nothing was lost).
   */
  lost: Counts;
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

export function zeroCounts(): Counts {
  return Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Counts;
}

/** What the invariant leaves over: received − (sent + droppedLimit + deadLettered + failed + pending). */
export function unaccountedOf(c: Counts): number {
  return c.received - (c.sent + c.droppedLimit + c.deadLettered + c.failed + c.pending);
}
