import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { keptLines } from "./test/support/quiet";

/**
 * wrangler.toml as it is, copied where no .dev.vars sits beside it: wrangler
 * loads the .dev.vars next to the config, and a developer's local secrets
 * (ADMIN_TOKEN, which `npm run dev` writes there) must not change test results.
 * Its DELIVERY gets statsFlushMs = 0 and statsShards = 1, so that a test that
 * awaits one invocation reads its counts from one object at once; the tests
 * of the counters window and the shards set their own.
 */
function testWranglerConfig(): string {
  const root = import.meta.dirname;
  const text = readFileSync(path.join(root, "wrangler.toml"), "utf8");
  const main = /^main = "([^"]+)"$/m;
  if (!main.test(text)) throw new Error('wrangler.toml: expected a line main = "..."');
  const dir = path.join(root, "node_modules", ".cache", "tailfan-test");
  const delivery = /^DELIVERY = \{ (.*) \}$/m;
  if (!delivery.test(text)) throw new Error("wrangler.toml: expected a line DELIVERY = { ... }");
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "wrangler.toml");
  writeFileSync(
    file,
    text
      .replace(main, (_, entry: string) => `main = ${JSON.stringify(path.join(root, entry).replaceAll("\\", "/"))}`)
      .replace(delivery, (_, keys: string) => `DELIVERY = { ${keys}, statsFlushMs = 0, statsShards = 1 }`),
  );
  return file;
}

/** Only keptLines reach the stream: workerd's refused-connection lines are dropped (test/support/quiet.ts). */
function quietRefusedConnections(stream: NodeJS.WriteStream): void {
  const write = stream.write.bind(stream) as (chunk: string | Uint8Array, ...rest: unknown[]) => boolean;
  const state = { dropStack: false };
  stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const kept = keptLines(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"), state);
    return kept === "" ? true : write(kept, ...rest);
  }) as typeof stream.write;
}
quietRefusedConnections(process.stdout);
quietRefusedConnections(process.stderr);

export default defineConfig({
  test: {
    projects: [
      {
        // Unit and integration tests, inside workerd with the runtime's local KV, R2 and Queues.
        // A Pipelines binding for the pipeline sink's tests (Miniflare's local stand-in), kept out of wrangler.toml.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: testWranglerConfig() },
            miniflare: { pipelines: { LOGS_PIPELINE: "tailfan-test" } },
          }),
        ],
        test: {
          name: "workers",
          include: ["test/**/*.test.ts"],
          exclude: ["test/e2e/**", "test/browser/**"],
          globalSetup: ["./test/support/global-setup.ts"],
        },
      },
      {
        // End to end: a real producer Worker in Miniflare, tailed by tailfan; runs on the Node side.
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        // The dashboard in headless Chromium against `npm run dev` (two wrangler dev processes).
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
