#!/usr/bin/env node
/**
 * The long fuzz run: `npm run fuzz [-- --runs N --seed S --path P -t "name"]`.
 * Runs test/fuzz inside workerd through vitest with FUZZ_RUNS cases per pure
 * property (default 50,000: 100,000 for normalize/serialize and encoders
 * together), 1% of that for the tail() property that does I/O. Picks and
 * prints a seed unless given one; replay a failure with the seed and path
 * fast-check printed, and -t to pick its property. Options can also come
 * from FUZZ_RUNS, FUZZ_SEED, FUZZ_PATH. Any other arguments go to vitest.
 */
import { spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";

const args = process.argv.slice(2);
const opts = { runs: process.env.FUZZ_RUNS, seed: process.env.FUZZ_SEED, path: process.env.FUZZ_PATH };
const rest = [];
for (let i = 0; i < args.length; i++) {
  const m = /^--(runs|seed|path)(?:=(.*))?$/.exec(args[i]);
  if (m) opts[m[1]] = m[2] ?? args[++i];
  else rest.push(args[i]);
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
