/**
 * Published Cloudflare prices and limits the cost benchmark (bench/cost.mjs)
 * multiplies its counts by. Workers Paid, beyond the included amounts; each
 * entry names the page it comes from. Update a figure here when its page
 * changes: nothing else in the repository repeats them.
 */

/** Dollars per million of each billed operation. */
export const PRICES = {
  doRequest: {
    usdPerMillion: 0.15,
    what: "Durable Object request (RPC)",
    source: "https://developers.cloudflare.com/durable-objects/platform/pricing/",
  },
  doRowWritten: {
    usdPerMillion: 1.0,
    what: "Durable Object SQLite row written",
    source: "https://developers.cloudflare.com/durable-objects/platform/pricing/",
  },
  queueOperation: {
    usdPerMillion: 0.4,
    what: "Queue operation (each 64 KB written, read or deleted)",
    source: "https://developers.cloudflare.com/queues/platform/pricing/",
  },
  r2ClassA: {
    usdPerMillion: 4.5,
    what: "R2 Class A operation (put)",
    source: "https://developers.cloudflare.com/r2/pricing/",
  },
  kvWrite: {
    usdPerMillion: 5.0,
    what: "KV write",
    source: "https://developers.cloudflare.com/kv/platform/pricing/",
  },
  d1RowWritten: {
    usdPerMillion: 1.0,
    what: "D1 row written",
    source: "https://developers.cloudflare.com/d1/platform/pricing/",
  },
  aePoint: {
    usdPerMillion: 0.25,
    what: "Analytics Engine data point",
    source: "https://developers.cloudflare.com/analytics/analytics-engine/pricing/",
  },
  logEvent: {
    usdPerMillion: 0.6,
    what: "Workers Logs event",
    source: "https://developers.cloudflare.com/workers/observability/logs/workers-logs/",
  },
  workerRequest: {
    usdPerMillion: 0.3,
    what: "Worker request (a queue() consumer invocation, priced as one)",
    source: "https://developers.cloudflare.com/workers/platform/pricing/",
  },
  cpuMs: {
    usdPerMillion: 0.02,
    what: "CPU millisecond",
    source: "https://developers.cloudflare.com/workers/platform/pricing/",
  },
  subrequest: {
    usdPerMillion: 0,
    what: "outbound fetch() (subrequests are not billed)",
    source: "https://developers.cloudflare.com/workers/platform/pricing/",
  },
};

/** What the other ways of getting Workers logs out cost, per million producer invocations. */
export const REFERENCES = {
  logpush: {
    usdPerMillion: 0.05,
    what: "Workers Logpush (Workers Trace Events)",
    source: "https://developers.cloudflare.com/workers/observability/logs/logpush/",
  },
};

/** Published limits the 100,000 invocations/s arithmetic compares against. */
export const LIMITS = {
  doRequestsPerSecond: {
    value: 1_000,
    what: "one Durable Object, requests/s (soft limit)",
    source: "https://developers.cloudflare.com/durable-objects/platform/limits/",
  },
  queueMessagesPerSecond: {
    value: 5_000,
    what: "one queue, messages/s",
    source: "https://developers.cloudflare.com/queues/platform/limits/",
  },
  queueOperationBytes: {
    value: 64 * 1024,
    what: "bytes per billed queue operation",
    source: "https://developers.cloudflare.com/queues/platform/pricing/",
  },
};
