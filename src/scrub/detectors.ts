/**
 * The detector catalogue: one entry per built-in detector kind, in priority
 * order (the first wins when two match the same text). The kind names, the
 * defaults and the SCRUB schema's `detectors` table are all derived from it.
 */
import { cardSpan, isIpv6, notRedacted } from "./checks";

/** One RegExp a detector scans text with. */
export interface DetectorPattern {
  /** RegExp source; a named group `secret` limits the replacement to that group. */
  readonly source: string;
  readonly flags: string;
  /** A cheap case-insensitive RegExp source that matches wherever `source` can (a superset). */
  readonly trigger: string;
  /** Accepts or rejects the secret text. */
  readonly check?: (secret: string) => boolean;
  /** Narrows a match to the secret's span in `s`, or rejects it (null); the RegExp then looks again just after the match's start. */
  readonly span?: (s: string, start: number, end: number) => [number, number] | null;
}

/** A value looked at because of the key it sits under (`authorization: Basic ...`). */
export interface KeyedPattern {
  /** RegExp source tested against the key, case-insensitively. */
  readonly key: string;
  /** RegExp source for the value; its named group `secret` is what is replaced. */
  readonly value: string;
  readonly check?: (secret: string) => boolean;
}

export interface DetectorEntry {
  /** The name shown in replacements (`[REDACTED:<kind>]`) and in SCRUB's `detectors` table. */
  readonly kind: string;
  /** Off unless turned on: it hits data that is often wanted. */
  readonly offByDefault?: true;
  readonly patterns: readonly DetectorPattern[];
  readonly keyed?: readonly KeyedPattern[];
}

