/** Reading a scrub config from SCRUB or a sink's `scrub` option, with errors in SCRUB's words. */
import * as v from "valibot";
import { readVar, resolveRefs, SecretBook } from "../config/env";
import { issuesToErrors, typeName } from "../issues";
import { DETECTOR_KINDS, type DetectorKind } from "./detectors";
import {
  DEFAULT_SCRUB,
  FIELD_ACTIONS,
  FIELD_ROOTS,
  type FieldRule,
  SCRUB_MODES,
  type ScrubConfig,
  type ScrubConfigError,
  type ScrubMode,
  type ScrubPattern,
} from "./types";

const bool = v.boolean();
const schema = v.strictObject({
  enabled: v.optional(bool),
  mode: v.optional(v.picklist(SCRUB_MODES, 'must be "mask", "hash" or "drop"')),
  hashKey: v.optional(v.nullable(v.string())),
  detectors: v.optional(
    v.strictObject(
      Object.fromEntries(DETECTOR_KINDS.map((k) => [k, v.optional(bool)])) as Record<
        DetectorKind,
        v.OptionalSchema<typeof bool, undefined>
      >,
    ),
  ),
  patterns: v.optional(
    v.array(v.strictObject({ name: v.string(), pattern: v.string(), flags: v.optional(v.string()) })),
  ),
  fields: v.optional(
    v.array(
      v.strictObject({
        path: v.string(),
        action: v.picklist(FIELD_ACTIONS, 'must be "drop" or "mask"'),
      }),
    ),
  ),
  defuseTemplates: v.optional(bool),
});

const OPTION_KEYS = Object.keys(schema.entries);

/** "Unknown option" in SCRUB's words: a detector name under `detectors`, an option elsewhere. */
function unknownKey(issue: v.BaseIssue<unknown>): string {
  const inDetectors = (issue.path?.length ?? 0) === 2 && (issue.path?.[0] as { key?: unknown })?.key === "detectors";
  return inDetectors
    ? `unknown detector; known detectors: ${DETECTOR_KINDS.join(", ")}`
    : `unknown option${(issue.path?.length ?? 0) === 1 ? `; known options: ${OPTION_KEYS.join(", ")}` : ""}`;
}

const NAME = /^[a-z][a-z0-9_]{0,39}$/;
const MIN_HASH_KEY = 16;

type Options = v.InferOutput<typeof schema>;

/** What every part of one read shares: where errors go and what `${NAME}` resolves from. */
interface Ctx {
  variable: string;
  env: Record<string, unknown>;
  errors: ScrubConfigError[];
  secrets: SecretBook;
}

/** The resolved hash key; a missing or short one in hash mode is an error. */
function readHashKey(o: Options, mode: ScrubMode, ctx: Ctx): string | null {
  const { variable, errors } = ctx;
  let hashKey: string | null = o.hashKey ?? null;
  if (hashKey !== null) {
    const resolved = resolveRefs(hashKey, ".hashKey", ctx);
    hashKey = typeof resolved === "string" ? resolved : null;
  }
  if (mode === "hash") {
    if (hashKey === null || hashKey === "") {
      errors.push({
        variable,
        path: ".hashKey",
        message:
          'is required when mode is "hash": set it to a secret reference like "${SCRUB_HASH_KEY}" (`npx wrangler secret put SCRUB_HASH_KEY`)',
      });
    } else if (hashKey.length < MIN_HASH_KEY && !errors.some((e) => e.path === ".hashKey")) {
      errors.push({
        variable,
        path: ".hashKey",
        message: `must be at least ${MIN_HASH_KEY} characters: a short key lets anyone who sees the hashes guess the values`,
      });
    }
  }
  return hashKey;
}

/** What is wrong with one custom pattern; `names` are those taken before it. */
function patternErrors(
  p: { name: string; pattern: string; flags?: string | undefined },
  at: string,
  names: ReadonlySet<string>,
): { path: string; message: string }[] {
  const errs: { path: string; message: string }[] = [];
  if (!NAME.test(p.name)) {
    errs.push({
      path: `${at}.name`,
      message: "must be 1 to 40 lowercase letters, digits or '_', starting with a letter",
    });
  } else if (names.has(p.name)) {
    errs.push({
      path: `${at}.name`,
      message: `"${p.name}" is already a detector or pattern name; names must be unique`,
    });
  }
  const flags = p.flags ?? "";
  if (!/^[imsu]*$/.test(flags) || new Set(flags).size !== flags.length) {
    errs.push({
      path: `${at}.flags`,
      message: "must be letters from i, m, s, u, each at most once (g and d are added by tailfan)",
    });
  }
  let re: RegExp | null = null;
  try {
    re = new RegExp(p.pattern, /^[imsu]*$/.test(flags) ? flags : "");
  } catch (err) {
    // V8 writes "Invalid regular expression: /<source>/: <reason>": keep only the reason.
    const text = err instanceof Error ? err.message : String(err);
    const reason = text.slice(text.lastIndexOf(": ") + 2);
    errs.push({ path: `${at}.pattern`, message: `is not a valid regular expression (${reason})` });
  }
  if (re?.test("")) {
    errs.push({
      path: `${at}.pattern`,
      message: "matches the empty string; a pattern must match at least one character",
    });
  }
  return errs;
}

