#!/usr/bin/env node
// Posts a `wrangler tail --format json` capture, or a live `wrangler tail` on stdin, to a
// tailfan's POST /replay in chunks, so its records reach the sinks tailfan is configured with.
import { createReadStream } from "node:fs";
import path from "node:path";
import { intOption, parseCli, usageError } from "./cli.mjs";
import { readToken } from "./dev-vars.mjs";

const USAGE = `Usage: npm run replay -- [OPTIONS] [FILE|-]
Reads TraceItems (wrangler tail --format json output: indented JSON objects one after
another, one object per line, or a JSON array) from FILE, or from stdin with - or no FILE,
and posts them to tailfan's POST /replay in chunks.

  --url URL        tailfan (default http://localhost:8788, the one npm run dev starts)
  --token TOKEN    tailfan's ADMIN_TOKEN (default: env TAILFAN_TOKEN, else ADMIN_TOKEN in .dev.vars)
  --chunk N        TraceItems per request (default 100, at most 1000); a chunk is also sent
                   when it nears 1 MiB, and, on a live stream, after 2 s without new items
  -h, --help       this text

Examples:
  npm run replay -- demo/capture.json
  npx wrangler tail my-worker --format json | npm run replay -- --url https://tailfan.example.workers.dev`;

const { values: args, positionals } = parseCli(
  "replay",
  USAGE,
  {
    url: { type: "string", default: "http://localhost:8788" },
    token: { type: "string" },
    chunk: { type: "string", default: "100" },
  },
  { allowPositionals: true },
);
if (positionals.length > 1) usageError("replay", `expected one FILE or -, got ${positionals.length} arguments`);
const chunkSize = intOption("replay", "chunk", args.chunk);
if (chunkSize > 1000)
  usageError("replay", `--chunk must be at most 1000 (tailfan's limit per request), got ${chunkSize}`);
const tailfan = args.url.replace(/\/+$/, "");
try {
  new URL(tailfan);
} catch {
  usageError("replay", `--url must be a URL like http://localhost:8788, got "${args.url}"`);
}
const root = path.resolve(import.meta.dirname, "..");
const token = args.token || process.env.TAILFAN_TOKEN || readToken(path.join(root, ".dev.vars"));
if (!token) {
  usageError("replay", "no token: pass --token, set TAILFAN_TOKEN, or put ADMIN_TOKEN in .dev.vars");
}
const file = positionals[0] ?? "-";
if (file === "-" && process.stdin.isTTY) {
  usageError("replay", "nothing to read: give a FILE, or pipe `npx wrangler tail <worker> --format json` in");
}

/** Under tailfan's 1 MiB body limit, with room for the separators. */
const MAX_CHUNK_BYTES = 900 * 1024;
const IDLE_FLUSH_MS = 2000;

/**
 * Splits a character stream into top-level JSON objects by brace depth (strings and escapes
 * respected). Text between objects (a "[", commas, wrangler's own messages) is skipped.
 */
function objectSplitter(onObject) {
  let depth = 0;
  let inString = false;
  let escaped = false;
  let current = "";
  return (text) => {
    for (const ch of text) {
      if (depth === 0 && ch !== "{") continue;
      current += ch;
      if (inString) {
        if (escaped) escaped = false;
        else if (ch === "\\") escaped = true;
        else if (ch === '"') inString = false;
      } else if (ch === '"') inString = true;
      else if (ch === "{") depth++;
      else if (ch === "}" && --depth === 0) {
        onObject(current);
        current = "";
      }
    }
  };
}

const totals = { chunks: 0, accepted: 0, rejected: 0, sinks: new Map() };
let pending = [];
let pendingBytes = 0;
let sending = Promise.resolve();

async function post(items) {
  const n = ++totals.chunks;
  let res;
  try {
    res = await fetch(`${tailfan}/replay`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/x-ndjson" },
      body: `${items.join("\n")}\n`,
    });
  } catch (err) {
    const why = err?.cause?.code === "ECONNREFUSED" ? "connection refused" : (err?.cause?.message ?? err.message);
    fatal(`tailfan does not answer on ${tailfan} (${why}): is it running? Pass --url if it runs elsewhere.`);
  }
  const body = await res.json().catch(() => null);
  if (res.status === 401)
    fatal("tailfan did not accept the token (--token, TAILFAN_TOKEN or ADMIN_TOKEN in .dev.vars)");
  if (res.status === 404)
    fatal(`${tailfan} has no POST /replay: tailfan's API is off (no ADMIN_TOKEN) or this is not tailfan`);
  if (!res.ok || body === null) {
    fatal(`chunk ${n}: tailfan answered ${res.status}: ${JSON.stringify(body?.errors ?? body?.error ?? body)}`);
  }
  totals.accepted += body.accepted;
  totals.rejected += body.rejected.length;
  for (const r of body.rejected.slice(0, 3)) console.error(`replay: chunk ${n}, item ${r.item}: rejected: ${r.reason}`);
  const sinks = (body.sinks ?? []).map((s) => {
    const t = totals.sinks.get(s.sink) ?? { records: 0, delivered: 0, failed: 0 };
    t.records += s.records;
    t.delivered += s.delivered;
    t.failed += s.failed;
    totals.sinks.set(s.sink, t);
    return `${s.sink} ${s.delivered}/${s.records}${s.failed ? ` (${s.failed} failed: ${s.errors?.[0] ?? "?"})` : ""}`;
  });
  console.log(
    `replay: chunk ${n}: ${body.accepted} accepted, ${body.rejected.length} rejected; ${
      body.mode === "buffered" ? "buffered: queued for delivery" : `delivered ${sinks.join(", ") || "to no sink"}`
    }`,
  );
}

function fatal(message) {
  console.error(`replay: ${message}`);
  process.exit(1);
}

/** Queues the pending items as one request; requests go one at a time, in order. */
function flush() {
  if (pending.length === 0) return;
  const items = pending;
  pending = [];
  pendingBytes = 0;
  sending = sending.then(() => post(items));
}

let idle;
const split = objectSplitter((text) => {
  const bytes = Buffer.byteLength(text) + 1;
  if (pending.length > 0 && pendingBytes + bytes > MAX_CHUNK_BYTES) flush();
  // Compact: an indented capture is about twice the size of the same items on one line each.
  let line = text;
  try {
    line = JSON.stringify(JSON.parse(text));
  } catch {
    // Sent as it is: tailfan names the bad item in `rejected`.
  }
  pending.push(line);
  pendingBytes += Buffer.byteLength(line) + 1;
  if (pending.length >= chunkSize) flush();
  clearTimeout(idle);
  idle = setTimeout(flush, IDLE_FLUSH_MS);
});

const input = file === "-" ? process.stdin : createReadStream(path.resolve(file));
input.setEncoding("utf8");
input.on("error", (err) => fatal(`cannot read ${file}: ${err.code === "ENOENT" ? "no such file" : err.message}`));
for await (const text of input) split(text);
clearTimeout(idle);
flush();
await sending;
const per = [...totals.sinks].map(([sink, t]) => `${sink} ${t.delivered}/${t.records}`).join(", ");
console.log(
  `replay: ${totals.accepted} TraceItem(s) accepted, ${totals.rejected} rejected, in ${totals.chunks} request(s)` +
    (per ? `; records delivered per sink: ${per}` : ""),
);
if (totals.rejected > 0 || [...totals.sinks.values()].some((t) => t.failed > 0)) process.exitCode = 1;
