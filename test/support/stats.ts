/**
 * DELIVERY keys for tests that read an invocation's counts right after it:
 * a write per invocation, to one object. The counters window and the shards
 * have tests of their own.
 */
export const STATS_AT_ONCE = { statsFlushMs: 0, statsShards: 1 } as const;
