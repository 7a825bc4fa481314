/**
 * Outbound requests per 1,000 producer invocations, direct vs buffered
 * delivery, on the real local runtime (workerd via Miniflare).
 *
 * A producer Worker that logs 2 or 3 lines per request is tailed by tailfan
 * (bundled from src/index.ts behind bench/requests-worker.ts, which only
 * counts binding calls). tailfan has three sinks: `collector` (http, every
 * record, to a local Node server that counts requests), `archive` (r2, every
 * record) and `problems` (kv, warn and above). For each mode the run drives
 * the invocations, waits until tailfan's counters (GET /status) show every
 * record delivered, and reports the sink requests: requests the HTTP server
 * received + LOGS_R2.put calls + LOGS_KV.put calls, cross-checked against
 * each sink's `requests` counter. Queue sends (tail() → TAILFAN_QUEUE in
 * buffered mode) and counters writes (TailfanStats) are reported apart.
 *
 * Used by bench/run.mjs; also runs alone: node bench/requests.mjs
 *   [--invocations N (1000)] [--concurrency N (20)] [--warn-every N (10)] [--json]
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { intOption, parseCli } from "../demo/cli.mjs";
import { bundleWorker, startCollector } from "./shared.mjs";

/** Buffered mode: at most this many sink requests per 1,000 producer invocations. */
export const TARGET_PER_1000 = 10;
const ADMIN_TOKEN = "bench-admin-token";
const DRAIN_TIMEOUT_MS = 30_000;

const met = (ok) => (ok ? "MET" : "NOT MET");
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Logs 2 lines per request, and a warning on every `warnEvery`-th one (0: never). */
const producerScript = (warnEvery) => `export default {
  async fetch(request) {
    const url = new URL(request.url);
    const i = Number(url.searchParams.get("i"));
    console.log("request", i, url.pathname);
    console.info("served", { path: url.pathname, i });
    if (${warnEvery} > 0 && i % ${warnEvery} === 0) console.warn("slow upstream", { i, ms: 1234 });
    return new Response("ok");
  },
};`;

const sinksFor = (collectorUrl) => [
  { name: "collector", type: "http", url: collectorUrl, format: "ndjson" },
  { name: "archive", type: "r2", binding: "LOGS_R2", prefix: "bench" },
  // per = "batch": one KV entry per batch, the setting for high volume (in direct mode a batch is one invocation).
  { name: "problems", type: "kv", binding: "LOGS_KV", level: "warn", key: "bench/{ts}-{id}", per: "batch" },
];

const DELIVERY = {
  direct: { stats: "TAILFAN_STATS" },
  buffered: { mode: "buffered", queue: "TAILFAN_QUEUE", stats: "TAILFAN_STATS" },
};

