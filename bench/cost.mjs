/**
 * Cost and scale per producer invocation, on the real local runtime (workerd
 * via Miniflare): every billed operation tailfan causes, counted at the
 * bindings by bench/cost-worker.ts, multiplied by the prices in
 * bench/prices.mjs.
 *
 * A producer Worker (2 log lines per request, a warning on every 10th, an
 * uncaught exception on every 100th) is tailed by tailfan with the SINKS and
 * DELIVERY of the shipped wrangler.toml, and again with a fourth sink (http,
 * every record, to a local server). Each runs in direct and in buffered mode.
 * The run prints, per 1,000 invocations, each operation and what it costs per
 * million invocations, tailfan's own overhead (counters, work queue, its own
 * logs, CPU) apart from the sinks' own writes, the highest rate any single
 * Durable Object or queue receives at 100,000 invocations/s, and the targets
 * as MET / NOT MET.
 *
 * A benchmark, not a test: it fails (exit 1) only when it cannot run or its
 * counts do not reconcile (a mode that does not drain every record, requests
 * sent to the counters object that it did not serve, puts without objects).
 *
 * Used by bench/run.mjs; also runs alone: node bench/cost.mjs
 *   [--invocations N (3000)] [--concurrency N (20)] [--cpu-ms MS] [--json]
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { unstable_readConfig } from "wrangler";
import { intOption, parseCli } from "../demo/cli.mjs";
import { LIMITS, PRICES, REFERENCES } from "./prices.mjs";
import { bundleWorker, ROOT, startCollector } from "./shared.mjs";

const ADMIN_TOKEN = "bench-admin-token";
const DRAIN_TIMEOUT_MS = 60_000;
/** The rate the scale arithmetic is done for. */
export const AT_RATE = 100_000;
/** Targets, dollars per million producer invocations and requests/s per object at AT_RATE. */
export const TARGETS = {
  bufferedTotal: 0.1,
  bufferedOwn: 0.02,
  directOwn: 0.1,
  doPerSecond: 500,
  queuePerSecond: LIMITS.queueMessagesPerSecond.value,
  archivePer1000: 1,
};
const WARN_EVERY = 10;
const THROW_EVERY = 100;

const met = (ok) => (ok ? "MET" : "NOT MET");
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const usd = (n) => `$${n < 0.01 && n > 0 ? n.toFixed(4) : n.toFixed(2)}`;

const producerScript = `export default {
  async fetch(request) {
    const url = new URL(request.url);
    const i = Number(url.searchParams.get("i"));
    console.log("request", i, url.pathname);
    console.info("served", { path: url.pathname, i });
    if (i % ${WARN_EVERY} === 0) console.warn("slow upstream", { i, ms: 1234 });
    if (i % ${THROW_EVERY} === ${THROW_EVERY / 2}) throw new Error("upstream exploded " + i);
    return new Response("ok");
  },
};`;

/** Records the producer's invocations give: an invocation record and its logs, plus one per exception. */
function expectedRecords(invocations) {
  let n = 0;
  for (let i = 0; i < invocations; i++) {
    n += 3;
    if (i % WARN_EVERY === 0) n++;
    if (i % THROW_EVERY === THROW_EVERY / 2) n++;
  }
  return n;
}

/** The shipped wrangler.toml, read by wrangler itself: SINKS, DELIVERY, queues, observability. */
export function shippedConfig() {
  const config = unstable_readConfig({ config: join(ROOT, "wrangler.toml") }, { hideWarnings: true });
  const vars = config.vars ?? {};
  const parse = (v) => (typeof v === "string" ? JSON.parse(v) : v);
  const obs = config.observability ?? {};
  return {
    sinks: parse(vars.SINKS),
    delivery: parse(vars.DELIVERY ?? {}),
    producers: config.queues?.producers ?? [],
    consumers: config.queues?.consumers ?? [],
    // The bindings as declared; the counters class is run as the bench worker's counting subclass.
    kv: (config.kv_namespaces ?? []).map((b) => b.binding),
    r2: (config.r2_buckets ?? []).map((b) => b.binding),
    d1: (config.d1_databases ?? []).map((b) => b.binding),
    ae: Object.fromEntries((config.analytics_engine_datasets ?? []).map((d) => [d.binding, { dataset: d.dataset }])),
    objects: Object.fromEntries(
      (config.durable_objects?.bindings ?? []).map((b) => [
        b.name,
        { className: b.class_name === "TailfanStats" ? "CountedStats" : b.class_name, useSQLite: true },
      ]),
    ),
    // Workers Logs keeps this share of invocations, with all their lines; off: none.
    logSampling: obs.enabled ? (obs.head_sampling_rate ?? 1) : 0,
  };
}