/** The custom patterns that are valid; an error for each that is not. */
function readPatterns(o: Options, ctx: Ctx): ScrubPattern[] {
  const patterns: ScrubPattern[] = [];
  const names = new Set<string>(DETECTOR_KINDS);
  (o.patterns ?? []).forEach((p, i) => {
    const at = `.patterns[${i}]`;
    const errs = patternErrors(p, at, names);
    names.add(p.name);
    for (const e of errs) ctx.errors.push({ variable: ctx.variable, ...e });
    if (errs.length === 0) patterns.push({ name: p.name, pattern: p.pattern, flags: p.flags ?? "" });
  });
  return patterns;
}

/** The field rules that start at a field root; an error for each that does not. */
function readFields(o: Options, ctx: Ctx): FieldRule[] {
  const { variable, errors } = ctx;
  const fields: FieldRule[] = [];
  (o.fields ?? []).forEach((f, i) => {
    const at = `.fields[${i}].path`;
    const segs = f.path.split(".");
    if (segs.some((s) => s === "")) {
      errors.push({ variable, path: at, message: 'must be a dot path like "event.request.headers.cookie"' });
    } else if (!(FIELD_ROOTS as readonly string[]).includes(segs[0] as string)) {
      errors.push({
        variable,
        path: at,
        message: `must start at one of ${FIELD_ROOTS.join(", ")}; the other fields identify and route records`,
      });
    } else {
      fields.push({ path: f.path, action: f.action });
    }
  });
  return fields;
}

/**
 * Reads a scrub config: a TOML table or JSON string from an env var such as
 * SCRUB, or a sink's `scrub` option (`true` for the defaults, `false` for
 * off). Nothing set gives `config: null` and no errors. Error paths are
 * relative to the value (prefix them, e.g. with `[2].scrub`, for a sink).
 * `hashKey` may still hold a `${NAME}` reference: it is resolved from env.
 */
export function parseScrubConfig(
  raw: unknown,
  env: Record<string, unknown>,
  variable: string,
  secrets: SecretBook = new SecretBook(),
): { config: ScrubConfig | null; errors: ScrubConfigError[] } {
  const errors: ScrubConfigError[] = [];
  const fail = (path: string, message: string) => {
    errors.push({ variable, path, message });
    return { config: null, errors };
  };
  const read = readVar(
    raw,
    variable,
    'write a JSON object like {"mode":"mask"} or a TOML table like { mode = "mask" }',
  );
  if (!read.ok) return fail("", read.error.message);
  const value = read.value;
  if (value === undefined) return { config: null, errors };
  if (value === true) return { config: DEFAULT_SCRUB, errors };
  if (value === false) return { config: { ...DEFAULT_SCRUB, enabled: false }, errors };
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return fail("", `expected a table (or true/false), got ${typeName(value)}`);
  }
  const parsed = v.safeParse(schema, value);
  if (!parsed.success) {
    errors.push(...issuesToErrors(variable, "", parsed.issues, unknownKey));
    return { config: null, errors };
  }
  const o = parsed.output;
  const mode = o.mode ?? DEFAULT_SCRUB.mode;
  const ctx: Ctx = { variable, env, errors, secrets };
  const hashKey = readHashKey(o, mode, ctx);
  const detectors = { ...DEFAULT_SCRUB.detectors };
  for (const [k, on] of Object.entries(o.detectors ?? {})) if (on !== undefined) detectors[k as DetectorKind] = on;
  const patterns = readPatterns(o, ctx);
  const fields = readFields(o, ctx);

  if (errors.length > 0) return { config: null, errors };
  return {
    config: {
      enabled: o.enabled ?? true,
      mode,
      hashKey: mode === "hash" ? hashKey : null,
      detectors,
      patterns,
      fields,
      defuseTemplates: o.defuseTemplates ?? false,
    },
    errors,
  };
}
