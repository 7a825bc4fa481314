/** Writing to (and reading from) the counters object: bounded in time, never throwing into delivery. */
import { logError } from "../log";
import type { StatsBatch } from "./batch";
import type { RecentAnswer, RecentQuery, RecentRecord, SinkDelta, SinkError, SinkStats } from "./types";

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
    logError(`tailfan: could not write counters to ${binding}: ${message}`);
  }
}
