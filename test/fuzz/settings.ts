/**
 * Run settings of the fuzz properties. `npm test` runs a short, fixed-seed
 * pass; `npm run fuzz` (test/fuzz/run.mjs) passes a run count, a seed and,
 * to replay one failure, a path, as VITE_FUZZ_* variables (Vite hands
 * VITE_-prefixed variables to the code inside workerd as import.meta.env).
 */
import type fc from "fast-check";

const meta = (import.meta as unknown as { env?: Record<string, string | undefined> }).env ?? {};

function int(name: string): number | undefined {
  const raw = meta[name];
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** Cases per pure property in the long run; undefined in the short run. */
export const LONG_RUNS = int("VITE_FUZZ_RUNS");
/** The seed of the short run: fixed, so `npm test` is reproducible. */
export const SHORT_SEED = 20_261_121;
export const SEED = int("VITE_FUZZ_SEED") ?? SHORT_SEED;
/** A counterexample path from a failure report, to replay just that case (use with -t to pick the property). */
export const PATH = meta.VITE_FUZZ_PATH || undefined;
export const LONG = LONG_RUNS !== undefined;

/**
 * fast-check parameters for one property. `short` is its case count in
 * `npm test`; in the long run it gets `LONG_RUNS * share` (at least 1).
 */
export function params<T>(short: number, share = 1): fc.Parameters<T> {
  const numRuns = LONG_RUNS === undefined ? short : Math.max(1, Math.round(LONG_RUNS * share));
  const p: fc.Parameters<T> = { seed: SEED, numRuns, endOnFailure: false };
  if (PATH !== undefined) p.path = PATH;
  return p;
}

/** Test timeout: short in `npm test`, hours in the long run. */
export const TIMEOUT = LONG ? 6 * 60 * 60 * 1000 : 30_000;
