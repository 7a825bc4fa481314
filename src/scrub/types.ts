/** The scrub configuration's shape and its defaults. */
import type { ConfigError } from "../issues";
import { DETECTOR_KINDS, DETECTORS_OFF_BY_DEFAULT, type DetectorKind } from "./detectors";

export type ScrubMode = "mask" | "hash" | "drop";
export type FieldAction = "drop" | "mask";

export const SCRUB_MODES: readonly ScrubMode[] = ["mask", "hash", "drop"];
export const FIELD_ACTIONS: readonly FieldAction[] = ["drop", "mask"];

/** Top-level record fields a field rule may start at: the ones that carry what application code printed or sent. */
export const FIELD_ROOTS = [
  "message",
  "url",
  "event",
  "args",
  "errors",
  "stack",
  "data",
  "tailAttributes",
  "preview",
  "extra",
  "mailFrom",
  "rcptTo",
] as const;

/** Top-level fields every record of its type has: dropping one replaces its value instead of deleting it. */

export interface ScrubPattern {
  /** The kind shown in replacements: `[REDACTED:<name>]`. */
  name: string;
  /** RegExp source. A named group `secret` limits the replacement to that group. */
  pattern: string;
  /** RegExp flags from `i`, `m`, `s`, `u`; `g` and `d` are added. */
  flags: string;
}

export interface FieldRule {
  /** Dot path into the record; `*` matches one segment (any key, any array index). */
  path: string;
  action: FieldAction;
}

export interface ScrubConfig {
  /** false: records pass untouched. */
  enabled: boolean;
  mode: ScrubMode;
  /** HMAC-SHA-256 key for `hash` mode, resolved. Never echo it. */
  hashKey: string | null;
  detectors: Readonly<Record<DetectorKind, boolean>>;
  patterns: readonly ScrubPattern[];
  fields: readonly FieldRule[];
  /** Replace `${` with `x{` in scanned strings (Logpush's CVE-2021-44228 option). */
  defuseTemplates: boolean;
}

/** An error in a SCRUB value; its path is relative to that value, like `.patterns[0].pattern`. */
export type ScrubConfigError = ConfigError;

function deepFreeze<T>(x: T): T {
  if (x !== null && typeof x === "object") {
    for (const value of Object.values(x)) deepFreeze(value);
    Object.freeze(x);
  }
  return x;
}

/** Built-in detectors on except those off by default; mask mode; no field rules. */
export const DEFAULT_SCRUB: ScrubConfig = deepFreeze({
  enabled: true,
  mode: "mask",
  hashKey: null,
  detectors: Object.fromEntries(DETECTOR_KINDS.map((k) => [k, !DETECTORS_OFF_BY_DEFAULT.includes(k)])) as Record<
    DetectorKind,
    boolean
  >,
  patterns: [],
  fields: [],
  defuseTemplates: false,
});
