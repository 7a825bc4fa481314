/**
 * Cloudflare allows 5 KB per environment variable, and says so only at
 * deploy. The config's size is measured whenever it loads (and so in
 * /health, /status and POST /config/check): a warning from 4 KB, an error
 * over 5 KB. SINKS and ROUTES may be split across numbered parts (SINKS_1,
 * SINKS_2, ...), each a list, joined in order after SINKS itself.
 */
import type { ConfigError } from "../issues";
import { readList } from "./env";
import { TABLE_VARS } from "./vars";

/** Cloudflare's limit for one environment variable. */
export const VAR_LIMIT_BYTES = 5 * 1024;
/** From this size on, a warning says the limit is near. */
export const VAR_WARN_BYTES = 4 * 1024;
/** The vars that may be split into numbered parts. */
export const SPLIT_VARS = ["SINKS", "ROUTES"] as const;

export interface SizedConfig {
  /** env with every SINKS_n / ROUTES_n part joined into SINKS / ROUTES (env itself when there are none). */
  env: Record<string, unknown>;
  errors: ConfigError[];
  warnings: string[];
}

const encoder = new TextEncoder();

/** A var as Cloudflare stores it: the text, or the JSON of a [vars] table or array. */
export function varText(value: unknown): string {
  return typeof value === "string" ? value : (JSON.stringify(value) ?? "");
}

/** A var's size as Cloudflare stores it. */
export function varBytes(value: unknown): number {
  if (value === undefined || value === null) return 0;
  return encoder.encode(varText(value)).byteLength;
}

const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

/** The numbered parts of `name` in env, in numeric order: [["SINKS_1", value], ...]. */
function partsOf(env: Record<string, unknown>, name: string): [string, unknown][] {
  const re = new RegExp(`^${name}_(\\d+)$`);
  return Object.keys(env)
    .map((k) => [k, re.exec(k)?.[1]] as const)
    .filter((e): e is readonly [string, string] => e[1] !== undefined)
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map(([k]) => [k, env[k]]);
}

/** Reads a part as a list, by the same reader (and no-echo policy) as every config var. */
function listOf(variable: string, value: unknown, errors: ConfigError[]): unknown[] {
  return readList(variable, value, errors, "each part is a list, e.g. [{ ... }, { ... }]") ?? [];
}

/** Joins the numbered parts and measures every config var and part. */
export function sizeConfig(env: Record<string, unknown>): SizedConfig {
  const errors: ConfigError[] = [];
  const warnings: string[] = [];
  const measure = (variable: string, value: unknown) => {
    const bytes = varBytes(value);
    const split = (SPLIT_VARS as readonly string[]).includes(variable.replace(/_\d+$/, ""));
    const way = split
      ? `split it into ${variable.replace(/_\d+$/, "")}_1, ${variable.replace(/_\d+$/, "")}_2, ... (each a list, joined in order)`
      : "move sink-specific settings into the sinks, or shorten it";
    if (bytes > VAR_LIMIT_BYTES) {
      errors.push({
        variable,
        path: "",
        message: `is ${bytes} bytes (${kb(bytes)}); Cloudflare allows ${VAR_LIMIT_BYTES} bytes (5 KB) per variable, so deploying it fails: ${way}`,
      });
    } else if (bytes >= VAR_WARN_BYTES) {
      warnings.push(
        `${variable} is ${bytes} bytes (${kb(bytes)}), near Cloudflare's limit of ${VAR_LIMIT_BYTES} bytes (5 KB) per variable: ${way}`,
      );
    }
  };
  for (const name of TABLE_VARS) measure(name, env[name]);
  let joined: Record<string, unknown> | undefined;
  for (const name of SPLIT_VARS) {
    const parts = partsOf(env, name);
    if (parts.length === 0) continue;
    joined ??= { ...env };
    const list = env[name] === undefined ? [] : [...listOf(name, env[name], errors)];
    for (const [variable, value] of parts) {
      measure(variable, value);
      list.push(...listOf(variable, value, errors));
      delete joined[variable];
    }
    joined[name] = list;
  }
  return { env: joined ?? env, errors, warnings };
}

/** The raw numbered parts, for a cache key: a changed part must reload the config. */
export function partsKey(env: Record<string, unknown>): string {
  return SPLIT_VARS.flatMap((name) => partsOf(env, name).map(([k, x]) => `${k}=${varText(x)}`)).join("\u0000");
}
