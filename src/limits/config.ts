/** LIMITS: the size guards' settings, their defaults, and reading them. */
import * as v from "valibot";
import { readVar } from "../config/env";
import { type ConfigError, issuesToErrors, typeName } from "../issues";
import { MAX_DEPTH } from "../json";
import { intIn as int } from "../schema";

export interface LimitsConfig {
  /** Largest record line, in UTF-8 bytes of its JSON. */
  maxRecordBytes: number;
  /** Longest `message`, in UTF-16 code units (JavaScript string length), marker included. */
  maxMessageChars: number;
  /** Nesting depth of a cut record's JSON fields (`args`, `data`, `event`, ...); the field itself is level 0. */
  maxDepth: number;
  /** Most elements of any array in a cut record's JSON fields, marker included. */
  maxArrayItems: number;
}

export const DEFAULT_LIMITS: Readonly<LimitsConfig> = Object.freeze({
  maxRecordBytes: 64 * 1024,
  maxMessageChars: 16 * 1024,
  maxDepth: MAX_DEPTH,
  maxArrayItems: 1000,
});

const D = DEFAULT_LIMITS;
const limitsSchema = v.strictObject({
  maxRecordBytes: v.optional(int(1024, 1024 * 1024, "bytes"), D.maxRecordBytes),
  maxMessageChars: v.optional(int(64, 1024 * 1024, "characters"), D.maxMessageChars),
  maxDepth: v.optional(
    int(2, MAX_DEPTH, `levels (nested values are already copied at most ${MAX_DEPTH} levels deep)`),
    D.maxDepth,
  ),
  maxArrayItems: v.optional(int(10, 100_000, "items"), D.maxArrayItems),
});

const KNOWN = Object.keys(limitsSchema.entries);

/**
 * Reads LIMITS: a TOML table in `[vars]` (the runtime hands an object) or
 * the same as a JSON string. Unset or empty gives the defaults. With errors,
 * `config` is the defaults.
 */
export function parseLimitsConfig(raw: unknown, variable: string): { config: LimitsConfig; errors: ConfigError[] } {
  const read = readVar(
    raw,
    variable,
    'write a table like { maxRecordBytes = 131072 } in [vars], or the same as JSON: {"maxRecordBytes":131072}',
  );
  if (!read.ok) return { config: { ...D }, errors: [read.error] };
  const value = read.value;
  if (value === undefined) return { config: { ...D }, errors: [] };
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { config: { ...D }, errors: [{ variable, path: "", message: `expected a table, got ${typeName(value)}` }] };
  }
  const parsed = v.safeParse(limitsSchema, value, { abortPipeEarly: true });
  if (!parsed.success) {
    return {
      config: { ...D },
      errors: issuesToErrors(variable, "", parsed.issues, KNOWN),
    };
  }
  return { config: parsed.output, errors: [] };
}