async function countAll(list) {
  let n = 0;
  let cursor;
  do {
    const page = await list(cursor);
    n += page.items.length;
    cursor = page.next;
  } while (cursor);
  return n;
}

/** One run: a config (its sinks) in one mode. Returns the raw counts and the checks. */
export async function runOne({
  label,
  sinks,
  mode,
  shipped,
  scriptPath,
  invocations,
  concurrency,
  drainTimeoutMs = DRAIN_TIMEOUT_MS,
}) {
  const collector = await startCollector();
  const delivery = { ...shipped.delivery, ...(mode === "buffered" ? { mode: "buffered" } : {}) };
  const sinkList = sinks(collector.url);
  const queueProducers = Object.fromEntries(shipped.producers.map((p) => [p.binding, { queueName: p.queue }]));
  // The consumers' batch size and wait as shipped: a batch closes when full or after max_batch_timeout.
  const queueConsumers = Object.fromEntries(
    shipped.consumers.map((c) => [
      c.queue,
      {
        maxBatchSize: c.max_batch_size ?? 10,
        maxBatchTimeout: c.max_batch_timeout ?? 5,
        ...(c.dead_letter_queue ? { deadLetterQueue: c.dead_letter_queue } : {}),
      },
    ]),
  );
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      handleStructuredLogs: () => {},
      workers: [
        {
          name: "producer",
          modules: true,
          script: producerScript,
          compatibilityDate: "2025-11-01",
          tails: ["tailfan"],
        },
        {
          name: "tailfan",
          modules: true,
          scriptPath,
          modulesRoot: dirname(scriptPath),
          compatibilityDate: "2025-11-01",
          bindings: { SINKS: JSON.stringify(sinkList), DELIVERY: JSON.stringify(delivery), ADMIN_TOKEN },
          kvNamespaces: shipped.kv,
          r2Buckets: shipped.r2,
          d1Databases: shipped.d1,
          analyticsEngineDatasets: shipped.ae,
          durableObjects: shipped.objects,
          queueProducers,
          queueConsumers,
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

    const records = expectedRecords(invocations);
    const driveStart = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, invocations) }, async () => {
        while (next < invocations) {
          const i = next++;
          const res = await mf.dispatchFetch(`http://producer.local/p?i=${i}`);
          await res.arrayBuffer();
        }
      }),
    );

    const driveMs = performance.now() - driveStart;
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const deadline = Date.now() + drainTimeoutMs;
    let counts;
    let status;
    let drained = false;
    for (;;) {
      counts = await getJson("/__bench/cost");
      status = await getJson("/status", auth);
      const all = status.sinks ?? [];
      drained =
        counts.tailCalls >= invocations &&
        counts.tailDone === counts.tailCalls &&
        counts.queueDone === counts.queueCalls &&
        all.find((s) => s.sink === "archive")?.totals.received === records &&
        all.every((s) => s.totals.pending === 0 && s.unaccounted === 0);
      if (drained || Date.now() > deadline) break;
      await sleep(100);
    }
    // Let any straggling write land before the final read.
    await sleep(200);
    const drainMs = performance.now() - driveStart - driveMs;
    counts = await getJson("/__bench/cost");
    status = await getJson("/status", auth);

    const kvKeys = {};
    for (const binding of shipped.kv) {
      const kv = await mf.getKVNamespace(binding, "tailfan");
      kvKeys[binding] = await countAll(async (cursor) => {
        const p = await kv.list({ cursor });
        return { items: p.keys, next: p.list_complete ? undefined : p.cursor };
      });
    }
    const r2Objects = {};
    for (const binding of shipped.r2) {
      const r2 = await mf.getR2Bucket(binding, "tailfan");
      r2Objects[binding] = await countAll(async (cursor) => {
        const p = await r2.list({ cursor });
        return { items: p.objects, next: p.truncated ? p.cursor : undefined };
      });
    }
    return {
      label,
      mode,
      invocations,
      records,
      drained,
      driveMs,
      drainMs,
      counts,
      status: status.sinks ?? [],
      countersExact: status.countersExact ?? null,
      collector: { ...collector.seen },
      sinks: sinkList.map((s) => s.name),
      sinkBindings: sinkList.map((s) => s.binding).filter((b) => typeof b === "string"),
      kvKeys,
      r2Objects,
    };
  } finally {
    await mf.dispose().catch(() => {});
    await collector.close();
  }
}

