#!/usr/bin/env node
// Shows what tailfan wrote to its local KV and R2 while `npm run dev` ran.
//
//   npm run demo:landed                      KV keys, R2 objects, newest object's first records
//   npm run demo:landed -- -n 20             ...its first 20 records
//   npm run demo:landed -- --json            ...the newest object's records as NDJSON, nothing else
//   npm run demo:landed -- --persist-to DIR  state dir given to `wrangler dev --persist-to` (default .wrangler/state)
//   npm run demo:landed -- -c FILE           tailfan's config (default wrangler.toml)
//
// `wrangler r2` cannot list objects in local state, so this opens the same
// persisted state with Miniflare, with the KV and R2 bindings of tailfan's
// wrangler.toml and the same local ids wrangler dev gives them (KV: `id`, else
// the binding name; R2: `bucket_name`, else the binding name). It only reads.
import { existsSync } from "node:fs";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare } from "miniflare";
import { unstable_readConfig } from "wrangler";
import { intOption, parseCli } from "./cli.mjs";

const root = path.resolve(import.meta.dirname, "..");
const { values: args } = parseCli(
  "landed",
  `Usage: npm run demo:landed [-- OPTIONS]
Shows what tailfan wrote to its local KV and R2 while npm run dev ran (reads only).

  -n N                 show the newest R2 object's first N records (default 5)
  --json               the newest object's records as NDJSON, nothing else
  --persist-to DIR     the state dir given to wrangler dev --persist-to (default .wrangler/state)
  -c, --config FILE    tailfan's config (default wrangler.toml)
  -h, --help           this text

See demo/README.md.`,
  {
    "persist-to": { type: "string", default: ".wrangler/state" },
    config: { type: "string", short: "c", default: "wrangler.toml" },
    n: { type: "string", short: "n", default: "5" },
    json: { type: "boolean", default: false },
  },
);
const shown = intOption("landed", "n", args.n);
const persistTo = path.resolve(root, args["persist-to"]);
if (!existsSync(path.join(persistTo, "v3"))) {
  console.error(
    `Nothing has landed yet: no local state in ${persistTo}.\nRun \`npm run dev\`, make some traffic (see demo/README.md), then run this again.`,
  );
  process.exit(1);
}
const config = unstable_readConfig({ config: path.resolve(root, args.config) });
const kvIds = Object.fromEntries((config.kv_namespaces ?? []).map((b) => [b.binding, b.id ?? b.binding]));
const r2Ids = Object.fromEntries((config.r2_buckets ?? []).map((b) => [b.binding, b.bucket_name ?? b.binding]));

// Miniflare 5 takes a new options shape; wrangler itself builds options like
// these in the older (v4) shape and converts them, and so does this script.
const mf = new Miniflare(
  convertV4MiniflareOptions({
    modules: true,
    script: "export default { fetch: () => new Response(null, { status: 404 }) };",
    compatibilityDate: "2025-11-01",
    cf: false,
    log: new Log(LogLevel.WARN),
    // wrangler dev --persist-to DIR keeps every resource under DIR/v3/<kind>/.
    resourcePersistencePath: path.join(persistTo, "v3"),
    kvNamespaces: kvIds,
    r2Buckets: r2Ids,
  }),
);

const time = (ms) => (Number.isFinite(ms) ? new Date(ms).toISOString().replace("T", " ").replace("Z", "") : "?");
const size = (n) => (n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`);
const cut = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const say = args.json ? () => {} : console.log;

try {
  say(`tailfan: what landed in ${path.relative(process.cwd(), persistTo) || "."} (local state of \`npm run dev\`)`);

  for (const [binding, id] of Object.entries(kvIds)) {
    const kv = await mf.getKVNamespace(binding);
    const keys = [];
    let cursor;
    do {
      const page = await kv.list({ cursor });
      keys.push(...page.keys);
      cursor = page.list_complete ? undefined : page.cursor;
    } while (cursor);
    say(`\nKV ${binding} (${id}): ${keys.length} key(s)`);
    for (const k of keys) {
      const m = k.metadata ?? {};
      const detail = k.metadata ? `${m.level} ${m.eventType} outcome=${m.outcome} records=${m.count}` : "(no metadata)";
      say(`  ${k.name}  ${detail}${k.expiration ? `  expires ${time(k.expiration * 1000).slice(0, 10)}` : ""}`);
    }
  }

  for (const [binding, id] of Object.entries(r2Ids)) {
    const bucket = await mf.getR2Bucket(binding);
    const objects = [];
    let cursor;
    do {
      const page = await bucket.list({ cursor, include: ["customMetadata", "httpMetadata"] });
      objects.push(...page.objects);
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    const total = objects.reduce((sum, o) => sum + o.size, 0);
    say(`\nR2 ${binding} (${id}): ${objects.length} object(s), ${size(total)}`);
    for (const o of objects) {
      const count = o.customMetadata?.count;
      say(`  ${o.key}  ${size(o.size)}${count ? `  records=${count}` : ""}`);
    }
    if (objects.length === 0) continue;

    // The newest upload; keys sort by time too, so ties go to the later key.
    const newest = objects.reduce((a, b) =>
      b.uploaded > a.uploaded || (+b.uploaded === +a.uploaded && b.key > a.key) ? b : a,
    );
    const body = await bucket.get(newest.key);
    let bytes = Buffer.from(await body.arrayBuffer());
    if (newest.httpMetadata?.contentEncoding === "gzip" || newest.key.endsWith(".gz")) bytes = gunzipSync(bytes);
    const lines = bytes.toString("utf8").split("\n").filter(Boolean);
    if (args.json) {
      for (const line of lines) console.log(line);
      continue;
    }
    const n = shown;
    say(`\nNewest object: ${newest.key} (${lines.length} record(s)), first ${Math.min(n, lines.length)}:`);
    for (const line of lines.slice(0, n)) {
      const r = JSON.parse(line);
      say(`  ${time(r.timestamp)}  ${r.level.padEnd(5)}  ${r.type.padEnd(10)}  ${cut(String(r.message ?? ""), 100)}`);
    }
    say("  (all fields: npm run demo:landed -- --json)");
  }
} finally {
  await mf.dispose();
}
