/** A candidate config sent to /config/check or /routes/test: only the config vars, never bindings or secrets. */

import { depthOf, MAX_CONFIG_DEPTH } from "../config/env";
import { CONFIG_VARS } from "../config/vars";
import { typeName } from "../issues";
import { refuse } from "./errors";

/** The config vars a candidate may set; anything else (bindings, secrets) always comes from the deployment. */
/** The vars a candidate config may hold: the config's own list. */
export const CANDIDATE_KEYS = CONFIG_VARS;

/** Reads a candidate config object; unknown keys are refused so a candidate cannot stand in for bindings or secrets. */
export function readCandidate(raw: unknown, where: string): Record<string, unknown> {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw refuse(400, `${where} must be a JSON object like { "SINKS": [...], "ROUTES": [...] }, got ${typeName(raw)}`);
  }
  // Refused before any walk: a value nested thousands deep would overflow the stack of whatever recursed over it.
  if (depthOf(raw, MAX_CONFIG_DEPTH + 1) > MAX_CONFIG_DEPTH + 1) {
    throw refuse(400, `${where} is nested more than ${MAX_CONFIG_DEPTH} levels deep; no config needs that`);
  }
  const candidate = raw as Record<string, unknown>;
  const unknown = Object.keys(candidate).filter((k) => !(CANDIDATE_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw refuse(
      400,
      `${where} has unknown key(s) ${unknown.map((k) => JSON.stringify(k)).join(", ")}; allowed: ${CANDIDATE_KEYS.join(", ")} (bindings and secrets always come from the deployment)`,
    );
  }
  if (candidate.SINKS === undefined) {
    throw refuse(400, `${where} needs SINKS: an array of sinks, or the same as a JSON string`);
  }
  return candidate;
}