const sum = (values) => values.reduce((a, b) => a + b, 0);

/**
 * Per-invocation counts of each billed operation (tail() and queue() only: the
 * bench's own /status reads are left out), their price, and whose they are.
 */
export function costOf(run, { delivery, logSampling, cpuMsPerInvocation, cpuSource = "the pipeline stage's figure" }) {
  const c = run.counts;
  const work = [c.byOrigin.tail, c.byOrigin.queue];
  const n = run.invocations;
  // tailfan's own bindings: those DELIVERY names that no sink writes through (the work queue, the counters).
  const sinkBindings = new Set(run.sinkBindings);
  const ownerOf = (binding) =>
    Object.values(delivery).includes(binding) && !sinkBindings.has(binding) ? "own" : "sink";
  const queueRows = [];
  for (const o of work) {
    for (const [binding, q] of Object.entries(o.queues)) {
      const row = queueRows.find((r) => r.binding === binding) ?? { binding, messages: 0, units: 0, bytes: 0 };
      if (!queueRows.includes(row)) queueRows.push(row);
      row.messages += q.messages;
      row.units += q.units;
      row.bytes += q.bytes;
    }
  }
  const byBinding = (key) => {
    const out = {};
    for (const o of work) for (const [b, v] of Object.entries(o[key])) out[b] = (out[b] ?? 0) + v;
    return out;
  };
  const consoleLines = sum(Object.values(c.console));
  // One Workers Logs event per invocation of tailfan (tail(), queue(), the object's requests) and per line.
  const doRequests = sum(work.map((o) => o.doRequests)) + c.doAlarms;
  const invocationsOfTailfan = c.tailCalls + c.queueCalls + doRequests;
  const logEvents = (invocationsOfTailfan + consoleLines) * logSampling;
  const ops = [];
  const add = (what, count, price, owner, note = "", extra = {}) =>
    ops.push({
      what,
      count,
      perInvocation: count / n,
      price,
      owner,
      note,
      usdPerMillion: (count / n) * price.usdPerMillion,
      ...extra,
    });
  add("Durable Object requests", doRequests, PRICES.doRequest, "own", c.doAlarms ? `${c.doAlarms} alarms` : "");
  add(
    "Durable Object rows written",
    c.sqlRowsWritten,
    PRICES.doRowWritten,
    "own",
    `${c.sqlStatements} statements; not priced: ${c.sqlSchemaRows ?? 0} rows creating the tables, once per object`,
  );
  for (const q of queueRows) {
    const owner = ownerOf(q.binding);
    add(
      `queue ${q.binding}: ${q.messages} msgs, 64 KB ops`,
      3 * q.units,
      PRICES.queueOperation,
      owner,
      `${(q.bytes / Math.max(1, q.messages) / 1024).toFixed(1)} KiB/msg`,
      { messagesPerInvocation: q.messages / n },
    );
  }
  add("queue() invocations", c.queueCalls, PRICES.workerRequest, "own", `${c.queueMessagesIn} msgs in`);
  for (const [b, k] of Object.entries(byBinding("r2Puts"))) add(`R2 puts ${b}`, k, PRICES.r2ClassA, ownerOf(b));
  for (const [b, k] of Object.entries(byBinding("kvPuts"))) add(`KV puts ${b}`, k, PRICES.kvWrite, ownerOf(b));
  add("D1 rows written", sum(work.map((o) => o.d1RowsWritten)), PRICES.d1RowWritten, "sink");
  for (const [b, k] of Object.entries(byBinding("aePoints")))
    add(`Analytics Engine points ${b}`, k, PRICES.aePoint, ownerOf(b));
  add("outbound HTTP requests", c.fetches, PRICES.subrequest, "sink");
  add(
    `tailfan log events (x${logSampling} sampled)`,
    logEvents,
    PRICES.logEvent,
    "own",
    `${invocationsOfTailfan} invocations (tail, queue, object) + ${consoleLines} lines`,
  );
  if (cpuMsPerInvocation !== undefined) {
    add("CPU ms", cpuMsPerInvocation * n, PRICES.cpuMs, "own", cpuSource);
  }
  const own = sum(ops.filter((o) => o.owner === "own").map((o) => o.usdPerMillion));
  const total = sum(ops.map((o) => o.usdPerMillion));

  // At AT_RATE invocations/s: the busiest single object and queue.
  const perObject = {};
  for (const o of work)
    for (const [id, k] of Object.entries(o.doObjects ?? {})) perObject[id] = (perObject[id] ?? 0) + k;
  const objects = Object.keys(perObject).length;
  const busiestObject = Math.max(0, ...Object.values(perObject));
  const doPerSecond = (busiestObject / n) * AT_RATE;
  const busiestQueue = queueRows.reduce((best, q) => (q.messages > (best?.messages ?? -1) ? q : best), null);
  const queuePerSecond = busiestQueue ? (busiestQueue.messages / n) * AT_RATE : 0;
  return {
    ops,
    own,
    sinks: total - own,
    total,
    scale: { objects, doPerSecond, busiestQueue: busiestQueue?.binding ?? null, queuePerSecond },
  };
}

