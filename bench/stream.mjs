#!/usr/bin/env node
/**
 * The streaming tail's cost per invocation (bench/stream-worker.ts), timed
 * inside workerd via Miniflare: tail()'s path for each synthetic TraceItem
 * against the streaming path for the same invocation's events. Runs alone
 * (`node bench/stream.mjs [--items N] [--rounds N]`) or from bench/run.mjs.
 * A benchmark, not a test: it prints figures and exits 0.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

export async function measureStream({ items = 1000, rounds = 9, warmup = 2 } = {}) {
  const work = mkdtempSync(join(tmpdir(), "tailfan-bench-stream-"));
  let mf;
  try {
    const outfile = join(work, "stream-worker.mjs");
    await build({
      entryPoints: [join(ROOT, "bench/stream-worker.ts")],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      conditions: ["workerd", "worker", "browser"],
      external: ["cloudflare:*"],
      outfile,
      logLevel: "warning",
    });
    mf = new Miniflare(
      convertV4MiniflareOptions({
        modules: true,
        script: readFileSync(outfile, "utf8"),
        compatibilityDate: "2025-11-01",
        kvNamespaces: ["LOGS_KV"],
        r2Buckets: ["LOGS_R2"],
        queueProducers: { LOGS_QUEUE: { queueName: "tailfan-bench" } },
      }),
    );
    const res = await mf.dispatchFetch(`http://bench.local/?items=${items}&rounds=${rounds}&warmup=${warmup}`);
    const text = await res.text();
    if (!res.ok) throw new Error(`stream bench failed (${res.status}): ${text}`);
    const r = JSON.parse(text);
    if (r.frozenClock) {
      console.log("\nstreaming tail: not timed (performance.now() does not advance in sync code here)");
      return r;
    }
    const m = r.medians;
    console.log(
      `\nstreaming tail, workerd (Miniflare): ${r.items} invocations as ${r.events} events -> ${r.records} records (${r.spans} spans); median of ${r.rounds} rounds after ${r.warmup} warm-up`,
    );
    console.log(`  tail(): normalize + scrub, plan, limits, encode x4   ${m.tail.toFixed(2)} ms / 1000 inv`);
    console.log(`  tailStream(): assembly only                          ${m.assembly.toFixed(2)} ms / 1000 inv`);
    console.log(
      `  tailStream(): assembly + scrub, plan, limits, encode ${m.stream.toFixed(2)} ms / 1000 inv  (${(m.stream / m.tail).toFixed(2)}x tail())`,
    );
    return r;
  } finally {
    await mf?.dispose().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const args = process.argv.slice(2);
  const opt = (name, d) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : d;
  };
  await measureStream({ items: opt("items", 1000), rounds: opt("rounds", 9), warmup: opt("warmup", 2) });
}