async function runMode(mode, { scriptPath, invocations, concurrency, warnEvery }) {
  const collector = await startCollector();
  const buffered = mode === "buffered";
  // workerd's console output: the producer's lines are dropped, tailfan's own complaints are kept and shown.
  const tailfanLogs = [];
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      handleStructuredLogs: ({ level, message }) => {
        if (/tailfan/i.test(message) && level !== "log" && level !== "info" && level !== "debug") {
          tailfanLogs.push(`${level}: ${message.trim()}`);
        }
      },
      workers: [
        {
          name: "producer",
          modules: true,
          script: producerScript(warnEvery),
          compatibilityDate: "2025-11-01",
          tails: ["tailfan"],
        },
        {
          name: "tailfan",
          modules: true,
          scriptPath,
          modulesRoot: dirname(scriptPath),
          compatibilityDate: "2025-11-01",
          bindings: {
            SINKS: JSON.stringify(sinksFor(collector.url)),
            DELIVERY: JSON.stringify(DELIVERY[mode]),
            ADMIN_TOKEN,
          },
          kvNamespaces: ["LOGS_KV"],
          r2Buckets: ["LOGS_R2"],
          durableObjects: { TAILFAN_STATS: { className: "TailfanStats", useSQLite: true } },
          ...(buffered
            ? {
                queueProducers: { TAILFAN_QUEUE: { queueName: "tailfan-work" } },
                queueConsumers: { "tailfan-work": { maxBatchSize: 100, maxBatchTimeout: 1 } },
              }
            : {}),
        },
      ],
    }),
  );
  try {
    await mf.ready;
    const tailfan = await mf.getWorker("tailfan");
    const getJson = async (path, headers = {}) => {
      const res = await tailfan.fetch(`http://tailfan.local${path}`, { headers });
      const text = await res.text();
      if (!res.ok) throw new Error(`tailfan ${path} answered ${res.status}: ${text.slice(0, 500)}`);
      return JSON.parse(text);
    };
    const health = await getJson("/health");
    if (!health.ok) throw new Error(`tailfan config invalid: ${JSON.stringify(health)}`);

    // Every invocation gives an invocation record and 2 logs, plus a warning on every warnEvery-th.
    let expectedRecords = invocations * 3;
    if (warnEvery > 0) for (let i = 0; i < invocations; i += warnEvery) expectedRecords++;
    const t0 = performance.now();
    let next = 0;
    let failed = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, invocations) }, async () => {
        while (next < invocations) {
          const i = next++;
          const res = await mf.dispatchFetch(`http://producer.local/p?i=${i}`);
          await res.arrayBuffer();
          if (res.status !== 200) failed++;
        }
      }),
    );
    const driveMs = performance.now() - t0;

    // Drained: every tail() (and queue()) finished, and every sink's records are accounted for, none pending.
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const deadline = Date.now() + DRAIN_TIMEOUT_MS;
    let status;
    let counts;
    let drained = false;
    for (;;) {
      counts = await getJson("/__bench/counts");
      status = await getJson("/status", auth);
      const sinks = status.sinks ?? [];
      drained =
        counts.tailCalls >= invocations &&
        counts.tailDone === counts.tailCalls &&
        counts.queueDone === counts.queueCalls &&
        sinks.find((s) => s.sink === "archive")?.totals.received === expectedRecords &&
        sinks.every((s) => s.totals.pending === 0 && s.unaccounted === 0 && s.totals.sent === s.totals.received);
      if (drained || Date.now() > deadline) break;
      await sleep(100);
    }
    const drainMs = performance.now() - t0 - driveMs;
    // Let any straggling request land before the final read.
    await sleep(200);
    counts = await getJson("/__bench/counts");
    status = await getJson("/status", auth);
    const bySink = Object.fromEntries((status.sinks ?? []).map((s) => [s.sink, s.totals]));
    const kv = await mf.getKVNamespace("LOGS_KV", "tailfan");
    let kvKeys = 0;
    let cursor;
    do {
      const page = await kv.list({ prefix: "bench/", cursor });
      kvKeys += page.keys.length;
      cursor = page.list_complete ? undefined : page.cursor;
    } while (cursor);
    const r2 = await mf.getR2Bucket("LOGS_R2", "tailfan");
    let r2Objects = 0;
    cursor = undefined;
    do {
      const page = await r2.list({ prefix: "bench/", cursor });
      r2Objects += page.objects.length;
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);

    const sinkRequests = { collector: collector.seen.requests, archive: counts.r2Puts, problems: counts.kvPuts };
    const total = sinkRequests.collector + sinkRequests.archive + sinkRequests.problems;
    return {
      mode,
      invocations,
      failedInvocations: failed,
      drained,
      driveMs,
      drainMs,
      traceItems: counts.traceItems,
      tailCalls: counts.tailCalls,
      records: bySink.archive?.received ?? 0,
      expectedRecords,
      sinkRequests,
      totalSinkRequests: total,
      per1000: (n) => (n * 1000) / invocations,
      counters: bySink,
      crossCheck: {
        httpServerLines: collector.seen.lines,
        r2Objects,
        kvKeys,
      },
      queue: {
        sendBatch: counts.queueSendBatch,
        send: counts.queueSend,
        messagesOut: counts.queueMessagesOut,
        consumerCalls: counts.queueCalls,
        messagesIn: counts.queueMessagesIn,
      },
      statsWrites: counts.statsWrites,
      tailfanLogs,
    };
  } finally {
    await mf.dispose().catch(() => {});
    await collector.close();
  }
}

function printMode(r) {
  const p = (n) => r.per1000(n).toFixed(1);
  const c = r.counters;
  const check = (a, b) => (a === b ? "ok" : `MISMATCH ${a} vs ${b}`);
  console.log(
    `\n  ${r.mode}: ${r.invocations} invocations (${r.failedInvocations} non-200), ${r.tailCalls} tail() calls, ${r.records} records; ` +
      `driven in ${(r.driveMs / 1000).toFixed(1)} s, drained ${(r.drainMs / 1000).toFixed(1)} s later${r.drained ? "" : "  (TIMED OUT: figures may be incomplete)"}`,
  );
  console.log(`    ${pad("sink requests", 36)}${lpad("count", 8)}${lpad("per 1000 inv", 14)}   cross-check`);
  const row = (label, n, note) => console.log(`    ${pad(label, 36)}${lpad(n, 8)}${lpad(p(n), 14)}   ${note}`);
  row(
    "collector (http): server received",
    r.sinkRequests.collector,
    `counter requests ${c.collector?.requests ?? "?"}: ${check(r.sinkRequests.collector, c.collector?.requests)}; ` +
      `records at server ${r.crossCheck.httpServerLines} / sent ${c.collector?.sent ?? "?"}`,
  );
  row(
    "archive (r2): LOGS_R2.put calls",
    r.sinkRequests.archive,
    `counter requests ${c.archive?.requests ?? "?"}: ${check(r.sinkRequests.archive, c.archive?.requests)}; objects ${r.crossCheck.r2Objects}`,
  );
  row(
    "problems (kv): LOGS_KV.put calls",
    r.sinkRequests.problems,
    `counter requests ${c.problems?.requests ?? "?"}${r.sinkRequests.problems === c.problems?.requests ? "" : " (counts send attempts; a send may put several keys)"}; keys ${r.crossCheck.kvKeys}; ${c.problems?.received ?? "?"} records`,
  );
  row("total sink requests", r.totalSinkRequests, "");
  const q = r.queue;
  console.log(
    `    queue sends (tail() → TAILFAN_QUEUE):  ${q.sendBatch + q.send} call(s), ${q.messagesOut} message(s) = ${p(q.sendBatch + q.send)} per 1000 inv` +
      (q.consumerCalls ? `; consumed in ${q.consumerCalls} queue() call(s), ${q.messagesIn} message(s)` : ""),
  );
  console.log(
    `    counters writes (TailfanStats.add):    ${r.statsWrites} = ${p(r.statsWrites)} per 1000 inv (not a sink request)`,
  );
  if (r.tailfanLogs.length > 0) {
    console.log(`    tailfan logged ${r.tailfanLogs.length} warning(s)/error(s), first ones:`);
    for (const line of r.tailfanLogs.slice(0, 3)) console.log(`      ${line.slice(0, 300)}`);
  }
}

