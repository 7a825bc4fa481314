/**
 * What the dashboard shows, computed from the counters and the config:
 * per-sink health, chart series and readable filters. Pure, so it is tested
 * without a page.
 */
import type { Counts, SinkError, SinkStats } from "../stats";

export type Health = "idle" | "healthy" | "degraded" | "failing";

export interface SinkHealth {
  health: Health;
  /** One sentence a user can act on. */
  reason: string;
}

/** Minutes that count as "now" for a sink's health. */
export const RECENT_MINUTES = 5;

function sum(rows: readonly Counts[], pick: (c: Counts) => number): number {
  let n = 0;
  for (const r of rows) n += pick(r);
  return n;
}

const troubles = (c: Counts) => c.failed + c.deadLettered + c.retried;

/**
 * failing: in the last five minutes records failed, were retried or
 * dead-lettered and none was sent; degraded: trouble in the window but
 * records still get through (or some are waiting for a retry); healthy:
 * records were sent and nothing went wrong; idle: no records in the window.
 */
export function sinkHealth(stats: SinkStats | undefined, now: number, windowMinutes: number): SinkHealth {
  if (!stats) return { health: "idle", reason: "no records yet" };
  const minute = Math.floor(now / 60_000) * 60_000;
  const inWindow = stats.minutes.filter((m) => m.minute > minute - windowMinutes * 60_000);
  const lately = stats.minutes.filter((m) => m.minute > minute - RECENT_MINUTES * 60_000);
  const recentTrouble = sum(lately, troubles);
  const recentSent = sum(lately, (c) => c.sent);
  if (recentTrouble > 0 && recentSent === 0) {
    const e = stats.lastError;
    return {
      health: "failing",
      reason: `nothing delivered in the last ${RECENT_MINUTES} minutes${e ? `; last error: ${e.message}` : ""}`,
    };
  }
  const windowTrouble = sum(inWindow, troubles);
  if (windowTrouble > 0 || stats.totals.pending > 0) {
    const parts: string[] = [];
    const failed = sum(inWindow, (c) => c.failed);
    const dead = sum(inWindow, (c) => c.deadLettered);
    const retried = sum(inWindow, (c) => c.retried);
    if (retried > 0) parts.push(`${retried} retried`);
    if (dead > 0) parts.push(`${dead} dead-lettered`);
    if (failed > 0) parts.push(`${failed} failed`);
    if (stats.totals.pending > 0) parts.push(`${stats.totals.pending} waiting in the queue`);
    return { health: "degraded", reason: `${parts.join(", ")}; records still get through` };
  }
  if (sum(inWindow, (c) => c.received) > 0) return { health: "healthy", reason: "every record delivered" };
  return { health: "idle", reason: `no records in the last ${windowMinutes} minutes` };
}

export interface Series {
  /** Bucket start times, epoch ms, oldest first. */
  starts: number[];
  sent: number[];
  failed: number[];
  deadLettered: number[];
  retried: number[];
  /** Records waiting in the queue at the end of each bucket (a level, not a sum). */
  pending: number[];
}

/** The series a chart draws, in order. */
export const SERIES_KEYS = ["sent", "failed", "deadLettered", "retried", "pending"] as const;

/**
 * The window cut into at most `maxBuckets` equal buckets ending with the
 * current minute, each summing the per-minute counters inside it. `pending`
 * is counted as changes per minute, so its series is the level: the waiting
 * records now (`pendingNow`), less the changes after each bucket.
 */
export function chartSeries(
  minutes: SinkStats["minutes"],
  now: number,
  windowMinutes: number,
  maxBuckets = 60,
  pendingNow = 0,
): Series {
  const perBucket = Math.max(1, Math.ceil(windowMinutes / maxBuckets));
  const n = Math.ceil(windowMinutes / perBucket);
  const last = Math.floor(now / 60_000);
  const first = last - n * perBucket + 1;
  const out: Series = {
    starts: Array.from({ length: n }, (_, i) => (first + i * perBucket) * 60_000),
    sent: new Array(n).fill(0),
    failed: new Array(n).fill(0),
    deadLettered: new Array(n).fill(0),
    retried: new Array(n).fill(0),
    pending: new Array(n).fill(0),
  };
  const changes: number[] = new Array(n).fill(0);
  for (const m of minutes) {
    const i = Math.floor((m.minute / 60_000 - first) / perBucket);
    if (i < 0 || i >= n) continue;
    (out.sent[i] as number) += m.sent;
    (out.failed[i] as number) += m.failed;
    (out.deadLettered[i] as number) += m.deadLettered;
    (out.retried[i] as number) += m.retried;
    (changes[i] as number) += m.pending;
  }
  let level = pendingNow;
  for (let i = n - 1; i >= 0; i--) {
    out.pending[i] = Math.max(0, level);
    level -= changes[i] as number;
  }
  return out;
}

export interface ErrorGroup {
  sink: string;
  status: number | null;
  message: string;
  count: number;
  /** Epoch ms of the oldest and the newest kept occurrence. */
  first: number;
  last: number;
}

/** One row per distinct sink, status and message, newest last occurrence first. */
export function groupErrors(errors: readonly SinkError[]): ErrorGroup[] {
  const groups = new Map<string, ErrorGroup>();
  for (const e of errors) {
    const key = JSON.stringify([e.sink, e.status, e.message]);
    const g = groups.get(key);
    if (g === undefined) {
      groups.set(key, { sink: e.sink, status: e.status, message: e.message, count: 1, first: e.at, last: e.at });
      continue;
    }
    g.count++;
    if (e.at < g.first) g.first = e.at;
    if (e.at > g.last) g.last = e.at;
  }
  return [...groups.values()].sort((a, b) => b.last - a.last);
}

/** `2026-11-21 10:32:05` in UTC. */
export function utc(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? "—" : d.toISOString().slice(0, 19).replace("T", " ");
}
