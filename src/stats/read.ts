/**
 * Reading the counters: every shard in parallel, each with the usual
 * timeout, summed. A shard that does not answer is named in `missing`, so
 * that no partial sum passes for the whole.
 */
import { type FlushFailures, statsStub } from "./flush";
import {
  COUNTERS,
  type Counts,
  type RecentAnswer,
  type RecentQuery,
  type RecentRecord,
  type SinkError,
  type SinkStats,
  STATS_WINDOWS,
  type StatsWindow,
  unaccountedOf,
  zeroCounts,
} from "./types";

/** A counters shard that did not answer, and why. */
export interface ShardMiss {
  shard: number;
  error: string;
}

/** Answers of the shards that answered; null when none did. */
export interface ShardedRead<T> {
  value: T | null;
  /** Shards whose counts are not in `value`. */
  missing: ShardMiss[];
}

async function everyShard<T>(
  env: Record<string, unknown>,
  binding: string,
  shards: number,
  read: (stub: ReturnType<typeof statsStub>) => Promise<T>,
): Promise<{ answers: T[]; missing: ShardMiss[] }> {
  const settled = await Promise.allSettled(Array.from({ length: shards }, (_, i) => read(statsStub(env, binding, i))));
  const answers: T[] = [];
  const missing: ShardMiss[] = [];
  settled.forEach((s, shard) => {
    if (s.status === "fulfilled") answers.push(s.value);
    else missing.push({ shard, error: s.reason instanceof Error ? s.reason.message : String(s.reason) });
  });
  return { answers, missing };
}

function addCounts(into: Counts, from: Counts): void {
  for (const c of COUNTERS) into[c] += from[c];
}

/** Sums the per-sink counters of several shards. */
export function sumSinkStats(shards: readonly SinkStats[][]): SinkStats[] {
  const out = new Map<string, SinkStats>();
  for (const list of shards) {
    for (const s of list) {
      let sum = out.get(s.sink);
      if (!sum) {
        sum = {
          sink: s.sink,
          totals: zeroCounts(),
          minutes: [],
          lastError: null,
          lost: zeroCounts(),
          unaccounted: 0,
          windows: { "5m": zeroCounts(), "1h": zeroCounts(), "24h": zeroCounts() },
        };
        out.set(s.sink, sum);
      }
      addCounts(sum.totals, s.totals);
      addCounts(sum.lost, s.lost ?? zeroCounts());
      for (const w of Object.keys(STATS_WINDOWS) as StatsWindow[]) addCounts(sum.windows[w], s.windows[w]);
      for (const m of s.minutes) {
        const same = sum.minutes.find((x) => x.minute === m.minute);
        if (same) addCounts(same, m);
        else sum.minutes.push({ ...m });
      }
      if (s.lastError && (sum.lastError === null || s.lastError.at > sum.lastError.at)) sum.lastError = s.lastError;
    }
  }
  const sinks = [...out.values()].sort((a, b) => (a.sink < b.sink ? -1 : a.sink > b.sink ? 1 : 0));
  for (const s of sinks) {
    s.minutes.sort((a, b) => a.minute - b.minute);
    s.unaccounted = unaccountedOf(s.totals);
  }
  return sinks;
}

/** The per-sink counters of every shard, summed, and the latest errors of all. */
export async function readCounters(
  env: Record<string, unknown>,
  binding: string,
  shards: number,
  windowMinutes: number,
  errorsLimit: number,
): Promise<{ sinks: SinkStats[] | null; errors: SinkError[] | null; missing: ShardMiss[] }> {
  const { answers, missing } = await everyShard(env, binding, shards, (stub) =>
    Promise.all([stub.snapshot(windowMinutes), stub.errors(errorsLimit)]),
  );
  if (answers.length === 0) return { sinks: null, errors: null, missing };
  const errors = answers
    .flatMap(([, e]) => e)
    .sort((a, b) => b.at - a.at)
    .slice(0, errorsLimit);
  return { sinks: sumSinkStats(answers.map(([s]) => s)), errors, missing };
}

/**
 * Merges shards' lists, each newest first in the order it was written, by
 * record time; a shard's own order is kept (records of one write share it).
 */
function newestFirst(lists: RecentRecord[][], limit: number): RecentRecord[] {
  const heads = lists.map(() => 0);
  const out: RecentRecord[] = [];
  while (out.length < limit) {
    let best: RecentRecord | undefined;
    let from = -1;
    lists.forEach((list, i) => {
      const r = list[heads[i] ?? 0];
      if (r && (best === undefined || r.at > best.at)) {
        best = r;
        from = i;
      }
    });
    if (best === undefined) break;
    out.push(best);
    heads[from] = (heads[from] ?? 0) + 1;
  }
  return out;
}

/** The latest records of every shard, newest first; throws when no shard answers. */
export async function readRecentRecords(
  env: Record<string, unknown>,
  binding: string,
  shards: number,
  query: RecentQuery,
): Promise<RecentAnswer & { missing: ShardMiss[] }> {
  const { answers, missing } = await everyShard(env, binding, shards, (stub) => stub.recent(query));
  if (answers.length === 0) throw new Error(missing.map((m) => m.error).join("; "));
  const uniq = <T>(xs: T[]) => [...new Set(xs)].sort((a, b) => (String(a) < String(b) ? -1 : 1));
  return {
    records: newestFirst(
      answers.map((a) => a.records),
      query.limit ?? 50,
    ),
    kept: answers.reduce((n, a) => n + a.kept, 0),
    outcomes: uniq(answers.flatMap((a) => a.outcomes)),
    scripts: uniq(answers.flatMap((a) => a.scripts)),
    missing,
  };
}

/** Why no shard answered: each distinct reason once. */
export function unavailableText(missing: readonly ShardMiss[]): string {
  return [...new Set(missing.map((m) => m.error))].join("; ");
}

/** Which shards' counts a sum lacks, for humans. */
export function missingText(missing: readonly ShardMiss[], shards: number): string {
  const which = missing.map((m) => `shard ${m.shard}: ${m.error}`).join("; ");
  return `the counts of ${missing.length} of ${shards} counters shard(s) are missing (${which})`;
}

/**
 * Whether the counts shown are all there is: every shard answered, no
 * isolate gave deltas up, none wait in this isolate. When not, how much is
 * missing.
 */
export function countersExactness(missing: readonly ShardMiss[], sinks: SinkStats[] | null, writes: FlushFailures) {
  const lostRecords = (sinks ?? []).reduce((n, s) => n + s.lost.received, 0);
  return {
    exact: sinks !== null && missing.length === 0 && lostRecords === 0 && writes.held + writes.lost === 0,
    /** Shards that did not answer: none of their counts are in the sums. */
    missingShards: missing.map((m) => m.shard),
    /** Records whose counts isolates gave up after failed writes (recorded by their next successful one). */
    lostRecords,
  };
}
