/**
 * Writing to (and reading from) the counters objects: deltas are summed per
 * isolate and flushed at most every DELIVERY.statsFlushMs to this isolate's
 * shard, bounded in time, never throwing into delivery.
 */
import { logError } from "../log";
import { StatsBatch } from "./batch";
import type { FlushResult } from "./object";
import {
  COUNTERS,
  type RecentAnswer,
  type RecentQuery,
  type RecentRecord,
  type SinkDelta,
  type SinkError,
  type SinkStats,
} from "./types";

interface StatsStub {
  add(deltas: SinkDelta[], recent?: RecentRecord[], keep?: number, lost?: SinkDelta[]): Promise<FlushResult>;
  snapshot(windowMinutes?: number): Promise<SinkStats[]>;
  recent(query?: RecentQuery): Promise<RecentAnswer>;
  errors(limit?: number): Promise<SinkError[]>;
}

/** How long a counters write or read may take before it is given up: it must never hold back delivery. */
export const STATS_TIMEOUT_MS = 3_000;

/** Flushes a failed write's deltas ride along with before they are given up and counted as lost. */
export const FLUSH_TRIES = 3;

/**
 * How long after an invocation starts its waitUntil may still run: the
 * runtime cancels it about 30 s after the invocation ends, so the window's
 * opener flushes early rather than be cut off with everyone's deltas.
 */
const WAIT_UNTIL_MS = 30_000;

/** A write or read that did not answer in time: it may still land, so it is never retried. */
class StatsTimeout extends Error {}

