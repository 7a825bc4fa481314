#!/usr/bin/env node
// Runs tailfan and the demo producer locally, each in its own `wrangler dev`.
//
//   npm run dev                              tailfan on :8788 (dashboard and API), the producer on :8787
//   npm run dev -- --port 9787               the producer's port (default 8787)
//   npm run dev -- --tailfan-port 9788       tailfan's port (default 8788)
//   npm run dev -- --persist-to DIR          local state (default .wrangler/state; the producer's in DIR/producer)
//   npm run dev -- --secrets FILE            tailfan's secrets from FILE instead of .dev.vars
//
// `wrangler dev` with several `-c` configs serves only the first Worker over
// HTTP, so tailfan and the producer run as two processes. They find each other
// through wrangler's dev registry: the producer's `tail_consumers` names
// "tailfan", and its tail events reach the tailfan process.
//
// Without --secrets, tailfan's secrets come from .dev.vars at the repo root
// (gitignored). If it has no ADMIN_TOKEN, one is generated and appended, so
// that the dashboard and the API work. Ctrl-C stops both processes.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { stripVTControlCharacters } from "node:util";
import { parseCli, usageError } from "./cli.mjs";
import { readToken } from "./dev-vars.mjs";

const root = path.resolve(import.meta.dirname, "..");
const wrangler = path.join(root, "node_modules", "wrangler", "bin", "wrangler.js");
const READY_TIMEOUT_MS = 90_000;
const KILL_AFTER_MS = 5_000;

function fail(message) {
  console.error(`dev: ${message}`);
  process.exit(1);
}

const { values: args } = parseCli(
  "dev",
  `Usage: npm run dev [-- OPTIONS]
Runs tailfan (dashboard and API) and the demo producer, each in its own wrangler dev.

  --port N             the producer's port (default 8787)
  --tailfan-port N     tailfan's port (default 8788)
  --persist-to DIR     local state (default .wrangler/state; the producer's in DIR/producer)
  --secrets FILE       tailfan's secrets from FILE instead of .dev.vars
  -h, --help           this text

See demo/README.md.`,
  {
    port: { type: "string", default: "8787" },
    "tailfan-port": { type: "string", default: "8788" },
    "persist-to": { type: "string", default: ".wrangler/state" },
    secrets: { type: "string" },
  },
);

function port(name) {
  const value = args[name];
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535)
    usageError("dev", `--${name} must be a port number (1 to 65535), got "${value}"`);
  return n;
}
const producerPort = port("port");
const tailfanPort = port("tailfan-port");
if (producerPort === tailfanPort) usageError("dev", `--port and --tailfan-port must differ (both are ${producerPort})`);
const persistTo = path.resolve(root, args["persist-to"]);
const envFile = args.secrets === undefined ? undefined : path.resolve(args.secrets);

if (!existsSync(wrangler)) fail("wrangler is not installed: run `npm install` first");
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  fail(`wrangler needs Node 22.12 or newer, this is Node ${process.versions.node}: run \`npm run dev\` instead`);
}

// tailfan's secrets: --secrets as given, else .dev.vars with an ADMIN_TOKEN in it.
let token;
let tokenNote;
if (envFile !== undefined) {
  if (!existsSync(envFile)) fail(`--secrets ${args.secrets}: no such file`);
  token = readToken(envFile);
  tokenNote = token
    ? `ADMIN_TOKEN in ${args.secrets}`
    : `none: ${args.secrets} has no ADMIN_TOKEN line, so the dashboard and API are off`;
} else {
  const devVars = path.join(root, ".dev.vars");
  token = readToken(devVars);
  if (token === undefined) {
    token = randomBytes(16).toString("hex");
    const exists = existsSync(devVars);
    const current = exists ? readFileSync(devVars, "utf8") : "";
    const head = !exists
      ? "# Local secrets for `npm run dev` (gitignored). ADMIN_TOKEN opens tailfan's dashboard and API.\n"
      : current === "" || current.endsWith("\n")
        ? ""
        : "\n";
    appendFileSync(devVars, `${head}ADMIN_TOKEN=${token}\n`);
    console.log("dev: wrote a new ADMIN_TOKEN to .dev.vars");
  } else if (token === "") {
    console.error("dev: ADMIN_TOKEN in .dev.vars is empty, so tailfan's dashboard and API are off; give it a value");
  }
  tokenNote = token
    ? "ADMIN_TOKEN in .dev.vars"
    : "none: ADMIN_TOKEN in .dev.vars is empty, so the dashboard and API are off";
}

const env = process.stdout.isTTY ? { ...process.env, FORCE_COLOR: process.env.FORCE_COLOR ?? "1" } : process.env;
const children = [];
let stopping = false;
let readyTimer;
let tailfanReady = false;
let producerReady = false;

/** Copies a stream to `out`, line by line, each line prefixed. Calls onLine with the line's plain text. */
function pipeLines(stream, out, prefix, onLine) {
  let rest = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      out.write(`${prefix}${line}\n`);
      onLine?.(stripVTControlCharacters(line));
    }
  });
  stream.on("end", () => {
    if (rest !== "") {
      out.write(`${prefix}${rest}\n`);
      onLine?.(stripVTControlCharacters(rest));
    }
    rest = "";
  });
}

