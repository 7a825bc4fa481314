#!/usr/bin/env node
/**
 * CPU of the whole tail() per invocation (bench/cpu-worker.ts), inside workerd
 * via Miniflare: Cloudflare's docs tail worker against tailfan with one otlp
 * sink and with the shipped sinks plus an http sink, direct mode, on the same
 * TraceItems, and one invocation with many log lines. Runs alone
 * (`node bench/cpu.mjs [--items N] [--rounds N] [--concurrency N] [--json]`)
 * or from bench/run.mjs. A benchmark, not a test: it prints the targets as
 * MET / NOT MET and exits 0 either way (1 only when it cannot run).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { unstable_readConfig } from "wrangler";
import { intOption, parseCli } from "../demo/cli.mjs";
import { bundleWorker, ROOT } from "./shared.mjs";

export const TARGET_RATIO = 3;
export const TARGET_BIG_MS = 10;

const met = (ok) => (ok ? "MET" : "NOT MET");
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);

/** The receiver of every outbound fetch: reads the whole body (the last byte on the wire) and answers 200. */
const receiverScript = `export default {
  async fetch(request) {
    await request.arrayBuffer();
    return new Response(null, { status: 200 });
  },
};`;

/** SINKS and DELIVERY of the shipped wrangler.toml, read by wrangler itself. */
function shipped() {
  const config = unstable_readConfig({ config: join(ROOT, "wrangler.toml") }, { hideWarnings: true });
  const parse = (v) => (typeof v === "string" ? JSON.parse(v) : v);
  return { sinks: parse(config.vars?.SINKS ?? []), delivery: parse(config.vars?.DELIVERY ?? {}) };
}

export async function measureCpu({
  items = 300,
  rounds = 9,
  warmup = 1,
  concurrency = 10,
  lines = 2340,
  bigRounds = 15,
} = {}) {
  const work = mkdtempSync(join(tmpdir(), "tailfan-bench-cpu-"));
  let mf;
  try {
    const scriptPath = await bundleWorker("bench/cpu-worker.ts", work, "cpu-worker.mjs");
    mf = new Miniflare(
      convertV4MiniflareOptions({
        handleStructuredLogs: () => {},
        workers: [
          {
            name: "bench",
            modules: true,
            scriptPath,
            modulesRoot: dirname(scriptPath),
            compatibilityDate: "2025-11-01",
            durableObjects: { TAILFAN_STATS: { className: "TailfanStats", useSQLite: true } },
            outboundService: "receiver",
          },
          { name: "receiver", modules: true, script: receiverScript, compatibilityDate: "2025-11-01" },
        ],
      }),
    );
    await mf.ready;
    const { sinks, delivery } = shipped();
    const params = { items, rounds, warmup, concurrency, lines, bigRounds, sinks, delivery };
    const res = await mf.dispatchFetch("http://bench.local/cpu", { method: "POST", body: JSON.stringify(params) });
    const text = await res.text();
    if (!res.ok) throw new Error(`cpu bench failed (${res.status}): ${text}`);
    const r = JSON.parse(text);
    report(r, sinks);
    return r;
  } finally {
    await mf?.dispose().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  }
}

