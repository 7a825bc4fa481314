#!/usr/bin/env node
/**
 * `npm run bench`: the tailfan pipeline against Cloudflare's example tail
 * worker (`JSON.stringify(events)`), timed inside workerd via Miniflare, plus
 * the deployed bundle size from `wrangler deploy --dry-run`.
 *
 * Then, unless --no-cpu, the whole tail() per invocation against the docs
 * tail worker (bench/cpu.mjs); unless --no-requests, outbound requests per 1,000 producer
 * invocations in direct and buffered delivery (bench/requests.mjs), and,
 * unless --no-cost, every billed operation per invocation priced in dollars
 * per million invocations (bench/cost.mjs).
 *
 * Options: see --help; --quick runs small counts (the CI check).
 * A benchmark, not a test: it prints the targets and whether they were met,
 * and exits 0 either way (non-zero only when it could not run).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { intOption, parseCli } from "../demo/cli.mjs";
import { measureCost } from "./cost.mjs";
import { measureCpu } from "./cpu.mjs";
import { measureLoad } from "./load.mjs";
import { measureRequests } from "./requests.mjs";
import { measureStream } from "./stream.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const TARGET_RATIO = 1.5;
const TARGET_GZIP_KIB = 40;

const { values: cli } = parseCli(
  "bench",
  `Usage: npm run bench [-- OPTIONS]
The tailfan pipeline against JSON.stringify(events) in workerd, the bundle size,
and outbound requests per 1,000 producer invocations (direct and buffered).

  --quick                small counts for CI (200 items, 3 rounds, 100 invocations); well under a minute
  --items N              TraceItems per pass (default 1000)
  --rounds N             timed rounds (default 15)
  --warmup N             warm-up rounds (default 3)
  --min-sample-ms N      repeat passes until a sample lasts this long (default 50)
  --node                 also time the same bundle in Node
  --no-size              skip the bundle size (wrangler deploy --dry-run)
  --no-stream            skip the streaming tail stage
  --no-cpu               skip the whole-tail() CPU stage (its figure then prices the cost stage's CPU)
  --no-requests          skip the outbound requests stage
  --no-cost              skip the cost and scale stage
  --no-load              skip the load test (20,000 invocations per mode; 1,000 with --quick)
  --load-invocations N   producer invocations per mode in the load test
  --invocations N        producer invocations per delivery mode and config (default 1000; 3000 in the cost stage)
  --concurrency N        invocations at a time (default 20)
  --warn-every N         every Nth invocation also logs a warning (default 10; 0: never)
  --json                 print the raw results too
  -h, --help             this text

Exits 0 whether or not the targets are met; 1 when it could not run or a stage did not finish.`,
  {
    quick: { type: "boolean", default: false },
    items: { type: "string" },
    rounds: { type: "string" },
    warmup: { type: "string" },
    "min-sample-ms": { type: "string" },
    node: { type: "boolean", default: false },
    "no-size": { type: "boolean", default: false },
    "no-stream": { type: "boolean", default: false },
    "no-cpu": { type: "boolean", default: false },
    "no-requests": { type: "boolean", default: false },
    "no-cost": { type: "boolean", default: false },
    "no-load": { type: "boolean", default: false },
    "load-invocations": { type: "string" },
    invocations: { type: "string" },
    concurrency: { type: "string" },
    "warn-every": { type: "string" },
    json: { type: "boolean", default: false },
  },
);
const quick = cli.quick;
const flag = (name) => cli[name] === true;
/** The option's number, else its default (its quick default under --quick). */
const opt = (name, full, small = full, min = 1) =>
  cli[name] === undefined ? (quick ? small : full) : intOption("bench", name, cli[name], min);
const params = {
  items: opt("items", 1000, 200),
  rounds: opt("rounds", 15, 3),
  warmup: opt("warmup", 3, 1, 0),
  minSampleMs: opt("min-sample-ms", 50, 20),
};

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
const mib = (n) => `${(n / 1024 / 1024).toFixed(2)} MiB`;
const met = (ok) => (ok ? "MET" : "NOT MET");
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);

