/**
 * Per-sink counters: batch.ts collects one invocation's deltas, flush.ts
 * writes them (bounded in time, never throwing), object.ts is the Durable
 * Object that keeps them, types.ts what they are.
 */
export { StatsBatch } from "./batch";
export { counterFlushFailures, type FlushFailures, flushStats, STATS_TIMEOUT_MS, statsStub } from "./flush";
export { ERRORS_KEPT, TailfanStats } from "./object";
export {
  COUNTERS,
  type Counter,
  type Counts,
  type RecentAnswer,
  type RecentQuery,
  type RecentRecord,
  type SinkDelta,
  type SinkError,
  type SinkStats,
  STATS_WINDOWS,
  type StatsWindow,
  zeroCounts,
} from "./types";