/**
 * Runs both modes and prints the figures. Returns { direct, buffered, ratio, met }.
 * Options: invocations (1000), concurrency (20), warnEvery (10: every 10th invocation logs a warning).
 */
export async function measureRequests({ invocations = 1000, concurrency = 20, warnEvery = 10 } = {}) {
  const t0 = performance.now();
  const work = mkdtempSync(join(tmpdir(), "tailfan-bench-requests-"));
  try {
    const scriptPath = await bundleWorker("bench/requests-worker.ts", work, "tailfan-counted.js");
    console.log(
      `\noutbound requests per 1000 producer invocations (workerd via Miniflare; ${invocations} invocations, ${concurrency} at a time; ` +
        `each logs 2 lines${warnEvery > 0 ? `, every ${warnEvery}th also a warning` : ""}; ` +
        `sinks: collector http every record, archive r2 every record, problems kv warn+)`,
    );
    const opts = { scriptPath, invocations, concurrency, warnEvery };
    const direct = await runMode("direct", opts);
    printMode(direct);
    const buffered = await runMode("buffered", opts);
    printMode(buffered);

    const b = (n) => buffered.per1000(n);
    const totalB = b(buffered.totalSinkRequests);
    const ratio = direct.totalSinkRequests / Math.max(1, buffered.totalSinkRequests);
    console.log(
      `\n  sink requests per 1000 inv: direct ${direct.per1000(direct.totalSinkRequests).toFixed(1)}, buffered ${totalB.toFixed(1)}; ` +
        `direct / buffered = ${ratio.toFixed(1)}x`,
    );
    const perSink = Object.entries(buffered.sinkRequests).map(([name, n]) => [name, b(n)]);
    console.log(
      `  buffered target <= ${TARGET_PER_1000} sink requests per 1000 inv, all sinks together: ${totalB.toFixed(1)}  ${met(totalB <= TARGET_PER_1000)}`,
    );
    console.log(
      `  per sink: ${perSink.map(([name, n]) => `${name} ${n.toFixed(1)} ${met(n <= TARGET_PER_1000)}`).join(", ")}`,
    );
    console.log(`  (measured in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    const strip = ({ per1000, ...rest }) => rest;
    return {
      direct: strip(direct),
      buffered: strip(buffered),
      ratio,
      target: TARGET_PER_1000,
      met: totalB <= TARGET_PER_1000,
      metPerSink: Object.fromEntries(perSink.map(([name, n]) => [name, n <= TARGET_PER_1000])),
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values: cli } = parseCli(
    "bench-requests",
    `Usage: node bench/requests.mjs [--invocations N] [--concurrency N] [--warn-every N] [--json]
Outbound requests per 1,000 producer invocations, direct and buffered (defaults 1000, 20, 10).`,
    {
      invocations: { type: "string", default: "1000" },
      concurrency: { type: "string", default: "20" },
      "warn-every": { type: "string", default: "10" },
      json: { type: "boolean", default: false },
    },
  );
  const opt = (name, min = 1) => intOption("bench-requests", name, cli[name], min);
  measureRequests({
    invocations: opt("invocations"),
    concurrency: opt("concurrency"),
    warnEvery: opt("warn-every", 0),
  })
    .then((r) => {
      if (cli.json) console.log(JSON.stringify(r, null, 2));
    })
    .catch((err) => {
      console.error(`requests bench could not run: ${err?.stack ?? err}`);
      process.exit(1);
    });
}
