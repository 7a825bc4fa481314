/**
 * A load test on the real local runtime (workerd via Miniflare): a producer
 * Worker driven as fast as this machine takes it, tailed by tailfan with the
 * shipped wrangler.toml's SINKS and DELIVERY plus an http sink to a local
 * server, in direct and in buffered mode. Nothing may be lost and the counts
 * must be exact: the http server receives every record once, the archive
 * counts every record received and sent, nothing is pending or unaccounted,
 * and `GET /status` says the counters are exact.
 *
 * It prints the rate it sustained, the records delivered, and the requests
 * to the counters objects and messages to the queues per second at that
 * rate. A benchmark, not a test: it exits 1 only when a record is lost or a
 * count is off, never for a rate.
 *
 * Used by bench/run.mjs (20,000 invocations; 1,000 with --quick); also runs
 * alone: node bench/load.mjs [--invocations N (20000)] [--concurrency N (100)]
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { intOption, parseCli } from "../demo/cli.mjs";
import { reconcile, runOne, shippedConfig } from "./cost.mjs";
import { bundleWorker } from "./shared.mjs";

const sum = (values) => values.reduce((a, b) => a + b, 0);
const fmt = (n) => Math.round(n).toLocaleString("en-US");

/** What one run shows: lost or duplicated records and counts that are off, as sentences. */
function problemsOf(run) {
  // An attempt that timed out before the server read it is a fetch() the collector never saw, and is retried:
  // under load that is not a loss, so the fetch count is printed rather than reconciled. Records are.
  const problems = reconcile(run).filter((p) => !p.includes("outbound fetch() calls"));
  if (run.collector.lines !== run.records) {
    problems.push(`the http sink received ${run.collector.lines} of ${run.records} records`);
  }
  if (run.collector.unique !== run.collector.lines) {
    problems.push(`the http sink received ${run.collector.lines - run.collector.unique} records twice`);
  }
  for (const s of run.status) {
    const t = s.totals;
    if (s.sink === "archive" && (t.received !== run.records || t.sent !== run.records)) {
      problems.push(`archive: ${t.received} received and ${t.sent} sent of ${run.records} records`);
    }
    if (t.pending !== 0 || s.unaccounted !== 0) {
      problems.push(`${s.sink}: ${t.pending} pending, ${s.unaccounted} unaccounted`);
    }
  }
  if (run.countersExact && run.countersExact.exact !== true) {
    problems.push(`GET /status says the counters are not exact: ${JSON.stringify(run.countersExact)}`);
  }
  return problems;
}

/** How full each batching sink's writes were: records and record bytes per write against the limits tailfan resolved. */
function fillOf(run) {
  const limits = Object.fromEntries((run.counts.config?.sinks ?? []).map((s) => [s.name, s]));
  const out = [];
  for (const s of run.status) {
    const sink = limits[s.sink];
    if (sink === undefined || !s.totals.requests) continue;
    const per = s.totals.sent / s.totals.requests;
    const perBytes = (s.totals.bytes ?? 0) / s.totals.requests;
    // A batch is full when either limit is reached: the fill is the nearer of the two.
    const fill = Math.max(per / sink.maxRecords, perBytes / sink.maxBytes);
    out.push({
      sink: s.sink,
      perRequest: per,
      fill,
      text:
        `${s.sink} (${sink.type}) ${fmt(s.totals.requests)} writes, ${fmt(per)} records and ${(perBytes / 1024 / 1024).toFixed(2)} MiB each, ` +
        `${Math.round(100 * fill)} % full (maxRecords ${fmt(sink.maxRecords)}, maxBytes ${(sink.maxBytes / 1024 / 1024).toFixed(0)} MiB)`,
    });
  }
  return out;
}

export async function measureLoad({ invocations = 20_000, concurrency = 100 } = {}) {
  const shipped = shippedConfig();
  console.log(
    `\nload test (workerd via Miniflare; ${fmt(invocations)} producer invocations, ${concurrency} at a time, as fast as this machine takes them; ` +
      "wrangler.toml's SINKS and DELIVERY plus an http sink; nothing lost, counts exact)",
  );
  const work = mkdtempSync(join(tmpdir(), "tailfan-bench-load-"));
  const results = [];
  try {
    const scriptPath = await bundleWorker("bench/cost-worker.ts", work, "tailfan-load.js");
    for (const mode of ["direct", "buffered"]) {
      const run = await runOne({
        label: "load",
        sinks: (url) => [...shipped.sinks, { name: "collector", type: "http", url, format: "ndjson", gzip: true }],
        mode,
        shipped,
        scriptPath,
        invocations,
        concurrency,
        drainTimeoutMs: Math.max(60_000, invocations * 10),
      });
      const problems = problemsOf(run);
      const rate = invocations / (run.driveMs / 1000);
      const c = run.counts;
      // tail() and queue() only: the load test's own GET /status reads are left out.
      const origins = [c.byOrigin.tail, c.byOrigin.queue];
      const doRequests = sum(origins.map((o) => o.doRequests));
      const queueMessages = sum(origins.flatMap((o) => Object.values(o.queues).map((q) => q.messages)));
      const seconds = (run.driveMs + run.drainMs) / 1000;
      console.log(
        `  ${mode.padEnd(8)} ${fmt(rate)} invocations/s for ${(run.driveMs / 1000).toFixed(1)} s, drained ${(run.drainMs / 1000).toFixed(1)} s later; ` +
          `${fmt(run.collector.lines)} of ${fmt(run.records)} records at the http sink in ${fmt(run.collector.requests)} requests (${fmt(c.fetches)} fetch() calls); ` +
          `counters objects ${(doRequests / seconds).toFixed(1)} req/s, queues ${(queueMessages / seconds).toFixed(1)} msgs/s` +
          `${c.queueCalls > 0 ? `, ${fmt(c.queueCalls)} queue() calls of ${fmt(c.queueMessagesIn / c.queueCalls)} messages` : ""}; ` +
          `${problems.length === 0 ? "nothing lost, counts exact" : `PROBLEMS: ${problems.join("; ")}`}`,
      );
      const fills = fillOf(run);
      console.log(`           batches: ${fills.map((f) => f.text).join("; ")}`);
      results.push({ mode, rate, records: run.records, delivered: run.collector.lines, problems, fills });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { results, ok: results.every((r) => r.problems.length === 0) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values: cli } = parseCli(
    "bench-load",
    `Usage: node bench/load.mjs [--invocations N] [--concurrency N]
A load test: producer invocations as fast as this machine takes them, direct and buffered; nothing lost, counts exact (defaults 20000, 100).`,
    {
      invocations: { type: "string", default: "20000" },
      concurrency: { type: "string", default: "100" },
    },
  );
  measureLoad({
    invocations: intOption("bench-load", "invocations", cli.invocations, 1),
    concurrency: intOption("bench-load", "concurrency", cli.concurrency, 1),
  })
    .then((r) => {
      if (!r.ok) process.exit(1);
    })
    .catch((err) => {
      console.error(`load test could not run: ${err?.stack ?? err}`);
      process.exit(1);
    });
}
