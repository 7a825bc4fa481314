#!/usr/bin/env node
// Sends mixed traffic to the demo producer while `npm run dev` runs, then
// shows tailfan's per-sink counters once the records have arrived.
//
//   npm run demo:traffic                          3 rounds of every route and two cron runs
//   npm run demo:traffic -- --rounds 10           ...10 rounds
//   npm run demo:traffic -- --url URL             the producer (default http://localhost:8787)
//   npm run demo:traffic -- --tailfan URL         tailfan (default http://localhost:8788)
//   npm run demo:traffic -- --token TOKEN         tailfan's ADMIN_TOKEN (default: env ADMIN_TOKEN, else .dev.vars)
//   npm run demo:traffic -- --no-wait             send the traffic, do not wait for tailfan's counters
//
// Each round makes every kind of TraceItem the producer knows (see the top of
// demo/producer/src/index.ts): a plain request, a warning, a failed
// background task, an error log with a 500, a 404, a burst of log lines, a
// thrown error, a cron run and a failing cron run.
import path from "node:path";
import { intOption, parseCli } from "./cli.mjs";
import { readToken } from "./dev-vars.mjs";
import { kinds } from "./kinds.mjs";

const root = path.resolve(import.meta.dirname, "..");

const { values: args } = parseCli(
  "traffic",
  `Usage: npm run demo:traffic [-- OPTIONS]
Sends mixed traffic to the demo producer, then shows tailfan's counters.

  --rounds N       rounds of every route and two cron runs (default 3)
  --url URL        the producer (default http://localhost:8787)
  --tailfan URL    tailfan (default http://localhost:8788)
  --token TOKEN    tailfan's ADMIN_TOKEN (default: env ADMIN_TOKEN, else .dev.vars)
  --no-wait        send the traffic, do not wait for tailfan's counters
  -h, --help       this text

See demo/README.md.`,
  {
    url: { type: "string", default: "http://localhost:8787" },
    tailfan: { type: "string", default: "http://localhost:8788" },
    rounds: { type: "string", default: "3" },
    token: { type: "string" },
    "no-wait": { type: "boolean", default: false },
  },
);
const producer = args.url.replace(/\/+$/, "");
const tailfan = args.tailfan.replace(/\/+$/, "");
const rounds = intOption("traffic", "rounds", args.rounds);

const token = args.token || process.env.ADMIN_TOKEN || readToken(path.join(root, ".dev.vars")) || undefined;

/** Why a fetch failed, in words: "connection refused" and the like. */
function reason(err) {
  const code = err?.cause?.code;
  if (code === "ECONNREFUSED") return "connection refused";
  if (code) return `${code}${err.cause.message ? `: ${err.cause.message}` : ""}`;
  return err?.cause?.message ?? err?.message ?? String(err);
}

/**
 * Reads tailfan's GET /status: { sinks } when it answers with counters, else
 * { problem } saying what to do.
 */
async function readStatus() {
  let res;
  try {
    res = await fetch(`${tailfan}/status`, { headers: { authorization: `Bearer ${token}` } });
  } catch (err) {
    return {
      problem: `tailfan does not answer on ${tailfan} (${reason(err)}): is \`npm run dev\` running? Pass --tailfan URL if it runs elsewhere.`,
    };
  }
  const body = await res.json().catch(() => null);
  if (res.status === 401) {
    return {
      problem: "tailfan did not accept the token: pass --token or set ADMIN_TOKEN (npm run dev keeps it in .dev.vars)",
    };
  }
  if (res.status === 404) {
    return {
      problem:
        "tailfan's API is off (no ADMIN_TOKEN secret) or this is not tailfan: restart `npm run dev`, which writes an ADMIN_TOKEN to .dev.vars",
    };
  }
  if (!res.ok || body === null) {
    const detail = body?.errors ? `: ${JSON.stringify(body.errors)}` : "";
    return { problem: `tailfan's /status answered ${res.status}${detail} (see the [tailfan] output of npm run dev)` };
  }
  if (!Array.isArray(body.sinks)) {
    return { problem: `tailfan keeps no counters: ${body.counters ?? "GET /status has no sinks"}` };
  }
  return { sinks: body.sinks.filter((s) => s.sink !== "*") };
}

