/**
 * Per-sink counters: batch.ts collects deltas, flush.ts sums them per
 * isolate and writes them to this isolate's shard (bounded in time, never
 * throwing), read.ts reads every shard and sums, object.ts is the Durable
 * Object that keeps them, types.ts what they are.
 */
export { RECENT_PER_FLUSH, StatsBatch } from "./batch";
export {
  counterFlushCost,
  counterFlushFailures,
  FLUSH_TRIES,
  type FlushCost,
  type FlushFailures,
  flushStats,
  isolateShard,
  pendingWindow,
  recordStats,
  STATS_TIMEOUT_MS,
  type StatsDelivery,
  shardName,
  statsStub,
} from "./flush";
export { ERRORS_KEPT, type FlushResult, TailfanStats } from "./object";
export {
  countersExactness,
  missingText,
  readCounters,
  readRecentRecords,
  type ShardMiss,
  sumSinkStats,
  unavailableText,
} from "./read";
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
  unaccountedOf,
  zeroCounts,
} from "./types";
