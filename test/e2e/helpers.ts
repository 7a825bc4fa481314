/**
 * Shared set-up of the Node-side end-to-end tests: tailfan bundled from src/
 * with esbuild (as wrangler would, `cloudflare:*` left to the runtime), R2
 * reads, and polling.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { build, type Plugin } from "esbuild";
import type { Miniflare } from "miniflare";

export const root = join(import.meta.dirname, "..", "..");

export interface Bundle {
  /** Directory holding the bundle; use it as the Worker's `modulesRoot`. */
  dir: string;
  /** The bundled tailfan module; use it as the Worker's `scriptPath`. */
  script: string;
  remove(): void;
}

/**
 * A sink type with a bug, for fault tests only: its `send` answers nothing
 * instead of a SendResult, which breaks the delivery code that reads it.
 */
const CRASHING_SINK = `
import * as crashingV from "valibot";
(SINK_TYPES as Record<string, AnySinkDefinition>).crashing = {
  type: "crashing",
  description: "a sink whose send answers nothing (fault tests only)",
  options: crashingV.strictObject({}),
  batch: () => ({ maxRecords: 100, maxBytes: 1 << 20 }),
  create: () => ({ encode: (batch: unknown) => batch, send: async () => undefined as never }),
};
`;

/** Bundles tailfan (src/index.ts) into a temporary directory; `crashingSink` adds the `crashing` sink type. */
export async function bundleTailfan(options: { crashingSink?: boolean } = {}): Promise<Bundle> {
  const dir = mkdtempSync(join(tmpdir(), "tailfan-e2e-"));
  const script = join(dir, "tailfan.js");
  const plugins: Plugin[] = [];
  if (options.crashingSink) {
    plugins.push({
      name: "crashing-sink",
      setup(b) {
        b.onLoad({ filter: /[\\/]sinks[\\/]index\.ts$/ }, (args) => ({
          contents: `${readFileSync(args.path, "utf8")}\nimport type { AnySinkDefinition } from "./types";\n${CRASHING_SINK}`,
          loader: "ts",
        }));
      },
    });
  }
  await build({
    plugins,
    entryPoints: [join(root, "src/index.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    external: ["cloudflare:*"],
    outfile: script,
    logLevel: "error",
  });
  return { dir, script, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export type Bucket = Awaited<ReturnType<Miniflare["getR2Bucket"]>>;

/** Every NDJSON line of every object under `prefix`, parsed; gzip objects are gunzipped. */
export async function readNdjsonObjects<T>(bucket: Bucket, prefix: string): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, cursor });
    for (const o of page.objects) {
      const obj = await bucket.get(o.key);
      if (!obj) continue;
      const raw = Buffer.from(await obj.arrayBuffer());
      const text = (o.key.endsWith(".gz") ? gunzipSync(raw) : raw).toString("utf8");
      for (const line of text.split("\n")) if (line) out.push(JSON.parse(line) as T);
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return out;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Polls `read` every 100 ms until `done` holds or `ms` pass; returns the last value and whether it was done. */
export async function poll<T>(
  read: () => Promise<T> | T,
  done: (v: T) => boolean,
  ms = 15_000,
): Promise<{ value: T; done: boolean }> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value)) return { value, done: true };
    if (Date.now() > end) return { value, done: false };
    await sleep(100);
  }
}

/** Polls `read` until `done` holds; throws naming `what` (and the last value, via `describe`) after `ms`. */
export async function until<T>(
  what: string,
  read: () => Promise<T> | T,
  done: (v: T) => boolean,
  ms = 15_000,
  describe?: (v: T) => string,
): Promise<T> {
  const { value, done: ok } = await poll(read, done, ms);
  if (!ok) throw new Error(`timed out waiting for ${what}${describe ? `: ${describe(value)}` : ""}`);
  return value;
}