function report(r, sinks) {
  const m = r.perInvocation;
  const c = r.counters;
  // The window's one write, spread over the invocations it carried, belongs to each tailfan invocation.
  const whole = {
    docs: m.docs,
    otlp: m.otlp + c.perInvocation,
    four: m.four + c.perInvocation,
    otlpShared: m.otlpShared + c.perInvocation,
    fourShared: m.fourShared + c.perInvocation,
  };
  // The median of each round's own ratio (its variants ran back to back), plus the window's write.
  const ratio = {
    docs: 1,
    otlp: r.roundRatios.otlp + c.perInvocation / m.docs,
    four: r.roundRatios.four + c.perInvocation / m.docs,
    otlpShared: r.roundRatios.otlpShared + c.perInvocation / m.docs,
    fourShared: r.roundRatios.fourShared + c.perInvocation / m.docs,
  };
  const b = ratio.otlpShared;
  const cc = ratio.fourShared;
  const shipped = `${sinks.map((s) => s.name).join(", ")} + collector (http)`;
  const rows = [
    ["docs", "(a) docs tail worker: fetch(JSON.stringify(events))"],
    ["otlp", "(b) tailfan, one otlp sink, each invocation alone"],
    ["four", `(c) tailfan, ${shipped}, each alone`],
    ["otlpShared", `(b) one otlp sink, ${r.shared} invocations per shared delivery`],
    ["fourShared", `(c) ${shipped}, ${r.shared} per shared delivery`],
  ];
  const p = r.params;
  console.log(
    `\nwhole tail() per invocation, workerd (Miniflare), direct mode: ${p.items} invocations of 1 TraceItem per sample, ` +
      `${p.concurrency} at a time, median of ${p.rounds} rounds after ${p.warmup} warm-up, interleaved`,
  );
  console.log(`  ${pad("variant", 66)}${lpad("ms / inv", 10)}${lpad("min..max", 16)}${lpad("x (a)", 8)}`);
  for (const [key, name] of rows) {
    const [lo, hi] = r.spread[key];
    console.log(
      `  ${pad(name, 66)}${lpad(whole[key].toFixed(3), 10)}${lpad(`${lo.toFixed(3)}..${hi.toFixed(3)}`, 16)}${lpad(ratio[key].toFixed(2), 8)}`,
    );
  }
  console.log(
    `  counters: ${c.writes} window write(s) to the counters object, ${c.ms.toFixed(1)} ms for ${c.invocations} invocations ` +
      `(${(c.perInvocation * 1000).toFixed(1)} µs each, included above)`,
  );
  console.log("  ratios: the median of the rounds' own ratios, so that a change of load between rounds cancels out");
  console.log(
    `  shared: the invocations of a bufferMs window (DELIVERY.bufferMs, 250 ms by default) are delivered together; ` +
      `timed as one tail() with their TraceItems, since the wait itself is idle time, not CPU`,
  );
  console.log(
    `  ratio b/a = ${b.toFixed(2)} shared (${ratio.otlp.toFixed(2)} alone)   target <= ${TARGET_RATIO}: ${met(b <= TARGET_RATIO)}`,
  );
  console.log(
    `  ratio c/a = ${cc.toFixed(2)} shared (${ratio.four.toFixed(2)} alone)   target <= ${TARGET_RATIO}: ${met(cc <= TARGET_RATIO)}`,
  );
  console.log(`  one invocation with ${r.bigLines} log lines, median of ${p.bigRounds}, one at a time:`);
  for (const [key, name] of rows.slice(0, 3)) {
    const ms = r.big[key];
    const target = key === "docs" ? "" : `   target < ${TARGET_BIG_MS} ms: ${met(ms < TARGET_BIG_MS)}`;
    console.log(`    ${pad(name, 64)}${lpad(ms.toFixed(2), 8)} ms${target}`);
  }
  const g = r.bigGzip;
  const floor = `floor: gzip alone of its records' NDJSON, ${(g.bytes / 1e6).toFixed(2)} MB to ${(g.gzipped / 1e3).toFixed(0)} kB`;
  console.log(
    `    ${pad(floor, 64)}${lpad(g.ms.toFixed(2), 8)} ms   (what any sink that gzips them all pays at least)`,
  );
  r.whole = whole;
  r.ratios = { otlp: b, four: cc };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values: cli } = parseCli(
    "bench-cpu",
    `Usage: node bench/cpu.mjs [--items N] [--rounds N] [--concurrency N] [--lines N] [--big-rounds N] [--json]
The whole tail() per invocation against the docs tail worker, in workerd (defaults 300, 9, 10, 2340, 15).`,
    {
      items: { type: "string", default: "300" },
      rounds: { type: "string", default: "9" },
      concurrency: { type: "string", default: "10" },
      lines: { type: "string", default: "2340" },
      "big-rounds": { type: "string", default: "15" },
      json: { type: "boolean", default: false },
    },
  );
  measureCpu({
    items: intOption("bench-cpu", "items", cli.items, 1),
    rounds: intOption("bench-cpu", "rounds", cli.rounds, 1),
    concurrency: intOption("bench-cpu", "concurrency", cli.concurrency, 1),
    lines: intOption("bench-cpu", "lines", cli.lines, 1),
    bigRounds: intOption("bench-cpu", "big-rounds", cli["big-rounds"], 1),
  })
    .then((r) => {
      if (cli.json) console.log(JSON.stringify(r, null, 2));
    })
    .catch((err) => {
      console.error(`cpu bench could not run: ${err?.stack ?? err}`);
      process.exit(1);
    });
}
