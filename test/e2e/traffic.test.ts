/**
 * `npm run demo:traffic` against the demo producer and tailfan on the real
 * runtime: the count it reports is the records the traffic made, not their
 * sum over sinks (a record routed to two sinks is one record).
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Bundle, bundleTailfan, root } from "./helpers";

const TOKEN = "traffic-test-admin-token";
let mf: Miniflare;
let bundle: Bundle;
let producerUrl: string;
let tailfanUrl: string;

beforeAll(async () => {
  bundle = await bundleTailfan();
  const producer = await build({
    entryPoints: [join(root, "demo", "producer", "src", "index.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    write: false,
    logLevel: "error",
  });
  mf = new Miniflare(
    convertV4MiniflareOptions({
      unsafeTriggerHandlers: true,
      handleStructuredLogs: () => {},
      workers: [
        {
          name: "tailfan-demo-producer",
          modules: true,
          script: producer.outputFiles[0]?.text ?? "",
          compatibilityDate: "2025-11-01",
          tails: ["tailfan"],
        },
        {
          name: "tailfan",
          modules: true,
          scriptPath: bundle.script,
          modulesRoot: bundle.dir,
          compatibilityDate: "2025-11-01",
          unsafeDirectSockets: [{ port: 0 }],
          bindings: {
            ADMIN_TOKEN: TOKEN,
            SINKS: JSON.stringify([
              { name: "archive", type: "r2", binding: "LOGS_R2", prefix: "traffic" },
              { name: "problems", type: "kv", binding: "LOGS_KV", level: "warn" },
            ]),
            DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS" }),
          },
          r2Buckets: ["LOGS_R2"],
          kvNamespaces: ["LOGS_KV"],
          durableObjects: { TAILFAN_STATS: { className: "TailfanStats", useSQLite: true } },
        },
      ],
    }),
  );
  producerUrl = (await mf.ready).toString();
  tailfanUrl = (await mf.unsafeGetDirectURL("tailfan")).toString();
});

afterAll(async () => {
  await mf?.dispose();
  bundle?.remove();
});

it("reports the records one round made, each counted once", async () => {
  // One round is the traffic of demo/capture.json; the first /404 (the reachability check) adds one record.
  const capture = readFileSync(join(root, "demo", "capture.json"), "utf8")
    .split(/\n(?=\{\n)/)
    .map((part) => JSON.parse(part) as { logs: unknown[]; exceptions: unknown[] });
  const expected = capture.reduce((n, e) => n + 1 + e.logs.length + e.exceptions.length, 0) + 1;
  const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) =>
    execFile(
      process.execPath,
      [join(root, "demo", "traffic.mjs"), "--rounds", "1", "--url", producerUrl, "--tailfan", tailfanUrl],
      { cwd: root, env: { ...process.env, ADMIN_TOKEN: TOKEN }, timeout: 60_000 },
      (err, out) => resolve({ code: err ? 1 : 0, stdout: out }),
    ),
  );
  expect(code).toBe(0);
  expect(stdout).toContain("10 request(s) sent.");
  expect(stdout).toContain(`tailfan made ${expected} new record(s) from the traffic.`);
  // The archive got every record, so its "new" column matches; problems got fewer.
  expect(stdout).toMatch(new RegExp(`archive\\s+${expected}\\s.*\\+${expected}\\n`));
});
