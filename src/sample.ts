/**
 * Sampling, decided per invocation: one rate for every invocation, or a rule
 * with a rate per status code, status class and outcome. The decision hashes
 * the invocation id, so an invocation's records are kept or dropped together,
 * every sink with the same rate decides the same, and a lower rate keeps a
 * subset of what a higher one keeps.
 */
import * as v from "valibot";
import { hash53 } from "./json";
import type { LogRecord } from "./record";

/** Rates by `"5xx"`, `"404"`, an outcome (`exception`, `ok`, ...) or `default`. */
export type SampleRules = Record<string, number>;

/** A fraction of invocations kept, or a rule picking one per invocation. */
export type SampleSpec = number | SampleRules;

/** The outcomes the runtime reports, as sample rule keys. */
export const OUTCOMES = [
  "ok",
  "exception",
  "exceededCpu",
  "exceededMemory",
  "scriptNotFound",
  "canceled",
  "responseStreamDisconnected",
  "loadShed",
  "killSwitch",
  "daemonDown",
  "unknown",
] as const;

const RATE = "must be a number from 0 to 1";
const isRate = (x: unknown): x is number => typeof x === "number" && x >= 0 && x <= 1;
const STATUS_KEY = /^[1-5](xx|\d\d)$/i;

type PathItem = v.ObjectPathItem;

/** `sample` as a filter field schema: a rate, or a table of rates with every wrong key or rate at its path. */
export const sampleSchema = v.pipe(
  v.unknown(),
  v.rawTransform<unknown, SampleSpec>(({ dataset, addIssue, NEVER }) => {
    const x = dataset.value;
    if (typeof x === "number") {
      if (isRate(x)) return x;
      addIssue({ message: "must be from 0 to 1" });
      return NEVER;
    }
    if (x === null || typeof x !== "object" || Array.isArray(x)) {
      addIssue({ message: `${RATE}, or a table of rates like { "5xx" = 1, "2xx" = 0.1, exception = 1, default = 1 }` });
      return NEVER;
    }
    const out: SampleRules = {};
    let bad = false;
    for (const [key, rate] of Object.entries(x)) {
      const at: [PathItem] = [
        { type: "object", origin: "value", input: x as Record<string, unknown>, key, value: rate },
      ];
      const known = key === "default" || STATUS_KEY.test(key) || (OUTCOMES as readonly string[]).includes(key);
      if (!known) {
        addIssue({
          message: `unknown key; expected a status class ("5xx"), a status code ("404"), an outcome (${OUTCOMES.join(", ")}) or default`,
          path: at,
        });
        bad = true;
      } else if (!isRate(rate)) {
        addIssue({ message: RATE, path: at });
        bad = true;
      } else out[STATUS_KEY.test(key) ? key.toLowerCase() : key] = rate;
    }
    if (Object.keys(x).length === 0) {
      addIssue({ message: "is an empty table; give at least default" });
      bad = true;
    }
    return bad ? NEVER : out;
  }),
) as v.GenericSchema<unknown, SampleSpec>;

// The last id hashed: an invocation's records come one after another, so most hash once.
let lastId = "";
let lastHash = 0;

/** Where an invocation falls in [0, 1): the same for every sink and every record of it. */
function position(invocationId: string): number {
  if (invocationId !== lastId) {
    lastId = invocationId;
    lastHash = hash53(invocationId, 0x5eed) / 2 ** 53;
  }
  return lastHash;
}

/** Deterministic per-invocation sample: the same invocation is always in or always out. */
export function sampled(invocationId: string, rate: number): boolean {
  if (rate >= 1) return true;
  if (rate <= 0) return false;
  return position(invocationId) < rate;
}

/**
 * The rate a rule gives a record's invocation, the most specific key first:
 * its status code, its status class, its outcome, then `default` (1 when not given).
 */
export function rateOf(rules: SampleRules): (r: LogRecord) => number {
  const codes = new Map<number, number>();
  const classes: (number | undefined)[] = [];
  const outcomes = new Map<string, number>();
  for (const [key, rate] of Object.entries(rules)) {
    if (/^[1-5]xx$/.test(key)) classes[Number(key[0])] = rate;
    else if (/^[1-5]\d\d$/.test(key)) codes.set(Number(key), rate);
    else if (key !== "default") outcomes.set(key, rate);
  }
  const fallback = rules.default ?? 1;
  return (r) => {
    const status = r.status;
    if (status !== undefined) {
      const code = codes.get(status);
      if (code !== undefined) return code;
      const cls = classes[Math.floor(status / 100)];
      if (cls !== undefined) return cls;
    }
    return outcomes.get(r.outcome) ?? fallback;
  };
}

export function compileSample(spec: SampleSpec): (r: LogRecord) => boolean {
  if (typeof spec === "number") return (r) => sampled(r.invocationId, spec);
  const rate = rateOf(spec);
  return (r) => sampled(r.invocationId, rate(r));
}

const percent = (rate: number) => `${Math.round(rate * 1000) / 10} %`;

/** In words: `10 % sampled`, `sampled: 5xx 100 %, 2xx 10 %, default 100 %`; null when everything is kept. */
export function describeSample(spec: SampleSpec): string | null {
  if (typeof spec === "number") return spec < 1 ? `${percent(spec)} sampled` : null;
  const entries = Object.entries(spec);
  if (entries.every(([, rate]) => rate >= 1)) return null;
  return `sampled: ${entries.map(([key, rate]) => `${key} ${percent(rate)}`).join(", ")}`;
}
