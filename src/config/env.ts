/**
 * Reading tailfan's env vars (SINKS, ROUTES, DELIVERY, SCRUB, LIMITS): a
 * JSON string or the TOML value the runtime hands over, `${NAME}` references
 * resolved from secrets and text vars. One no-echo policy for all of them:
 * an error message names the variable, the path and what was expected, and
 * never quotes a value, because a value may be (or hold) a resolved secret.
 * Every secret value resolved is kept in a SecretBook, which takes it out of
 * any text tailfan writes: config errors, failure reasons.
 */
import { type ConfigError, typeName } from "../issues";

/** Deepest nesting any walk over a config value goes; deeper values are refused, not recursed into. */
export const MAX_CONFIG_DEPTH = 32;

/** Shorter secret values are not searched for in text: a 1 to 3 character value would match everywhere. */
export const MIN_SECRET_CHARS = 4;

const SECRET_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Resolved secret values and their names. `redact` replaces each value, as
 * written, JSON-escaped (with or without `\/`) or URL-encoded, with `${NAME}`.
 */
export class SecretBook {
  private readonly byValue = new Map<string, string>();
  private forms: [string, string][] | null = null;

  add(name: string, value: string): void {
    if (value.length < MIN_SECRET_CHARS || this.byValue.has(value)) return;
    this.byValue.set(value, name);
    this.forms = null;
  }

  get size(): number {
    return this.byValue.size;
  }

  /** Every (form, name) pair, longest form first, so a secret that contains another is replaced whole. */
  private allForms(): [string, string][] {
    if (this.forms !== null) return this.forms;
    const seen = new Map<string, string>();
    for (const [value, name] of this.byValue) {
      const json = JSON.stringify(value).slice(1, -1);
      // JSON as PHP and some encoders write it escapes "/" too.
      for (const form of [value, json, json.replaceAll("/", "\\/"), encodeURIComponent(value)]) {
        if (form.length >= MIN_SECRET_CHARS && !seen.has(form)) seen.set(form, name);
      }
    }
    this.forms = [...seen].sort((a, b) => b[0].length - a[0].length);
    return this.forms;
  }

  redact(text: string): string {
    if (this.byValue.size === 0) return text;
    let out = text;
    for (const [form, name] of this.allForms()) if (out.includes(form)) out = out.split(form).join(`\${${name}}`);
    return out;
  }
}

/** V8 words a JSON.parse error around a quote of the input; only the position is kept. */
function jsonPosition(text: string, err: unknown): string {
  const m = /position (\d+)/.exec(err instanceof Error ? err.message : "");
  if (!m) return "";
  const at = Math.min(Number(m[1]), text.length);
  const before = text.slice(0, at).split("\n");
  return ` at line ${before.length}, column ${(before[before.length - 1] as string).length + 1}`;
}

export type VarValue = { ok: true; value: unknown } | { ok: false; error: ConfigError };

/**
 * Reads one env var. Unset, null or blank gives `value: undefined`; a string
 * is parsed as JSON; anything else (a TOML table or array) is taken as is.
 * `example` ends the parse error message: how to write the var right.
 */
export function readVar(raw: unknown, variable: string, example: string): VarValue {
  if (raw === undefined || raw === null || (typeof raw === "string" && raw.trim() === "")) {
    return { ok: true, value: undefined };
  }
  if (typeof raw !== "string") return { ok: true, value: raw };
  try {
    return { ok: true, value: JSON.parse(raw) };
  } catch (err) {
    // The parser's own message quotes the characters around the mistake: a fragment of the value.
    return {
      ok: false,
      error: { variable, path: "", message: `is not valid JSON${jsonPosition(raw, err)}; ${example}` },
    };
  }
}

/**
 * Reads a list-valued var: a TOML array (the runtime hands an array), a
 * single table (a list of one) or a JSON string of either. Null when unset or
 * unreadable; the reason is in `errors`.
 */
export function readList(variable: string, raw: unknown, errors: ConfigError[], example: string): unknown[] | null {
  const read = readVar(raw, variable, example);
  if (!read.ok) {
    errors.push(read.error);
    return null;
  }
  const value = read.value;
  if (value === undefined) return null;
  if (Array.isArray(value)) return value;
  if (value !== null && typeof value === "object") return [value];
  errors.push({ variable, path: "", message: `expected a list of tables, got ${typeName(value)}` });
  return null;
}

/** How deep a value nests, counting only up to `limit + 1`; iterative, so no input overflows the stack. */
export function depthOf(value: unknown, limit = MAX_CONFIG_DEPTH): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [x, d] = stack.pop() as [unknown, number];
    if (x === null || typeof x !== "object") continue;
    if (d + 1 > max) max = d + 1;
    if (max > limit) return max;
    for (const child of Object.values(x)) stack.push([child, d + 1]);
  }
  return max;
}

/** Where a resolution happens: the variable, its env, the errors so far and the secrets found. */
export interface ResolveContext {
  variable: string;
  env: Record<string, unknown>;
  errors: ConfigError[];
  secrets: SecretBook;
}

/**
 * Replaces `${NAME}` in every string of `value` with the secret or text var
 * NAME, noting each resolved value in `ctx.secrets`. A value nested deeper
 * than MAX_CONFIG_DEPTH is an error at its path, not a deeper walk.
 */
export function resolveRefs(value: unknown, at: string, ctx: ResolveContext, depth = 0): unknown {
  if (typeof value === "string") {
    return value.replace(SECRET_REF, (ref, name: string) => {
      const secret = ctx.env[name];
      if (typeof secret === "string") {
        ctx.secrets.add(name, secret);
        return secret;
      }
      ctx.errors.push({
        variable: ctx.variable,
        path: at,
        message:
          secret === undefined
            ? `secret ${name} is not set (referenced as ${ref}); set it with \`npx wrangler secret put ${name}\`, or in .dev.vars for local dev`
            : `${ref} names a binding, not a secret or text var`,
      });
      return ref;
    });
  }
  if (value === null || typeof value !== "object") return value;
  if (depth >= MAX_CONFIG_DEPTH) {
    ctx.errors.push({
      variable: ctx.variable,
      path: at,
      message: `is nested more than ${MAX_CONFIG_DEPTH} levels deep; no option needs that`,
    });
    return value;
  }
  if (Array.isArray(value)) return value.map((x, i) => resolveRefs(x, `${at}[${i}]`, ctx, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(value)) out[k] = resolveRefs(x, `${at}.${k}`, ctx, depth + 1);
  return out;
}

/** The no-echo policy applied last: whatever a message holds, no resolved secret value survives in it. */
export function withoutSecrets(errors: readonly ConfigError[], secrets: SecretBook): ConfigError[] {
  return errors.map((e) => ({ ...e, path: secrets.redact(e.path), message: secrets.redact(e.message) }));
}
