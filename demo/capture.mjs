#!/usr/bin/env node
// Regenerates demo/capture.json: what `wrangler tail <producer> --format json` prints for one
// round of the demo producer's traffic, made on the real runtime (workerd via Miniflare).
//
// The demo producer (demo/producer/src/index.ts, bundled with esbuild as wrangler would) is
// tailed by a tail Worker that posts each TraceItem to this script. wrangler tail prints each
// tail event as JSON.stringify(event, null, 4), one after another; this writes them the same way.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { build } from "esbuild";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { parseCli } from "./cli.mjs";
import { kinds } from "./kinds.mjs";

const { values: args } = parseCli(
  "capture",
  `Usage: npm run demo:capture [-- --out FILE]
Regenerates demo/capture.json: one round of the demo producer's traffic as
\`wrangler tail --format json\` prints it, made on the local runtime.

  --out FILE     where to write (default demo/capture.json)
  -h, --help     this text`,
  { out: { type: "string", default: path.join(import.meta.dirname, "capture.json") } },
);

/** The producer's name in demo/producer/wrangler.toml: what the edge reports as scriptName. */
const PRODUCER = "tailfan-demo-producer";
const bundled = await build({
  entryPoints: [path.join(import.meta.dirname, "producer", "src", "index.ts")],
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  write: false,
  logLevel: "error",
});

const received = [];
const mf = new Miniflare(
  convertV4MiniflareOptions({
    cf: false,
    unsafeTriggerHandlers: true,
    handleStructuredLogs: () => {},
    logRequests: false,
    workers: [
      {
        name: PRODUCER,
        modules: true,
        script: bundled.outputFiles[0].text,
        compatibilityDate: "2025-11-01",
        tails: ["capture"],
      },
      {
        name: "capture",
        modules: true,
        script: `export default {
          async tail(events, env) {
            await env.COLLECT.fetch("http://collect/", { method: "POST", body: JSON.stringify(events) });
          },
        };`,
        compatibilityDate: "2025-11-01",
        serviceBindings: {
          COLLECT: async (request) => {
            received.push(...(await request.json()));
            return new Response("ok");
          },
        },
      },
    ],
  }),
);

try {
  for (const kind of kinds) {
    const before = received.length;
    const res = await mf.dispatchFetch(`http://localhost:8787${kind.path}`);
    await res.arrayBuffer();
    // One TraceItem per invocation; waiting for each keeps the capture in the traffic's order.
    for (let i = 0; i < 100 && received.length === before; i++) await sleep(50);
    if (received.length === before) throw new Error(`no tail event for ${kind.label} within 5 s`);
  }
} finally {
  await mf.dispose();
}

// The local runtime leaves scriptName null; the edge (and so wrangler tail) names the Worker.
// Stack frames name the inline module by this machine's path; a deployed Worker's name its module, index.js.
const local = /file:\/\/\/[^\s)]*\/script-0\.mjs/g;
const events = received.map((item) =>
  JSON.parse(JSON.stringify({ ...item, scriptName: item.scriptName ?? PRODUCER }).replace(local, "index.js")),
);
writeFileSync(args.out, events.map((e) => `${JSON.stringify(e, null, 4)}\n`).join(""));
console.log(`capture: wrote ${events.length} tail events to ${path.relative(process.cwd(), args.out)}`);