function versionOf(pkg) {
  try {
    const require = createRequire(join(ROOT, "package.json"));
    return JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), "utf8")).version;
  } catch {
    return "?";
  }
}

/**
 * src/tail.ts imports src/stats/, whose TailfanStats extends `DurableObject`
 * from "cloudflare:workers". The bench Worker never uses it, and the same
 * bundle must also load in Node (the fallback), so that module is a stub here.
 */
const stubCloudflareWorkers = {
  name: "stub-cloudflare-workers",
  setup(b) {
    b.onResolve({ filter: /^cloudflare:workers$/ }, () => ({ path: "cloudflare:workers", namespace: "stub" }));
    b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({
      contents: "export class DurableObject { constructor(ctx, env) { this.ctx = ctx; this.env = env; } }",
      loader: "js",
    }));
  },
};

/** Bundles the bench Worker the way wrangler bundles a Worker. */
async function bundleWorker(outdir) {
  const outfile = join(outdir, "pipeline-worker.mjs");
  await build({
    plugins: [stubCloudflareWorkers],
    entryPoints: [join(ROOT, "bench/pipeline-worker.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    outfile,
    logLevel: "warning",
  });
  return outfile;
}

/** Miniflare 5 takes a new option shape; v4-style options go through convertV4MiniflareOptions. */
async function startMiniflare(script) {
  const v4 = {
    modules: true,
    script,
    compatibilityDate: "2025-11-01",
    kvNamespaces: ["LOGS_KV"],
    r2Buckets: ["LOGS_R2"],
    queueProducers: { LOGS_QUEUE: { queueName: "tailfan-bench" } },
  };
  let mf;
  try {
    mf = new Miniflare(v4);
    await mf.ready;
  } catch {
    await mf?.dispose().catch(() => {});
    mf = new Miniflare(convertV4MiniflareOptions(v4));
    await mf.ready;
  }
  return mf;
}

async function call(target, path) {
  const res = await target(`http://bench.local${path}`);
  const text = await res.text();
  if (!res.ok) throw new Error(`${path} failed (${res.status}): ${text}`);
  return JSON.parse(text);
}

/** Stand-ins that pass the config's binding checks; the benchmark never sends. */
const stubEnv = () => ({
  LOGS_KV: { get() {}, put() {}, list() {} },
  LOGS_R2: { get() {}, put() {}, head() {} },
  LOGS_QUEUE: { send() {}, sendBatch() {} },
});

function report(label, r) {
  const m = r.medians;
  const rows = [
    ["baseline", "baseline: JSON.stringify(events)"],
    ["normalize", "normalize"],
    ["serialize", "normalize + route + serialize"],
    ["pipeline", "pipeline: + scrub, plan, limits, encode x4"],
    ["where", `pipeline + where (${r.whereLeaves} leaves) on each sink`],
    ["whereOnly", `one ${r.whereLeaves}-leaf where alone, compiled`],
    ["shaped", "pipeline, collector shaped (exclude, add)"],
  ];
  console.log(
    `\n${label}: median of ${r.params.rounds} rounds after ${r.params.warmup} warm-up, interleaved; each sample = ${r.reps} pass(es) over the set`,
  );
  console.log(`  ${pad("stage", 44)}${lpad("ms / 1000 inv", 14)}${lpad("min..max", 18)}${lpad("x baseline", 12)}`);
  for (const [key, name] of rows) {
    const v = m[key];
    const [lo, hi] = r.spread[key];
    console.log(
      `  ${pad(name, 44)}${lpad(v.toFixed(2), 14)}${lpad(`${lo.toFixed(2)}..${hi.toFixed(2)}`, 18)}${lpad((v / m.baseline).toFixed(2), 12)}`,
    );
  }
  printShape(r);
  const ratio = m.pipeline / m.baseline;
  console.log(
    `  ratio = pipeline / baseline = ${ratio.toFixed(2)}   target <= ${TARGET_RATIO}: ${met(ratio <= TARGET_RATIO)}`,
  );
  const perRecord = (ms) =>
    ((ms * 1000) / (Object.values(r.records).reduce((a, b) => a + b, 0) * (1000 / r.params.items))).toFixed(3);
  console.log(
    `  where: ${perRecord(m.where - m.pipeline)} µs per record on 4 sinks (pipeline + where / pipeline = ${(m.where / m.pipeline).toFixed(3)}); ${perRecord(m.whereOnly)} µs per record for one where`,
  );
  return ratio;
}

function printSizes(r) {
  const ev = Object.entries(r.events)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  const rec = Object.entries(r.records)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  const total = Object.values(r.records).reduce((a, b) => a + b, 0);
  console.log(
    `\nitems: ${r.params.items} TraceItems in ${r.params.items} tail() calls of 1 item (${ev}); ${r.logs} console logs, ${r.exceptions} exceptions`,
  );
  console.log(`records produced: ${total} (${rec}); routed to >= 1 sink: ${r.routed}`);
  console.log(`bytes, before gzip:`);
  console.log(`  baseline JSON.stringify(events):    ${mib(r.baselineBytes)}`);
  console.log(
    `  pipeline, each record once:         ${mib(r.lineBytes)}  (${(r.lineBytes / r.baselineBytes).toFixed(2)}x baseline)`,
  );
  console.log(
    `  pipeline, all sink payloads:        ${mib(r.payloadBytes)}  (${(r.payloadBytes / r.baselineBytes).toFixed(2)}x baseline)`,
  );
  for (const [name, s] of Object.entries(r.perSink)) {
    console.log(
      `    ${pad(name, 18)} ${lpad(s.records, 6)} records in ${lpad(s.payloads, 5)} payload(s), ${mib(s.bytes)}`,
    );
  }
}

/** Shaping (bench/pipeline-worker.ts SHAPED_SINKS): its CPU per shaped record, and the bytes it saves at that sink. */
function printShape(r) {
  const perRecordUs = ((r.medians.shaped - r.medians.pipeline) * 1000) / ((r.shape.records * 1000) / r.params.items);
  const before = r.perSink.collector.bytes;
  console.log(
    `  shaping: ${perRecordUs.toFixed(2)} µs per shaped record; the collector's payloads ${mib(before)} -> ${mib(r.shape.bytes)} (${(100 - (100 * r.shape.bytes) / before).toFixed(0)} % fewer bytes)`,
  );
}

/** `wrangler deploy --dry-run`: what would be uploaded, raw and gzipped. */
function bundleSize() {
  const out = mkdtempSync(join(tmpdir(), "tailfan-bench-deploy-"));
  try {
    const wrangler = join(ROOT, "node_modules/wrangler/bin/wrangler.js");
    // Run wrangler with this Node (the system one may be too old for it); same as `npx wrangler`.
    const res = spawnSync(process.execPath, [wrangler, "deploy", "--dry-run", "--outdir", out], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
      timeout: 120_000,
    });
    if (res.status !== 0) {
      console.log(
        `\nbundle size: wrangler deploy --dry-run failed (exit ${res.status}):\n${(res.stderr || res.stdout || String(res.error)).trim().slice(-2000)}`,
      );
      return;
    }
    const files = readdirSync(out, { recursive: true }).filter(
      (f) => /\.m?js$/.test(f) && statSync(join(out, f)).isFile(),
    );
    let raw = 0;
    let gz = 0;
    for (const f of files) {
      const buf = readFileSync(join(out, f));
      raw += buf.byteLength;
      gz += gzipSync(buf, { level: 9 }).byteLength;
    }
    console.log(
      `\nbundle (wrangler deploy --dry-run, ${files.join(", ")}): ${kib(raw)} raw, ${kib(gz)} gzip   target <= ${TARGET_GZIP_KIB} KiB gzip: ${met(gz / 1024 <= TARGET_GZIP_KIB)}`,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), "tailfan-bench-"));
  let mf;
  try {
    const outfile = await bundleWorker(work);
    const script = readFileSync(outfile, "utf8");
    console.log(
      `tailfan bench: Node ${process.version}, miniflare ${versionOf("miniflare")}, workerd ${versionOf("workerd")}; bench worker ${kib(script.length)}`,
    );

    mf = await startMiniflare(script);
    const inWorkerd = (url) => mf.dispatchFetch(url);
    const probe = await call(inWorkerd, "/probe");
    const advances = probe.syncMs >= 10;
    console.log(
      `clock: performance.now() in workerd ${advances ? "ADVANCES" : "does NOT advance"} during synchronous code ` +
        `(${probe.syncMs} ms measured over ~50 ms of busy work; step ${probe.resolutionMs ?? "n/a"} ms)`,
    );

    const q = `?items=${params.items}&rounds=${params.rounds}&warmup=${params.warmup}&minSampleMs=${params.minSampleMs}`;
    let result;
    let label;
    if (advances) {
      result = await call(inWorkerd, `/bench${q}`);
      label = "workerd (Miniflare)";
    }
    let nodeResult;
    if (!advances || flag("node")) {
      // Same bundle, in Node: the fallback when workerd's clock is frozen in sync code, or for comparison.
      const mod = await import(pathToFileURL(outfile).href);
      const inNode = (url) => mod.default.fetch(new Request(url), stubEnv());
      nodeResult = await call(inNode, `/bench${q}`);
      if (!result) {
        result = nodeResult;
        label = `FALLBACK: Node ${process.version} on the same bundle (workerd's clock cannot time sync code)`;
      }
    }
    await mf.dispose();
    mf = undefined;

    printSizes(result);
    report(label, result);
    if (nodeResult && nodeResult !== result) report(`Node ${process.version}, same bundle (comparison)`, nodeResult);
    if (flag("json")) console.log(JSON.stringify({ result, nodeResult }, null, 2));
    if (!flag("no-size")) bundleSize();
    if (!flag("no-stream")) await measureStream({ items: params.items });
    const cpu = flag("no-cpu") ? undefined : await measureCpu(quick ? { items: 100, rounds: 3, bigRounds: 3 } : {});
    if (cpu && flag("json")) console.log(JSON.stringify({ cpu }, null, 2));
    if (!flag("no-requests")) {
      const requests = await measureRequests({
        invocations: opt("invocations", 1000, 100),
        concurrency: opt("concurrency", 20, 10),
        warnEvery: opt("warn-every", 10, 10, 0),
      });
      if (flag("json")) console.log(JSON.stringify({ requests }, null, 2));
      // A drain that timed out means tailfan lost or stuck records: a broken benchmark, not a missed target.
      const stuck = [requests.direct, requests.buffered].filter((m) => !m.drained).map((m) => m.mode);
      if (stuck.length > 0) throw new Error(`${stuck.join(" and ")} delivery did not drain every record`);
    }
    if (!flag("no-cost")) {
      const cost = await measureCost({
        // 3,000: long enough that the last, partly filled queue() batch of a run weighs little per 1,000.
        invocations: opt("invocations", 3000, 100),
        concurrency: opt("concurrency", 20, 10),
        // The whole tail() of the 4-sink config with shared deliveries, else the pipeline stage's
        // (which stops before gzip and delivery).
        cpuMsPerInvocation: cpu ? cpu.whole.fourShared : result.medians.pipeline / 1000,
        cpuSource: cpu ? "the whole tail(), 4 sinks, shared deliveries (cpu stage)" : "the pipeline stage's figure",
      });
      if (flag("json")) console.log(JSON.stringify({ cost }, null, 2));
      if (!cost.ok) throw new Error("the cost stage's counts do not reconcile");
    }
    if (!flag("no-load")) {
      const load = await measureLoad({
        invocations: opt("load-invocations", 20_000, 1_000),
        concurrency: quick ? 50 : 100,
      });
      if (flag("json")) console.log(JSON.stringify({ load }, null, 2));
      if (!load.ok) throw new Error("the load test lost records or its counts are off");
    }
  } finally {
    await mf?.dispose().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`bench could not run: ${err?.stack ?? err}`);
  process.exit(1);
});
