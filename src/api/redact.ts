/** The API's last line of defence: every answer is searched for the deployment's secret values. */
import type { Context } from "hono";
import { SINK_TYPES } from "../../sinks/index";
import { CANDIDATE_KEYS } from "./candidate";

type Bindings = Record<string, unknown>;

/**
 * Names of every secret the config could resolve (`${NAME}` references in
 * the config vars, the sink types' default secrets, ADMIN_TOKEN), with their
 * values: answers are searched for them as a last line of defence.
 */
export function secretValues(env: Bindings, candidate?: Record<string, unknown>): [string, string][] {
  const names = new Set<string>(["ADMIN_TOKEN"]);
  for (const def of Object.values(SINK_TYPES)) for (const s of Object.values(def.defaultSecrets ?? {})) names.add(s);
  for (const source of [env, candidate ?? {}]) {
    for (const key of CANDIDATE_KEYS) {
      const raw = source[key];
      const text = typeof raw === "string" ? raw : (JSON.stringify(raw) ?? "");
      for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) names.add(m[1] as string);
    }
  }
  const out: [string, string][] = [];
  for (const name of names) {
    const value = env[name];
    if (typeof value === "string" && value.length >= 4) out.push([name, value]);
  }
  // Longest first, so a secret that contains another is replaced whole.
  return out.sort((a, b) => b[1].length - a[1].length);
}

/** Answers JSON with every secret value replaced by `${NAME}`. */
export function answer(
  c: Context<{ Bindings: Bindings }>,
  body: unknown,
  status: 200 | 400 | 413 | 415 | 422 | 503,
  secrets: [string, string][],
): Response {
  let text = JSON.stringify(body);
  for (const [name, value] of secrets) {
    const escaped = JSON.stringify(value).slice(1, -1);
    text = text.split(escaped).join(`\${${name}}`);
  }
  return c.newResponse(text, status, { "content-type": "application/json; charset=UTF-8" });
}
