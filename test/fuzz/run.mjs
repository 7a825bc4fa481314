#!/usr/bin/env node
/**
 * The long fuzz run: `npm run fuzz [-- --runs N --seed S --path P -t "name"]`.
 * Runs test/fuzz inside workerd through vitest with FUZZ_RUNS cases per pure
 * property (default 50,000: 100,000 for normalize/serialize and encoders
 * together), 1% of that for the tail() property that does I/O. Picks and
 * prints a seed unless given one; replay a failure with the seed and path
 * fast-check printed, and -t to pick its property. Options can also come
 * from FUZZ_RUNS, FUZZ_SEED, FUZZ_PATH; arguments after a second -- go to vitest.
 */
import { spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";

const USAGE = `Usage: npm run fuzz [-- OPTIONS] [-- VITEST ARGS]
The long fuzz run of test/fuzz inside workerd.

  --runs N        cases per pure property (default 50000; env FUZZ_RUNS)
  --seed S        fast-check seed (default: a random one, printed; env FUZZ_SEED)
  --path P        replay path fast-check printed for a failure (env FUZZ_PATH)
  -t NAME         only the property whose test name matches NAME
  -h, --help      this text
Arguments after a second -- go to vitest as they are.`;
const args = process.argv.slice(2);
const opts = { runs: process.env.FUZZ_RUNS, seed: process.env.FUZZ_SEED, path: process.env.FUZZ_PATH };
const rest = [];
for (let i = 0; i < args.length; i++) {
  const m = /^--(runs|seed|path)(?:=(.*))?$/.exec(args[i]);
  if (m) opts[m[1]] = m[2] ?? args[++i];
  else if (args[i] === "-h" || args[i] === "--help") {
    console.log(USAGE);
    process.exit(0);
  } else if (args[i] === "-t" && args[i + 1] !== undefined) rest.push("-t", args[++i]);
  else if (args[i] === "--") rest.push(...args.splice(i + 1));
  else {
    console.error(`fuzz: unknown option ${JSON.stringify(args[i])} (see --help)`);
    process.exit(2);
  }
}
opts.runs ??= "50000";
opts.seed ??= String(randomInt(0, 2 ** 31 - 1));
for (const k of ["runs", "seed"]) {
  if (!/^-?\d+$/.test(opts[k])) {
    console.error(`fuzz: --${k} must be an integer, got ${JSON.stringify(opts[k])}`);
    process.exit(2);
  }
}
console.log(`fuzz: seed ${opts.seed}, ${opts.runs} runs per property${opts.path ? `, path ${opts.path}` : ""}`);
console.log(`fuzz: replay with  npm run fuzz -- --seed ${opts.seed} --path <path from a failure> -t "<test name>"`);
const started = Date.now();
const env = { ...process.env, VITE_FUZZ_RUNS: opts.runs, VITE_FUZZ_SEED: opts.seed, VITE_FUZZ_PATH: opts.path ?? "" };
const result = spawnSync("vitest", ["run", "--project", "workers", "test/fuzz", ...rest], {
  stdio: "inherit",
  env,
  shell: process.platform === "win32",
});
console.log(`fuzz: seed ${opts.seed}, finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(result.status ?? 1);