/** The rates per isolate the own-cost arithmetic is printed for, invocations/s. */
export const ISOLATE_RATES = [10, 100, 1_000];

/** The work queue's messages per invocation in a run: the queue op that is tailfan's own. */
const workMessagesPerInvocation = (cost) =>
  cost.ops.find((o) => o.owner === "own" && o.messagesPerInvocation !== undefined)?.messagesPerInvocation;

/**
 * tailfan's own dollars per million invocations when each isolate sees `rate`
 * invocations/s. The run measures one isolate driven hard; spread over many
 * isolates, each still writes its counters at least once per
 * `DELIVERY.statsFlushMs` and, in buffered mode, a work message at least once
 * per `bufferMs`, so at a low rate per isolate those windows, not the records,
 * set the count. `windows` are the ones tailfan resolved for the run
 * (`run.counts.config`). The rest of the own cost (logs, CPU, queue() calls)
 * is kept as measured.
 */
export function ownAtIsolateRate(cost, mode, windows, rate) {
  const flushS = windows.statsFlushMs / 1000;
  const bufferS = windows.bufferMs / 1000;
  let own = cost.own;
  const requests = cost.ops.find((o) => o.what === "Durable Object requests");
  const rows = cost.ops.find((o) => o.what === "Durable Object rows written");
  if (requests && requests.perInvocation > 0) {
    const perInvocation = Math.max(requests.perInvocation, 1 / (rate * flushS));
    const more = perInvocation / requests.perInvocation - 1;
    own += more * requests.usdPerMillion + more * (rows?.usdPerMillion ?? 0);
  }
  const measured = workMessagesPerInvocation(cost);
  if (mode === "buffered" && measured !== undefined) {
    // A message a window carries fewer records than a full one: one 64 KB unit, 3 operations.
    const extra = Math.max(0, 1 / (rate * bufferS) - measured);
    own += extra * 3 * PRICES.queueOperation.usdPerMillion;
  }
  return own;
}

/** The lowest rate per isolate (invocations/s) at which tailfan's own cost stays within `target`. */
export function isolateRateFor(cost, mode, windows, target) {
  for (let rate = 1; rate <= 1e6; rate = Math.ceil(rate * 1.05)) {
    if (ownAtIsolateRate(cost, mode, windows, rate) <= target) return rate;
  }
  return Number.POSITIVE_INFINITY;
}