export const DETECTORS = [
  {
    kind: "jwt",
    patterns: [
      {
        source: String.raw`(?:(?<![A-Za-z0-9_-])|(?<=\\[nrtbf]))eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`,
        flags: "",
        trigger: "eyJ",
      },
    ],
  },
  {
    kind: "aws_access_key",
    patterns: [
      {
        source: "(?:(?<![A-Za-z0-9])|(?<=\\\\[nrtbf]))(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
        flags: "",
        trigger: "AKIA|ASIA",
      },
    ],
  },
  {
    kind: "aws_secret_key",
    patterns: [
      {
        source: String.raw`(?:aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?access[_-]?key)["']?\s*[:=]\s*["']?(?<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])`,
        flags: "i",
        trigger: "aws[_-]?secret|secret[_-]?access",
      },
    ],
    keyed: [
      {
        key: "^(?:aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?access[_-]?key)$",
        value: "^(?<secret>[A-Za-z0-9/+=]{40})$",
      },
    ],
  },
  {
    kind: "github_token",
    patterns: [
      {
        source:
          "(?:(?<![A-Za-z0-9_])|(?<=\\\\[nrtbf]))(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?![A-Za-z0-9_])",
        flags: "",
        trigger: "gh[pousr]_|github_pat_",
      },
    ],
  },
  {
    kind: "stripe_key",
    patterns: [
      {
        source: "(?:(?<![A-Za-z0-9])|(?<=\\\\[nrtbf]))[sr]k_(?:live|test)_[A-Za-z0-9]{10,247}(?![A-Za-z0-9])",
        flags: "",
        trigger: "[sr]k_(?:live|test)_",
      },
    ],
  },
  {
    kind: "slack_token",
    patterns: [
      {
        source: String.raw`(?:(?<![A-Za-z0-9-])|(?<=\\[nrtbf]))(?:xox[abposr]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,})`,
        flags: "",
        trigger: "xox[abposr]-|xapp-",
      },
      {
        source: String.raw`hooks\.slack\.com/(?:services|workflows|triggers)/(?<secret>[A-Za-z0-9/_-]{8,})`,
        flags: "",
        trigger: String.raw`hooks\.slack\.com/`,
      },
    ],
  },
  {
    kind: "google_api_key",
    patterns: [
      {
        source: "(?:(?<![A-Za-z0-9_-])|(?<=\\\\[nrtbf]))AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])",
        flags: "",
        trigger: "AIza",
      },
    ],
  },
  {
    kind: "bearer",
    patterns: [
      {
        source: String.raw`(?:\b|(?<=\\[nrtbf]))bearer\s+(?<secret>[A-Za-z0-9._~+/-]{8,}=*)`,
        flags: "i",
        trigger: "bearer",
        // "Bearer authentication" in prose is not a token: one needs a digit or some length.
        check: (s) => /\d/.test(s) || s.length >= 20,
      },
      {
        // Digest credentials: after "Digest ", the values of nonce, cnonce, response and opaque (quoted or not).
        source: String.raw`(?<=\bdigest\s[^\n]*?)\b(?:c?nonce|response|opaque)\s*=\s*(?:\\?")?(?<secret>[^\s"',\\]{4,})`,
        flags: "i",
        trigger: String.raw`(?:nonce|response|opaque)\s*=`,
      },
      {
        // "&" ends the value: in a query string it starts the next parameter, which is not the secret.
        // Digest parameters (`Digest username="…"`) are the detector above's.
        source: String.raw`(?:\b|(?<=\\[nrtbf]))(?:proxy-)?authorization\b["']?\s*[:=]\s*["']?(?!digest\s+[\w-]+\s*=)(?:(?:bearer|basic|token|digest|negotiate|apikey)(?:\s|%20)+)?(?<secret>[^\s"',;&]{4,})`,
        flags: "i",
        trigger: "authorization",
        check: notRedacted,
      },
    ],
    keyed: [
      {
        key: "^(?:proxy-)?authorization$",
        value: String.raw`^(?:(?:bearer|basic|token|digest|negotiate|apikey)\s+)?(?<secret>\S[\s\S]*)$`,
        check: notRedacted,
      },
    ],
  },
  {
    kind: "url_param",
    patterns: [
      {
        source: String.raw`(?<![\w.-])(?:[\w.-]*(?:token|secret|passw|pwd|api[_-]?key|signature|credential|session)[\w.-]*|key|sig|code|auth)=(?<secret>[^&#\s"'<>;]+)`,
        flags: "i",
        trigger: String.raw`(?:token|secret|passw|pwd|key|signature|credential|session|sig|code|auth)[\w.-]*=`,
        check: notRedacted,
      },
    ],
  },
  {
    kind: "url_token",
    patterns: [
      {
        source: String.raw`(?<=/)[A-Za-z0-9_-]{32,}(?=$|[/?#&;,\s"')\]])`,
        flags: "",
        trigger: "/[a-z0-9_-]{32}",
        // Mixed case and digits: random base64url. Hex ids and UUIDs (one case) stay.
        check: (s) => /[a-z]/.test(s) && /[A-Z]/.test(s) && /\d/.test(s),
      },
    ],
  },
  {
    kind: "card",
    patterns: [
      {
        source: String.raw`(?<!\d)\d(?:(?:[ -]|%20)?\d){12,18}(?!\d)`,
        flags: "",
        trigger: String.raw`\d(?:(?:[ -]|%20)?\d){12}`,
        span: cardSpan,
      },
    ],
  },
  {
    kind: "email",
    offByDefault: true,
    patterns: [
      {
        source: String.raw`(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])`,
        flags: "",
        trigger: "@",
      },
    ],
  },
  {
    kind: "ipv6",
    offByDefault: true,
    patterns: [
      {
        source: String.raw`(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![0-9A-Za-z:.])`,
        flags: "",
        trigger: ":[0-9a-f]{0,4}:",
        check: isIpv6,
      },
    ],
  },
  {
    kind: "ipv4",
    offByDefault: true,
    patterns: [
      {
        source: String.raw`(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\d|\.\d)`,
        flags: "",
        trigger: String.raw`\d\.\d{1,3}\.\d{1,3}\.\d`,
      },
    ],
  },
] as const satisfies readonly DetectorEntry[];

export type DetectorKind = (typeof DETECTORS)[number]["kind"];

/** Built-in detector kinds, in priority order. */
export const DETECTOR_KINDS: readonly DetectorKind[] = DETECTORS.map((d) => d.kind);

/** Detectors that are off unless turned on: they hit data that is often wanted (docs/security.md). */
export const DETECTORS_OFF_BY_DEFAULT: readonly DetectorKind[] = DETECTORS.filter(
  (d: DetectorEntry) => d.offByDefault === true,
).map((d) => d.kind as DetectorKind);