/** Settles with `promise`, or rejects after `ms` with a reason naming `what`. */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StatsTimeout(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The object name of counters shard `i`; shard 0 keeps the name of the single object of earlier versions. */
export function shardName(i: number): string {
  return i === 0 ? "tailfan" : `tailfan-${i}`;
}

/** One counters shard of this deployment; every call gives up after STATS_TIMEOUT_MS. */
export function statsStub(env: Record<string, unknown>, binding: string, shard = 0): StatsStub {
  const ns = env[binding] as DurableObjectNamespace;
  const stub = ns.get(ns.idFromName(shardName(shard))) as unknown as StatsStub;
  const what = shard === 0 ? `the counters object ${binding}` : `the counters object ${binding} (shard ${shard})`;
  return {
    add: (deltas, recent, keep, lost) => withTimeout(stub.add(deltas, recent, keep, lost), STATS_TIMEOUT_MS, what),
    snapshot: (windowMinutes) => withTimeout(stub.snapshot(windowMinutes), STATS_TIMEOUT_MS, what),
    recent: (query) => withTimeout(stub.recent(query), STATS_TIMEOUT_MS, what),
    errors: (limit) => withTimeout(stub.errors(limit), STATS_TIMEOUT_MS, what),
  };
}

let seed: number | null = null;

/** The shard this isolate writes to: picked once per isolate, so its flushes go to one object. */
export function isolateShard(shards: number): number {
  // Drawn on first use: randomness is not available while the module is loading.
  seed ??= Math.random();
  return Math.min(Math.floor(seed * shards), shards - 1);
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
  /** Records whose counts wait in memory for the next flush, after a failed one. */
  held: number;
  /**
   * Records whose counts this isolate gave up (after FLUSH_TRIES failed
   * flushes, or a write that timed out and may or may not have landed); the
   * next successful flush adds them to the sinks' `lost` counts.
   */
  lost: number;
}

const flushFailures = { failed: 0, since: null as number | null, last: null as FlushFailures["last"], lost: 0 };

/** What this isolate's successful flushes cost; the tests and the benchmark read it. */
export interface FlushCost {
  flushes: number;
  rowsWritten: number;
}

const flushCost: FlushCost = { flushes: 0, rowsWritten: 0 };

/** One deployment's counters in this isolate: the open window, and what failed flushes left. */
interface Slot {
  /** Deltas of the open window; null when none is open. */
  open: StatsBatch | null;
  /** A failed flush's deltas, sent again with the next one. */
  carry: StatsBatch | null;
  /** Failed flushes the carried deltas have been through. */
  tries: number;
  /** Deltas given up, to be written as `lost` with the next successful flush. */
  lost: StatsBatch | null;
}

/**
 * Keyed by binding name, not by `env`: nothing promises that every request
 * of an isolate gets the same `env` object, and a window must gather them all.
 * A window is written with its opener's own `env`.
 */
const slots = new Map<string, Slot>();
const carried = new Set<Slot>();

function slotOf(binding: string): Slot {
  let slot = slots.get(binding);
  if (!slot) {
    slot = { open: null, carry: null, tries: 0, lost: null };
    slots.set(binding, slot);
  }
  return slot;
}

/** This isolate's failed counters writes so far. */
export function counterFlushFailures(): FlushFailures {
  let held = 0;
  for (const slot of carried) held += slot.carry?.received ?? 0;
  return { ...flushFailures, last: flushFailures.last && { ...flushFailures.last }, held };
}

/** Whether a window is open for this binding: an invocation is waiting to write it. */
export function pendingWindow(binding: string): boolean {
  return slots.get(binding)?.open != null;
}

/** This isolate's successful flushes and the rows they wrote. */
export function counterFlushCost(): FlushCost {
  return { ...flushCost };
}

/** The counters part of DELIVERY. */
export interface StatsDelivery {
  stats: string | null;
  statsFlushMs: number;
  statsShards: number;
}

/** Counts only: what a lost delta leaves behind (its error message and records are not counts). */
function countsOf(batch: StatsBatch): SinkDelta[] {
  return batch.list().map((d) => ({ sink: d.sink, counts: d.counts }));
}

function countsOnly(batch: StatsBatch): StatsBatch {
  const out = new StatsBatch();
  for (const d of countsOf(batch)) {
    for (const c of COUNTERS) out.add(d.sink, c, d.counts[c] ?? 0);
  }
  return out;
}

function merged(into: StatsBatch | null, batch: StatsBatch): StatsBatch {
  const out = into ?? new StatsBatch();
  out.merge(batch);
  return out;
}

/** One write of a window's deltas (with what earlier failures left); never throws. */
async function flush(env: Record<string, unknown>, binding: string, shards: number, slot: Slot, batch: StatsBatch) {
  const tries = slot.tries;
  if (slot.carry) batch.merge(slot.carry);
  const lost = slot.lost;
  slot.carry = null;
  slot.tries = 0;
  slot.lost = null;
  carried.delete(slot);
  try {
    const shard = isolateShard(shards);
    const cost = await statsStub(env, binding, shard).add(
      batch.list(),
      batch.recent(),
      batch.recentKeep,
      lost ? countsOf(lost) : [],
    );
    flushCost.flushes++;
    flushCost.rowsWritten += cost.rowsWritten;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const at = Date.now();
    flushFailures.failed++;
    flushFailures.since ??= at;
    flushFailures.last = { at, message };
    logError(`tailfan: could not write counters to ${binding}: ${message}`);
    if (lost) slot.lost = merged(slot.lost, lost);
    if (err instanceof StatsTimeout || tries + 1 >= FLUSH_TRIES) {
      flushFailures.lost += batch.received;
      slot.lost = merged(slot.lost, countsOnly(batch));
    } else {
      slot.carry = merged(slot.carry, batch);
      slot.tries = tries + 1;
      carried.add(slot);
    }
  }
}

/**
 * Stage 10: adds an invocation's deltas to this isolate's pending counters.
 * The invocation that opens a window waits DELIVERY.statsFlushMs on its own
 * timer, inside its own waitUntil, then writes everything the window
 * gathered; the others only add theirs and return at once, waiting for
 * nothing another request resolves. Never throws.
 */
export async function recordStats(
  env: Record<string, unknown>,
  delivery: StatsDelivery,
  batch: StatsBatch,
  startedAt = Date.now(),
): Promise<void> {
  const binding = delivery.stats;
  if (binding === null || (batch.size === 0 && batch.recentKeep === 0)) return;
  const slot = slotOf(binding);
  if (delivery.statsFlushMs <= 0) return flush(env, binding, delivery.statsShards, slot, batch);
  if (slot.open) {
    slot.open.merge(batch);
    return;
  }
  const window = new StatsBatch();
  window.merge(batch);
  slot.open = window;
  const left = WAIT_UNTIL_MS - STATS_TIMEOUT_MS - 1_000 - (Date.now() - startedAt);
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(delivery.statsFlushMs, left))));
  slot.open = null;
  return flush(env, binding, delivery.statsShards, slot, window);
}

/** An immediate write of one batch to shard 0, without a window: what a flush is, for callers that need it now. */
export function flushStats(env: Record<string, unknown>, binding: string | null, batch: StatsBatch): Promise<void> {
  return recordStats(env, { stats: binding, statsFlushMs: 0, statsShards: 1 }, batch);
}