/** What must hold for the counts to mean anything; each failure is a reason the stage cannot report. */
export function reconcile(run) {
  const c = run.counts;
  const problems = [];
  if (!run.drained)
    problems.push(
      `did not drain: archive has ${run.status.find((s) => s.sink === "archive")?.totals.received ?? "?"} of ${run.records} records, or records pending`,
    );
  const sent = sum(Object.values(c.byOrigin).map((o) => o.doRequests));
  if (sent !== c.doServed) problems.push(`${sent} requests sent to the counters object, ${c.doServed} served`);
  // Objects and keys left = puts - deletes, per binding (a spool or a ring buffer deletes what it wrote).
  const net = (puts, deletes, binding) =>
    sum(Object.values(c.byOrigin).map((o) => (o[puts][binding] ?? 0) - (o[deletes][binding] ?? 0)));
  for (const [binding, objects] of Object.entries(run.r2Objects)) {
    const n = net("r2Puts", "r2Deletes", binding);
    if (n !== objects) problems.push(`${binding}: ${n} R2 puts net of deletes but ${objects} objects in the bucket`);
  }
  for (const [binding, keys] of Object.entries(run.kvKeys)) {
    const n = net("kvPuts", "kvDeletes", binding);
    if (n !== keys) problems.push(`${binding}: ${n} KV puts net of deletes but ${keys} keys in the namespace`);
  }
  if (c.fetches !== run.collector.requests) {
    problems.push(`${c.fetches} outbound fetch() calls but the collector received ${run.collector.requests}`);
  }
  const collector = run.status.find((s) => s.sink === "collector");
  if (collector && collector.totals.sent !== run.collector.lines) {
    problems.push(`collector: ${collector.totals.sent} records counted sent, ${run.collector.lines} received`);
  }
  return problems;
}

function printRun(run, cost) {
  const { counts: c } = run;
  console.log(
    `\n  ${run.label}, ${run.mode}: ${run.invocations} invocations, ${c.tailCalls} tail() and ${c.queueCalls} queue() calls, ${run.records} records`,
  );
  console.log(`    ${pad("operation", 44)}${lpad("per 1000 inv", 13)}${lpad("$ / M inv", 11)}  owner  note`);
  for (const o of cost.ops) {
    console.log(
      `    ${pad(o.what, 44)}${lpad((o.perInvocation * 1000).toFixed(1), 13)}${lpad(usd(o.usdPerMillion), 11)}  ${pad(o.owner, 5)}  ${o.note}`,
    );
  }
  console.log(
    `    $ per million invocations: ${usd(cost.total)} in all = tailfan's own ${usd(cost.own)} + the sinks' writes ${usd(cost.sinks)}` +
      `   (Logpush ${usd(REFERENCES.logpush.usdPerMillion)})`,
  );
  const s = cost.scale;
  console.log(
    `    at ${AT_RATE.toLocaleString("en-US")} invocations/s: busiest Durable Object ${Math.round(s.doPerSecond).toLocaleString("en-US")} req/s` +
      ` (${s.objects} object(s) seen from this one isolate; limit about ${LIMITS.doRequestsPerSecond.value.toLocaleString("en-US")}), ` +
      `busiest queue ${s.busiestQueue ?? "none"} ${Math.round(s.queuePerSecond).toLocaleString("en-US")} msgs/s (limit ${LIMITS.queueMessagesPerSecond.value.toLocaleString("en-US")})`,
  );
  const w = c.config;
  const windows = `one counters write per isolate per ${w.statsFlushMs / 1000} s${run.mode === "buffered" ? `, one work message per isolate per ${w.bufferMs / 1000} s` : ""}`;
  console.log(
    `    tailfan's own at ${ISOLATE_RATES.map((r) => r.toLocaleString("en-US")).join(" / ")} invocations/s per isolate: ` +
      `${ISOLATE_RATES.map((r) => usd(ownAtIsolateRate(cost, run.mode, w, r))).join(" / ")} (at least ${windows})`,
  );
  if (c.consoleSample.length > 0)
    console.log(`    first log lines: ${c.consoleSample.slice(0, 2).join(" | ").slice(0, 300)}`);
}

/**
 * Runs the shipped config and the 4-sink config in direct and buffered mode.
 * Returns { runs: [{ label, mode, cost, problems }], targets, ok } where ok is false when counts do not reconcile.
 */
