/** What the benchmark stages that drive a real producer share: the local HTTP backend and the Worker bundle. */
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { build } from "esbuild";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** A local HTTP backend that answers 200 and counts requests, NDJSON lines (gunzipped when gzip) and distinct record ids. */
export async function startCollector() {
  const seen = { requests: 0, lines: 0, unique: 0 };
  const ids = new Set();
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      seen.requests++;
      let buf = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") buf = gunzipSync(buf);
      for (const line of buf.toString("utf8").split("\n")) {
        if (line === "") continue;
        seen.lines++;
        const id = /^\{"id":"([^"]+)"/.exec(line)?.[1] ?? line;
        if (!ids.has(id)) {
          ids.add(id);
          seen.unique++;
        }
      }
      res.end("ok");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/ingest`,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** Bundles a bench Worker (`entry`, relative to the project root) for workerd into `outdir`; returns its path. */
export async function bundleWorker(entry, outdir, name) {
  const outfile = join(outdir, name);
  await build({
    entryPoints: [join(ROOT, entry)],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    external: ["cloudflare:*"],
    outfile,
    logLevel: "error",
  });
  return outfile;
}