/**
 * Records tailfan made, whichever sinks they went to: each sink counts every record either as
 * received (routed to it) or droppedFilter (not wanted), so one sink's sum is the number of
 * records. Adding up every sink's received would count a record once per sink.
 */
const records = (sinks) =>
  Math.max(0, ...sinks.map((s) => (Number(s.totals?.received) || 0) + (Number(s.totals?.droppedFilter) || 0)));

const wait = !args["no-wait"];
let before;
let waitProblem;
if (wait) {
  if (!token) {
    waitProblem =
      "no ADMIN_TOKEN known, so tailfan's counters are not shown: pass --token or set ADMIN_TOKEN (npm run dev writes one to .dev.vars)";
  } else {
    const status = await readStatus();
    if (status.problem) waitProblem = status.problem;
    else before = status.sinks;
  }
}

// The producer must answer first. This request is tailed like the rest, so it is counted as
// one more /404 (one record, its invocation).
let probeStatus;
try {
  const res = await fetch(`${producer}/404`);
  await res.arrayBuffer();
  probeStatus = String(res.status);
} catch (err) {
  if (err?.cause?.code === "ECONNREFUSED") {
    console.error(`nothing answers on ${producer}: start \`npm run dev\` first (in another terminal)`);
  } else {
    console.error(`could not reach the producer at ${producer} (${reason(err)}): is \`npm run dev\` running?`);
  }
  process.exit(1);
}

console.log(`Sending ${rounds} round(s) of traffic to ${producer}`);
const results = new Map(kinds.map((k) => [k.label, new Map()]));
results.get("/404").set(probeStatus, 1);
let sent = 1;
for (let round = 0; round < rounds; round++) {
  for (const kind of kinds) {
    let outcome;
    try {
      const res = await fetch(`${producer}${kind.path}`);
      await res.arrayBuffer();
      outcome = String(res.status);
    } catch (err) {
      outcome = `failed (${reason(err)})`;
    }
    const counts = results.get(kind.label);
    counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
    sent++;
  }
}
const width = Math.max(...kinds.map((k) => k.label.length)) + 2;
for (const kind of kinds) {
  const summary = [...results.get(kind.label)].map(([outcome, n]) => `${n} × ${outcome}`).join(", ");
  console.log(`  ${kind.label.padEnd(width)}${summary}`);
}
console.log(`${sent} request(s) sent.`);

if (wait && waitProblem === undefined) {
  // Wait until tailfan has counted new records and the count has stopped moving for 1.5 s.
  const start = records(before);
  const deadline = Date.now() + 20_000;
  let last = start;
  let lastChange = Date.now();
  let latest = before;
  process.stdout.write("Waiting for tailfan's counters");
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    const status = await readStatus();
    if (status.problem) {
      waitProblem = status.problem;
      break;
    }
    latest = status.sinks;
    const now = records(latest);
    if (now !== last) {
      last = now;
      lastChange = Date.now();
      process.stdout.write(".");
    } else if (now > start && Date.now() - lastChange >= 1500) {
      break;
    }
  }
  process.stdout.write("\n");
  if (waitProblem === undefined) {
    const grew = records(latest) - start;
    if (grew === 0) {
      console.log(
        "tailfan counted no new records within 20 s: check the [tailfan] and [producer] output of npm run dev (the producer names tailfan in its tail_consumers)",
      );
    } else {
      console.log(
        `tailfan made ${grew} new record(s) from the traffic. Totals per sink (received: the records routed to it; new: received since the start):`,
      );
    }
    const cols = ["received", "sent", "failed", "deadLettered", "pending"];
    const old = new Map(before.map((s) => [s.sink, Number(s.totals?.received) || 0]));
    const rows = latest.map((s) => [
      s.sink,
      ...cols.map((c) => String(Number(s.totals?.[c]) || 0)),
      `+${(Number(s.totals?.received) || 0) - (old.get(s.sink) ?? 0)}`,
    ]);
    const header = ["sink", ...cols, "new"];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const fmt = (r) =>
      `  ${r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ")}`;
    if (rows.length === 0) console.log("  (no sink has counters yet)");
    else for (const r of [header, ...rows]) console.log(fmt(r));
  }
}
if (waitProblem !== undefined) console.log(waitProblem);

console.log(`Open ${tailfan}/ to see the records (log in with ADMIN_TOKEN from .dev.vars)`);