export async function measureCost({ invocations = 3000, concurrency = 20, cpuMsPerInvocation, cpuSource } = {}) {
  const t0 = performance.now();
  const shipped = shippedConfig();
  const configs = [
    { label: `shipped (${shipped.sinks.map((s) => s.name).join(", ")})`, key: "shipped", sinks: () => shipped.sinks },
    {
      label: "4 sinks (shipped + collector http)",
      key: "four",
      sinks: (url) => [...shipped.sinks, { name: "collector", type: "http", url, format: "ndjson", gzip: true }],
    },
  ];
  console.log(
    `\ncost and scale per producer invocation (workerd via Miniflare; ${invocations} invocations, ${concurrency} at a time; ` +
      `each logs 2 lines, every ${WARN_EVERY}th a warning, every ${THROW_EVERY}th throws; wrangler.toml's SINKS, DELIVERY and queues; ` +
      `tailfan's log sampling ${shipped.logSampling}; prices in bench/prices.mjs` +
      `${cpuMsPerInvocation === undefined ? "; CPU not priced (run from npm run bench for the whole-tail() figure)" : `; CPU ${cpuMsPerInvocation.toFixed(3)} ms/inv`})`,
  );
  const work = mkdtempSync(join(tmpdir(), "tailfan-bench-cost-"));
  const runs = [];
  try {
    const scriptPath = await bundleWorker("bench/cost-worker.ts", work, "tailfan-cost.js");
    for (const config of configs) {
      for (const mode of ["direct", "buffered"]) {
        const run = await runOne({ ...config, mode, shipped, scriptPath, invocations, concurrency });
        const cost = costOf(run, {
          delivery: shipped.delivery,
          logSampling: shipped.logSampling,
          cpuMsPerInvocation,
          cpuSource,
        });
        const problems = reconcile(run);
        printRun(run, cost);
        for (const p of problems) console.log(`    DOES NOT RECONCILE: ${p}`);
        runs.push({ config: config.key, label: config.label, mode, cost, problems, counts: run.counts });
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const find = (config, mode) => runs.find((r) => r.config === config && r.mode === mode).cost;
  const b = find("shipped", "buffered");
  const checks = [
    [
      `buffered, shipped config, in all <= ${usd(TARGETS.bufferedTotal)} per million`,
      b.total,
      b.total <= TARGETS.bufferedTotal,
    ],
    [`buffered, shipped config, tailfan's own <= ${usd(TARGETS.bufferedOwn)}`, b.own, b.own <= TARGETS.bufferedOwn],
  ];
  for (const config of ["shipped", "four"]) {
    const d = find(config, "direct");
    checks.push([
      `direct, ${config} config, tailfan's own <= ${usd(TARGETS.directOwn)}`,
      d.own,
      d.own <= TARGETS.directOwn,
    ]);
  }
  console.log("\n  targets:");
  for (const [what, value, ok] of checks) console.log(`    ${pad(what, 58)}${lpad(usd(value), 10)}  ${met(ok)}`);
  // The archive's objects, under the binding the shipped config's r2 sink writes through.
  const r2Binding = shipped.sinks.find((s) => s.type === "r2")?.binding;
  const archive = b.ops.find((o) => o.what === `R2 puts ${r2Binding}`);
  const archivePer1000 = (archive?.perInvocation ?? 0) * 1000;
  const archiveOk = archivePer1000 <= TARGETS.archivePer1000;
  console.log(
    `    ${pad(`buffered, shipped config, R2 objects <= ${TARGETS.archivePer1000} per 1000 inv`, 58)}${lpad(archivePer1000.toFixed(1), 10)}  ${met(archiveOk)}`,
  );
  checks.push(["buffered, shipped config, R2 objects per 1000 invocations", archivePer1000, archiveOk]);
  // The windows tailfan resolved for the shipped config in buffered mode.
  const shippedWindows = runs.find((r) => r.config === "shipped" && r.mode === "buffered").counts.config;
  const rateFor = isolateRateFor(b, "buffered", shippedWindows, TARGETS.bufferedOwn);
  console.log(
    Number.isFinite(rateFor)
      ? `    (spread over many isolates, buffered tailfan's own stays <= ${usd(TARGETS.bufferedOwn)} from ` +
          `${rateFor.toLocaleString("en-US")} invocations/s per isolate; below that, its per-isolate windows set it)`
      : `    (buffered tailfan's own is above ${usd(TARGETS.bufferedOwn)} at any rate per isolate in this run)`,
  );
  // The work queue's messages per second at AT_RATE from this one isolate's measured rate.
  const workPerSecond = (workMessagesPerInvocation(b) ?? 0) * AT_RATE;
  // The longest windows DELIVERY allows, for isolates that see few invocations.
  const longest = { ...shippedWindows, bufferMs: 5_000, statsFlushMs: 20_000 };
  console.log(
    `    (with DELIVERY.bufferMs = 5000 and statsFlushMs = 20000, buffered tailfan's own at ` +
      `${ISOLATE_RATES.map((r) => r.toLocaleString("en-US")).join(" / ")} invocations/s per isolate: ` +
      `${ISOLATE_RATES.map((r) => usd(ownAtIsolateRate(b, "buffered", longest, r))).join(" / ")}; ` +
      `<= ${usd(TARGETS.bufferedOwn)} from ${isolateRateFor(b, "buffered", longest, TARGETS.bufferedOwn).toLocaleString("en-US")}/s)`,
  );
  for (const [label, w] of [
    ["shipped windows", shippedWindows],
    ["longest windows", longest],
  ]) {
    for (const rate of ISOLATE_RATES) {
      const isolates = AT_RATE / rate;
      const perObject = Math.max(b.scale.doPerSecond, isolates / (w.statsFlushMs / 1000) / w.statsShards);
      const perQueue = Math.max(workPerSecond, isolates / (w.bufferMs / 1000));
      const ok = perObject <= TARGETS.doPerSecond && perQueue <= TARGETS.queuePerSecond;
      const what =
        `buffered, ${label}, ${AT_RATE.toLocaleString("en-US")}/s over ${isolates.toLocaleString("en-US")} isolates: ` +
        `object ${Math.round(perObject).toLocaleString("en-US")} req/s, work queue ${Math.round(perQueue).toLocaleString("en-US")} msgs/s`;
      console.log(`    ${pad(what, 104)}${met(ok)}`);
    }
  }
  for (const r of runs) {
    const s = r.cost.scale;
    const ok = s.doPerSecond <= TARGETS.doPerSecond && s.queuePerSecond <= TARGETS.queuePerSecond;
    console.log(
      `    ${pad(`${r.config} ${r.mode} at ${AT_RATE.toLocaleString("en-US")}/s: object <= ${TARGETS.doPerSecond} req/s, queue <= ${TARGETS.queuePerSecond} msgs/s`, 82)}${met(ok)}`,
    );
  }
  console.log(`  (measured in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return {
    runs,
    checks: checks.map(([what, value, ok]) => ({ what, value, met: ok })),
    ok: runs.every((r) => r.problems.length === 0),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values: cli } = parseCli(
    "bench-cost",
    `Usage: node bench/cost.mjs [--invocations N] [--concurrency N] [--cpu-ms MS] [--json]
Billed operations and dollars per million producer invocations, direct and buffered (defaults 3000, 20).
--cpu-ms prices this many CPU ms per invocation (npm run bench passes the whole tail() of the 4-sink config).`,
    {
      invocations: { type: "string", default: "3000" },
      concurrency: { type: "string", default: "20" },
      "cpu-ms": { type: "string" },
      json: { type: "boolean", default: false },
    },
  );
  const cpu = cli["cpu-ms"] === undefined ? undefined : Number(cli["cpu-ms"]);
  measureCost({
    invocations: intOption("bench-cost", "invocations", cli.invocations, 1),
    concurrency: intOption("bench-cost", "concurrency", cli.concurrency, 1),
    cpuMsPerInvocation: Number.isFinite(cpu) ? cpu : undefined,
  })
    .then((r) => {
      if (cli.json) console.log(JSON.stringify(r, null, 2));
      if (!r.ok) process.exit(1);
    })
    .catch((err) => {
      console.error(`cost bench could not run: ${err?.stack ?? err}`);
      process.exit(1);
    });
}