/** Starts `wrangler dev ARGS` as its own process group, its output prefixed with [name]. */
function start(name, wranglerArgs, onLine) {
  const child = spawn(process.execPath, [wrangler, "dev", ...wranglerArgs], {
    cwd: root,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const entry = { name, child, exited: false };
  children.push(entry);
  pipeLines(child.stdout, process.stdout, `[${name}] `, onLine);
  pipeLines(child.stderr, process.stderr, `[${name}] `, onLine);
  child.on("error", (err) => {
    console.error(`dev: could not start ${name}'s wrangler dev: ${err.message}`);
    stop(1);
  });
  child.on("exit", (code, signal) => {
    entry.exited = true;
    if (stopping) return;
    onExit(entry, code, signal);
  });
  return entry;
}

/** Whether any process of the group is still running (zombies waiting to be reaped do not count). */
function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  if (process.platform !== "linux") return true;
  try {
    for (const pid of readdirSync("/proc")) {
      if (!/^\d+$/.test(pid)) continue;
      let stat;
      try {
        stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      } catch {
        continue;
      }
      // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z") return true;
    }
    return false;
  } catch {
    return true;
  }
}

function signalGroups(signal) {
  for (const { child } of children) {
    if (child.pid === undefined) continue;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // The group is gone already.
    }
  }
}

/** Stops both process groups (SIGTERM, then SIGKILL after 5 s), then exits with `code`. */
async function stop(code) {
  if (stopping) return;
  stopping = true;
  clearTimeout(readyTimer);
  signalGroups("SIGTERM");
  const deadline = Date.now() + KILL_AFTER_MS;
  const alive = () => children.some(({ child }) => child.pid !== undefined && groupAlive(child.pid));
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive()) {
    console.error("dev: wrangler did not stop within 5 s; killing it");
    signalGroups("SIGKILL");
  }
  process.exit(code);
}

function onExit(entry, code, signal) {
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  if (entry.name === "tailfan" && !tailfanReady) {
    console.error("dev: tailfan's wrangler dev exited before it was ready (see its output above)");
    stop(code || 1);
    return;
  }
  if (entry.name === "producer" && !producerReady) {
    console.error("dev: the producer's wrangler dev exited before it was ready (see its output above)");
    stop(code || 1);
    return;
  }
  const [who, other] = entry.name === "tailfan" ? ["tailfan's", "the producer"] : ["the producer's", "tailfan"];
  console.error(`dev: ${who} wrangler dev ${how}; stopping ${other} too`);
  stop(code ?? 1);
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    if (stopping) {
      // A second Ctrl-C: do not wait any longer.
      signalGroups("SIGKILL");
      process.exit(0);
    }
    console.log(`\ndev: stopping tailfan and the producer`);
    stop(0);
  });
}
// Whatever ends this process, the two wrangler processes (and their workerd) end with it.
process.on("exit", () => {
  for (const { child, exited } of children) {
    if (child.pid === undefined) continue;
    try {
      process.kill(-child.pid, exited ? "SIGKILL" : "SIGTERM");
    } catch {
      // Gone already.
    }
  }
});

function banner() {
  const lines = [
    "",
    "tailfan and the demo producer are running.",
    `  producer   http://localhost:${producerPort}/     every request is tailed to tailfan`,
    `  dashboard  http://localhost:${tailfanPort}/     tailfan's dashboard and API`,
    `  token      ${token ? token : "(none)"}   (${tokenNote})`,
    "",
    "Make traffic in another terminal:",
    producerPort === 8787 && tailfanPort === 8788
      ? "  npm run demo:traffic"
      : `  npm run demo:traffic -- --url http://localhost:${producerPort} --tailfan http://localhost:${tailfanPort}`,
    "Press Ctrl-C to stop both.",
    "",
  ];
  console.log(lines.join("\n"));
}

/** Gives up when `who`'s wrangler dev has not said "Ready on" after READY_TIMEOUT_MS. */
function readyWithin(who) {
  clearTimeout(readyTimer);
  readyTimer = setTimeout(() => {
    console.error(
      `dev: ${who} wrangler dev was not ready after ${READY_TIMEOUT_MS / 1000} s (see its output above); stopping`,
    );
    stop(1);
  }, READY_TIMEOUT_MS);
}

console.log(`dev: starting tailfan on port ${tailfanPort}, then the demo producer on port ${producerPort}`);
readyWithin("tailfan's");

const tailfanArgs = ["-c", "wrangler.toml", "--port", String(tailfanPort), "--persist-to", persistTo];
if (envFile !== undefined) tailfanArgs.push("--env-file", envFile);
start("tailfan", tailfanArgs, (line) => {
  if (tailfanReady || stopping || !line.includes("Ready on")) return;
  tailfanReady = true;
  readyWithin("the producer's");
  const producerArgs = ["-c", "demo/producer/wrangler.toml", "--port", String(producerPort)];
  producerArgs.push("--persist-to", path.join(persistTo, "producer"));
  start("producer", producerArgs, (l) => {
    if (producerReady || stopping || !l.includes("Ready on")) return;
    producerReady = true;
    clearTimeout(readyTimer);
    banner();
  });
});
