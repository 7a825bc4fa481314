/**
 * Turning valibot issues into errors a user can act on: the variable, the
 * path inside it and what was expected, never the value that was given
 * (it may hold a resolved secret). Shared by every env var tailfan reads.
 */
import type * as v from "valibot";

export interface ConfigError {
  /** The env var: `SINKS` or `ROUTES`. */
  variable: string;
  /** Path inside it, like `[0].url`; empty for the whole variable. */
  path: string;
  message: string;
}

/** The known option names for "unknown option" messages, or a function that words that message itself. */
export type KnownKeys = readonly string[] | ((issue: v.BaseIssue<unknown>) => string);

export function pathOf(issue: v.BaseIssue<unknown>, prefix = ""): string {
  let out = prefix;
  for (const item of issue.path ?? []) {
    const key = (item as { key: unknown }).key;
    out +=
      typeof key === "number"
        ? `[${key}]`
        : /^[A-Za-z_$][\w$]*$/.test(String(key))
          ? `.${String(key)}`
          : `[${JSON.stringify(key)}]`;
  }
  return out;
}

export function typeName(input: unknown): string {
  if (input === null) return "null";
  if (Array.isArray(input)) return "an array";
  if (typeof input === "object") return "an object";
  if (input === undefined) return "nothing";
  return `a ${typeof input}`;
}

/**
 * One message per issue, without echoing string input: option values may
 * hold resolved secrets.
 */
export function messageOf(issue: v.BaseIssue<unknown>, knownKeys?: KnownKeys): string {
  if (issue.type === "strict_object" && issue.expected === "never") {
    if (typeof knownKeys === "function") return knownKeys(issue);
    return `unknown option${knownKeys ? `; known options: ${knownKeys.join(", ")}` : ""}`;
  }
  if (issue.input === undefined && issue.kind === "schema") return "is required";
  if (issue.kind === "schema" && issue.type !== "picklist" && issue.type !== "union") {
    return `expected ${issue.expected}, got ${typeName(issue.input)}`;
  }
  // [\s\S], not ".": a received value with a line break in it must go whole.
  return (
    issue.message.replace(/:?\s*(but )?received[\s\S]*$/i, "").trim() || `invalid value, expected ${issue.expected}`
  );
}

/**
 * A union (`"x"` or `["x", "y"]`) fails with one issue per branch; the
 * deepest ones come from the branch the input was meant for.
 */
function specific(issue: v.BaseIssue<unknown>): v.BaseIssue<unknown>[] {
  const branches = issue.type === "union" ? issue.issues : undefined;
  if (!branches || branches.length === 0) return [issue];
  // Branch issues carry paths relative to the union.
  const depth = (i: v.BaseIssue<unknown>) => i.path?.length ?? 0;
  const deepest = Math.max(...branches.map(depth));
  const chosen =
    deepest === 0
      ? [branches[branches.length - 1] as v.BaseIssue<unknown>]
      : branches.filter((b) => depth(b) === deepest);
  return chosen.flatMap((b) =>
    specific({ ...b, path: [...(issue.path ?? []), ...(b.path ?? [])] } as v.BaseIssue<unknown>),
  );
}

export function issuesToErrors(
  variable: string,
  prefix: string,
  issues: readonly v.BaseIssue<unknown>[],
  knownKeys?: KnownKeys,
): ConfigError[] {
  return issues
    .flatMap(specific)
    .map((issue) => ({ variable, path: pathOf(issue, prefix), message: messageOf(issue, knownKeys) }));
}
