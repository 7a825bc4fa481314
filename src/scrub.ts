/**
 * Scrubbing: secrets and personal data that application code printed are
 * masked, hashed or dropped before a record leaves tailfan. Pure: no I/O but
 * WebCrypto's HMAC. Records are never mutated (the runtime's event objects
 * are shared by reference); a record with nothing to scrub is returned as
 * the same object, so a clean batch costs a few RegExp tests per string.
 */
import * as v from "valibot";
import { readVar, resolveRefs, SecretBook } from "./env";
import { type ConfigError, issuesToErrors, typeName } from "./issues";
import type { LogRecord } from "./record";

export type ScrubMode = "mask" | "hash" | "drop";
export type FieldAction = "drop" | "mask";

export const SCRUB_MODES: readonly ScrubMode[] = ["mask", "hash", "drop"];
export const FIELD_ACTIONS: readonly FieldAction[] = ["drop", "mask"];

/** Built-in detectors, in priority order (the first wins when two match the same text). */
export const DETECTOR_KINDS = [
  "jwt",
  "aws_access_key",
  "aws_secret_key",
  "github_token",
  "stripe_key",
  "slack_token",
  "google_api_key",
  "bearer",
  "url_param",
  "url_token",
  "card",
  "email",
  "ipv6",
  "ipv4",
] as const;
export type DetectorKind = (typeof DETECTOR_KINDS)[number];

/** Detectors that are off unless turned on: they hit data that is often wanted (see src/scrub.md). */
export const DETECTORS_OFF_BY_DEFAULT: readonly DetectorKind[] = ["email", "ipv4", "ipv6"];

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
const REQUIRED_ROOTS = new Set(["message", "event", "data"]);

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

/** Built-in detectors on except email, ipv4 and ipv6; mask mode; no field rules. */
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

// ---------------------------------------------------------------------------
// Detectors

interface DetectorDef {
  kind: DetectorKind;
  source: string;
  flags: string;
  /** A cheap case-insensitive RegExp source that matches wherever `source` can (a superset). */
  trigger: string;
  /** Accepts or rejects the secret text. */
  check?: (secret: string) => boolean;
}

/** Detectors that look at a value because of the key it sits under (`authorization: Basic ...`). */
interface KeyedDef {
  kind: DetectorKind;
  key: string;
  value: string;
  check?: (secret: string) => boolean;
}

const notRedacted = (s: string) => s !== "REDACTED" && s !== "[REDACTED]";

const DETECTORS: readonly DetectorDef[] = [
  {
    kind: "jwt",
    source: String.raw`(?:(?<![A-Za-z0-9_-])|(?<=\\[nrtbf]))eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`,
    flags: "",
    trigger: "eyJ",
  },
  {
    kind: "aws_access_key",
    source: "(?:(?<![A-Za-z0-9])|(?<=\\\\[nrtbf]))(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
    flags: "",
    trigger: "AKIA|ASIA",
  },
  {
    kind: "aws_secret_key",
    source: String.raw`(?:aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?access[_-]?key)["']?\s*[:=]\s*["']?(?<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])`,
    flags: "i",
    trigger: "aws[_-]?secret|secret[_-]?access",
  },
  {
    kind: "github_token",
    source:
      "(?:(?<![A-Za-z0-9_])|(?<=\\\\[nrtbf]))(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?![A-Za-z0-9_])",
    flags: "",
    trigger: "gh[pousr]_|github_pat_",
  },
  {
    kind: "stripe_key",
    source: "(?:(?<![A-Za-z0-9])|(?<=\\\\[nrtbf]))[sr]k_(?:live|test)_[A-Za-z0-9]{10,247}(?![A-Za-z0-9])",
    flags: "",
    trigger: "[sr]k_(?:live|test)_",
  },
  {
    kind: "slack_token",
    source: String.raw`(?:(?<![A-Za-z0-9-])|(?<=\\[nrtbf]))(?:xox[abposr]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,})`,
    flags: "",
    trigger: "xox[abposr]-|xapp-",
  },
  {
    kind: "slack_token",
    source: String.raw`hooks\.slack\.com/(?:services|workflows|triggers)/(?<secret>[A-Za-z0-9/_-]{8,})`,
    flags: "",
    trigger: String.raw`hooks\.slack\.com/`,
  },
  {
    kind: "google_api_key",
    source: "(?:(?<![A-Za-z0-9_-])|(?<=\\\\[nrtbf]))AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])",
    flags: "",
    trigger: "AIza",
  },
  {
    kind: "bearer",
    source: String.raw`(?:\b|(?<=\\[nrtbf]))bearer\s+(?<secret>[A-Za-z0-9._~+/-]{8,}=*)`,
    flags: "i",
    trigger: "bearer",
    // "Bearer authentication" in prose is not a token: one needs a digit or some length.
    check: (s) => /\d/.test(s) || s.length >= 20,
  },
  {
    // Digest credentials: after "Digest ", the values of nonce, cnonce, response and opaque (quoted or not).
    kind: "bearer",
    source: String.raw`(?<=\bdigest\s[^\n]*?)\b(?:c?nonce|response|opaque)\s*=\s*(?:\\?")?(?<secret>[^\s"',\\]{4,})`,
    flags: "i",
    trigger: String.raw`(?:nonce|response|opaque)\s*=`,
  },
  {
    kind: "bearer",
    // "&" ends the value: in a query string it starts the next parameter, which is not the secret.
    // Digest parameters (`Digest username="…"`) are the detector above's.
    source: String.raw`(?:\b|(?<=\\[nrtbf]))(?:proxy-)?authorization\b["']?\s*[:=]\s*["']?(?!digest\s+[\w-]+\s*=)(?:(?:bearer|basic|token|digest|negotiate|apikey)(?:\s|%20)+)?(?<secret>[^\s"',;&]{4,})`,
    flags: "i",
    trigger: "authorization",
    check: notRedacted,
  },
  {
    kind: "url_param",
    source: String.raw`(?<![\w.-])(?:[\w.-]*(?:token|secret|passw|pwd|api[_-]?key|signature|credential|session)[\w.-]*|key|sig|code|auth)=(?<secret>[^&#\s"'<>;]+)`,
    flags: "i",
    trigger: String.raw`(?:token|secret|passw|pwd|key|signature|credential|session|sig|code|auth)[\w.-]*=`,
    check: notRedacted,
  },
  {
    kind: "url_token",
    source: String.raw`(?<=/)[A-Za-z0-9_-]{32,}(?=$|[/?#&;,\s"')\]])`,
    flags: "",
    trigger: "/[a-z0-9_-]{32}",
    // Mixed case and digits: random base64url. Hex ids and UUIDs (one case) stay.
    check: (s) => /[a-z]/.test(s) && /[A-Z]/.test(s) && /\d/.test(s),
  },
  {
    kind: "card",
    source: String.raw`(?<!\d)\d(?:(?:[ -]|%20)?\d){12,18}(?!\d)`,
    flags: "",
    trigger: String.raw`\d(?:(?:[ -]|%20)?\d){12}`,
  },
  {
    kind: "email",
    source: String.raw`(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])`,
    flags: "",
    trigger: "@",
  },
  {
    kind: "ipv6",
    source: String.raw`(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![0-9A-Za-z:.])`,
    flags: "",
    trigger: ":[0-9a-f]{0,4}:",
    check: isIpv6,
  },
  {
    kind: "ipv4",
    source: String.raw`(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\d|\.\d)`,
    flags: "",
    trigger: String.raw`\d\.\d{1,3}\.\d{1,3}\.\d`,
  },
];

const KEYED: readonly KeyedDef[] = [
  {
    kind: "bearer",
    key: "^(?:proxy-)?authorization$",
    value: String.raw`^(?:(?:bearer|basic|token|digest|negotiate|apikey)\s+)?(?<secret>\S[\s\S]*)$`,
    check: notRedacted,
  },
  {
    kind: "aws_secret_key",
    key: "^(?:aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?access[_-]?key)$",
    value: "^(?<secret>[A-Za-z0-9/+=]{40})$",
  },
];

function isIpv6(s: string): boolean {
  let groups = 0;
  let rest = s;
  const v4 = /(?:^|:)((?:\d{1,3}\.){3}\d{1,3})$/.exec(rest);
  if (v4) {
    if (!(v4[1] as string).split(".").every((o) => Number(o) <= 255)) return false;
    groups += 2;
    rest = rest.slice(0, rest.length - (v4[1] as string).length);
    if (rest.endsWith(":") && !rest.endsWith("::")) rest = rest.slice(0, -1);
  }
  const halves = rest.split("::");
  if (halves.length > 2) return false;
  for (const half of halves) {
    if (half === "") continue;
    for (const g of half.split(":")) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return false;
      groups++;
    }
  }
  if (groups === 0) return false;
  return halves.length === 2 ? groups <= 7 : groups === 8;
}

function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Issuer prefixes and lengths of the card networks, so timestamps and most ids are not taken for cards. */
function cardShaped(d: string): boolean {
  const n = d.length;
  const two = Number(d.slice(0, 2));
  const four = Number(d.slice(0, 4));
  switch (d[0]) {
    case "2": // Mastercard 2-series
      return n === 16 && four >= 2221 && four <= 2720;
    case "3": // Amex 34/37; JCB 35; Diners 30/36/38/39
      return two === 34 || two === 37 ? n === 15 : [30, 35, 36, 38, 39].includes(two) && n >= 14;
    case "4": // Visa
      return n === 13 || n >= 16;
    case "5": // Mastercard 51-55; Maestro 50, 56-58
      return n >= 16 || (two !== 51 && two !== 52 && two !== 53 && two !== 54 && two !== 55 && n >= 13);
    case "6": // Discover, UnionPay, Maestro
      return n >= 16 || (n >= 13 && two !== 60 && two !== 62 && two !== 64 && two !== 65);
    default:
      return false;
  }
}

/**
 * The longest card number that starts at `start` within the digit run
 * `s[start, end)`, as [start, end) in `s`, or null.
 */
function cardSpan(s: string, start: number, end: number): [number, number] | null {
  // Offsets in `s` just after each digit.
  const ends: number[] = [];
  let digits = "";
  for (let i = start; i < end; i++) {
    // A space in a URL is "%20": its digits are not the card's.
    if (s.startsWith("%20", i)) {
      i += 2;
      continue;
    }
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      digits += s[i];
      ends.push(i + 1);
    }
  }
  for (let n = Math.min(19, digits.length); n >= 13; n--) {
    const d = digits.slice(0, n);
    if (cardShaped(d) && luhn(d)) return [start, ends[n - 1] as number];
  }
  return null;
}

// ---------------------------------------------------------------------------
// The compiled scrubber

interface Matcher {
  kind: string;
  re: RegExp;
  check?: (secret: string) => boolean;
  card?: boolean;
}

interface KeyedMatcher {
  kind: string;
  key: RegExp;
  value: RegExp;
  check?: (secret: string) => boolean;
}

interface CompiledRule {
  segments: string[];
  action: FieldAction;
}

const HASH_CACHE_LIMIT = 10_000;
const encoder = new TextEncoder();
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** A compiled scrub config: regexes built once, the HMAC key imported once. Build with `compileScrubber`. */
export class Scrubber {
  readonly config: ScrubConfig;
  readonly enabled: boolean;
  /** @internal */ readonly matchers: readonly Matcher[];
  /** @internal */ readonly keyed: readonly KeyedMatcher[];
  /** @internal */ readonly keyTest: RegExp | null;
  /** @internal */ readonly prechecks: readonly RegExp[];
  /** @internal */ readonly rules: readonly CompiledRule[];
  /** @internal */ readonly defuse: boolean;
  private readonly cache = new Map<string, string>();
  private key: Promise<CryptoKey> | null = null;

  constructor(config: ScrubConfig) {
    this.config = config;
    if (config.mode === "hash" && !config.hashKey) throw new Error("scrub: hash mode needs a hashKey");
    const matchers: Matcher[] = [];
    const triggers: string[] = [];
    for (const d of DETECTORS) {
      if (!config.detectors[d.kind]) continue;
      const m: Matcher = { kind: d.kind, re: new RegExp(d.source, `${d.flags}gd`) };
      if (d.check) m.check = d.check;
      if (d.kind === "card") m.card = true;
      matchers.push(m);
      triggers.push(d.trigger);
    }
    // Custom patterns join the combined pre-check when they can (same flags, no back references).
    const byFlags = new Map<string, string[]>([["i", triggers]]);
    const alone: RegExp[] = [];
    for (const p of config.patterns) {
      matchers.push({ kind: p.name, re: new RegExp(p.pattern, `${p.flags}gd`) });
      const source = p.pattern.replace(/\(\?<(?![=!])[A-Za-z_$][\w$]*>/g, "(?:");
      if (/\\[1-9]|\\k</.test(source)) {
        alone.push(new RegExp(p.pattern, p.flags));
        continue;
      }
      const flags = [...p.flags].sort().join("");
      const list = byFlags.get(flags) ?? [];
      list.push(`(?:${source})`);
      byFlags.set(flags, list);
    }
    if (config.defuseTemplates) triggers.push(String.raw`\$\{`);
    const prechecks: RegExp[] = [];
    for (const [flags, sources] of byFlags) {
      if (sources.length === 0) continue;
      try {
        prechecks.push(new RegExp(sources.join("|"), flags));
      } catch {
        for (const s of sources) prechecks.push(new RegExp(s, flags));
      }
    }
    prechecks.push(...alone);
    const keyed: KeyedMatcher[] = [];
    for (const k of KEYED) {
      if (!config.detectors[k.kind]) continue;
      const m: KeyedMatcher = { kind: k.kind, key: new RegExp(k.key, "i"), value: new RegExp(k.value, "id") };
      if (k.check) m.check = k.check;
      keyed.push(m);
    }
    this.enabled = config.enabled && (matchers.length > 0 || config.fields.length > 0 || config.defuseTemplates);
    this.matchers = matchers;
    this.keyed = keyed;
    this.keyTest = keyed.length > 0 ? new RegExp(keyed.map((k) => `(?:${k.key.source})`).join("|"), "i") : null;
    this.prechecks = prechecks;
    this.rules = config.fields.map((f) => ({ segments: f.path.split("."), action: f.action }));
    this.defuse = config.defuseTemplates;
  }

  /** @internal The cached hash of a value, if computed. */
  cachedHash(value: string): string | undefined {
    return this.cache.get(value);
  }

  /** @internal First 16 hex digits of HMAC-SHA-256(hashKey, value) for each value; "" when WebCrypto failed. */
  async hashAll(values: Iterable<string>, into: Map<string, string>): Promise<void> {
    const list = [...values];
    let results: string[];
    try {
      this.key ??= crypto.subtle.importKey(
        "raw",
        encoder.encode(this.config.hashKey ?? ""),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      );
      const key = await this.key;
      results = await Promise.all(
        list.map(async (value) => {
          const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(value)));
          let hex = "";
          for (let i = 0; i < 8; i++) hex += HEX[mac[i] as number];
          return hex;
        }),
      );
    } catch {
      // Never send the value: without a hash it is masked.
      this.key = null;
      results = list.map(() => "");
    }
    if (this.cache.size + list.length > HASH_CACHE_LIMIT) this.cache.clear();
    list.forEach((value, i) => {
      const hex = results[i] as string;
      into.set(value, hex);
      if (hex !== "") this.cache.set(value, hex);
    });
  }
}

/** Compiles a scrub config: every RegExp is built here, once. */
export function compileScrubber(config: ScrubConfig): Scrubber {
  return new Scrubber(config);
}

// ---------------------------------------------------------------------------
// Scrubbing

interface Hit {
  start: number;
  end: number;
  kind: string;
  prio: number;
}

/** State of one scrubRecords call. */
interface Pass {
  sc: Scrubber;
  hits: number;
  /** Hashes computed for this call (the scrubber's cache may be cleared meanwhile). */
  hashes: Map<string, string>;
  /** Values whose hash is needed and not known yet. */
  missing: Set<string>;
  /** Lookups that found no hash (a record with any is scrubbed again once hashes are known). */
  misses: number;
  /** `url` is the same on every record of an invocation: scanned once per call. */
  urls: Map<string, { out: string; hits: number }>;
}

function findHits(s: string, sc: Scrubber, key: string | undefined): Hit[] | null {
  let hits: Hit[] | null = null;
  if (key !== undefined && sc.keyTest?.test(key)) {
    for (let i = 0; i < sc.keyed.length; i++) {
      const k = sc.keyed[i] as KeyedMatcher;
      if (!k.key.test(key)) continue;
      const g = k.value.exec(s)?.indices?.groups?.secret;
      if (!g || (k.check && !k.check(s.slice(g[0], g[1])))) continue;
      // Keyed hits rank first: the key says what the value is.
      hits ??= [];
      hits.push({ start: g[0], end: g[1], kind: k.kind, prio: i - sc.keyed.length });
    }
  }
  hits = matchDetectors(s, sc, hits, null);
  // The same text as a URL or a form would decode it, and as JSON with "\/" would: a secret written
  // `Bearer%20…`, `%2Freset%3Ftoken%3D…`, `4111+1111+…` or `https:\/\/hooks.slack.com\/…` is found there and
  // masked at its place in the original, so a mask ends where the secret ends.
  if (ENCODED.test(s)) {
    const view = decodedView(s);
    if (view !== null) hits = matchDetectors(view.text, sc, hits, view.from);
  }
  return hits;
}

/** Text that a decoded view may read differently: percent escapes, `+` for space, `\/`. */
const ENCODED = /%[0-7][0-9A-Fa-f]|\+|\\\//;

/**
 * `s` with `%XX` (ASCII only), `+` and `\/` decoded, and for each of its
 * characters the offset in `s` where it starts (one more entry: `s.length`).
 * Null when nothing decodes.
 */
function decodedView(s: string): { text: string; from: number[] } | null {
  let text = "";
  const from: number[] = [];
  let changed = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    from.push(i);
    if (c === "%" && i + 2 < s.length && /^[0-7][0-9A-Fa-f]$/.test(s.slice(i + 1, i + 3))) {
      text += String.fromCharCode(Number.parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
      changed = true;
    } else if (c === "+") {
      text += " ";
      changed = true;
    } else if (c === "\\" && s[i + 1] === "/") {
      text += "/";
      i++;
      changed = true;
    } else {
      text += c;
    }
  }
  from.push(s.length);
  return changed ? { text, from } : null;
}

/**
 * Runs the detectors over `s`, adding to `found`. With `from` (a decoded
 * view's offsets), hits are mapped back to the original text.
 */
function matchDetectors(s: string, sc: Scrubber, found: Hit[] | null, from: number[] | null): Hit[] | null {
  let hits = found;
  let triggered = false;
  for (const re of sc.prechecks) {
    if (re.test(s)) {
      triggered = true;
      break;
    }
  }
  if (!triggered) return hits;
  const matchers = sc.matchers;
  for (let p = 0; p < matchers.length; p++) {
    const m = matchers[p] as Matcher;
    const re = m.re;
    re.lastIndex = 0;
    let x: RegExpExecArray | null = re.exec(s);
    while (x !== null) {
      if (x[0].length === 0) {
        re.lastIndex++;
      } else {
        let start = x.index;
        let end = start + x[0].length;
        const g = x.indices?.groups?.secret;
        if (g) [start, end] = g;
        let ok = end > start;
        if (ok && m.card) {
          const span = cardSpan(s, start, end);
          ok = span !== null;
          if (span) [start, end] = span;
          // A run that is no card may still end in one: look again from the next digit.
          re.lastIndex = span ? end : x.index + 1;
        } else if (ok && m.check) {
          ok = m.check(s.slice(start, end));
        }
        if (ok) {
          hits ??= [];
          if (from === null) hits.push({ start, end, kind: m.kind, prio: p });
          else hits.push({ start: from[start] as number, end: from[end] as number, kind: m.kind, prio: p });
        }
      }
      x = re.exec(s);
    }
  }
  return hits;
}

/**
 * Overlapping hits merge into one span, named after the highest-priority
 * detector among them: nothing of either match is left visible.
 */
function resolve(hits: Hit[]): Hit[] {
  if (hits.length === 1) return hits;
  hits.sort((a, b) => a.start - b.start || b.end - a.end || a.prio - b.prio);
  const out: Hit[] = [];
  let cur: Hit | null = null;
  for (const h of hits) {
    if (cur !== null && h.start < cur.end) {
      if (h.end > cur.end) cur.end = h.end;
      if (h.prio < cur.prio) {
        cur.prio = h.prio;
        cur.kind = h.kind;
      }
      continue;
    }
    cur = { ...h };
    out.push(cur);
  }
  return out;
}

function scrubString(s: string, key: string | undefined, pass: Pass): string {
  const sc = pass.sc;
  const found = findHits(s, sc, key);
  let out = s;
  if (found !== null && found.length > 0) {
    const hits = resolve(found);
    pass.hits += hits.length;
    const mode = sc.config.mode;
    if (mode === "drop") {
      out = `[DROPPED:${(hits[0] as Hit).kind}]`;
    } else {
      out = "";
      let at = 0;
      for (const h of hits) {
        out += s.slice(at, h.start);
        if (mode === "hash") {
          const secret = s.slice(h.start, h.end);
          const hex = sc.cachedHash(secret) ?? pass.hashes.get(secret);
          if (hex === undefined) {
            pass.missing.add(secret);
            pass.misses++;
          }
          out += hex ? `[HASH:${h.kind}:${hex}]` : `[REDACTED:${h.kind}]`;
        } else {
          out += `[REDACTED:${h.kind}]`;
        }
        at = h.end;
      }
      out += s.slice(at);
    }
  }
  if (sc.defuse && out.includes("${")) {
    out = out.replaceAll("${", "x{");
    pass.hits++;
  }
  return out;
}

const MAX_WALK_DEPTH = 64;

function read(o: object, key: string): unknown {
  try {
    return (o as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function ownKeys(o: object): string[] {
  try {
    return Object.keys(o);
  } catch {
    return [];
  }
}

/** A plain copy of an object's own enumerable fields: what JSON.stringify would write. */
function shallowCopy(o: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ownKeys(o)) out[k] = read(o, k);
  return out;
}

/** Scrubs every string inside a JSON value; returns the value itself when nothing changed. */
function walk(value: unknown, key: string | undefined, depth: number, pass: Pass): unknown {
  if (typeof value === "string") return scrubString(value, key, pass);
  if (value === null || typeof value !== "object" || depth > MAX_WALK_DEPTH) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      const next = walk(item, key, depth + 1, pass);
      if (next !== item) {
        out ??= value.slice();
        out[i] = next;
      }
    }
    return out ?? value;
  }
  let out: Record<string, unknown> | null = null;
  for (const k of ownKeys(value)) {
    const item = read(value, k);
    const next = walk(item, k, depth + 1, pass);
    if (next !== item) {
      out ??= shallowCopy(value);
      out[k] = next;
    }
  }
  return out ?? value;
}

const REMOVE = Symbol("remove");

/** Applies one field rule below `node`; returns the node itself when the path is not there. */
function applyRule(node: unknown, segs: readonly string[], i: number, rule: CompiledRule, pass: Pass): unknown {
  if (node === null || typeof node !== "object") return node;
  const seg = segs[i] as string;
  const lastSeg = i === segs.length - 1;
  const isArray = Array.isArray(node);
  const keys = seg === "*" ? (isArray ? node.map((_, j) => String(j)) : ownKeys(node)) : [seg];
  let out: Record<string, unknown> | unknown[] | null = null;
  const removed: string[] = [];
  for (const k of keys) {
    if (isArray ? !/^\d+$/.test(k) || Number(k) >= node.length : !Object.hasOwn(node, k)) continue;
    const child = read(node, k);
    if (child === undefined) continue;
    let next: unknown;
    if (lastSeg) {
      pass.hits++;
      if (rule.action === "mask") next = "[REDACTED:field]";
      else next = isArray ? "[DROPPED:field]" : REMOVE;
    } else {
      next = applyRule(child, segs, i + 1, rule, pass);
    }
    if (next === child) continue;
    out ??= isArray ? (node as unknown[]).slice() : shallowCopy(node);
    if (next === REMOVE) removed.push(k);
    else (out as Record<string, unknown>)[k] = next;
  }
  if (out && !isArray) for (const k of removed) delete (out as Record<string, unknown>)[k];
  return out ?? node;
}

function scrubUrl(url: string, pass: Pass): string {
  const known = pass.urls.get(url);
  if (known) {
    pass.hits += known.hits;
    return known.out;
  }
  const before = pass.hits;
  const misses = pass.misses;
  const out = scrubString(url, undefined, pass);
  // A hash still to compute leaves a placeholder: do not remember it.
  if (pass.misses === misses) pass.urls.set(url, { out, hits: pass.hits - before });
  return out;
}

/** The event's request url and headers, the parts application data reaches. */
function scrubEvent(event: unknown, pass: Pass): unknown {
  if (event === null || typeof event !== "object" || Array.isArray(event)) return event;
  const request = read(event, "request");
  if (request === null || typeof request !== "object" || Array.isArray(request)) return event;
  const url = read(request, "url");
  const headers = read(request, "headers");
  const nextUrl = typeof url === "string" ? scrubUrl(url, pass) : url;
  const nextHeaders = walk(headers, undefined, 0, pass);
  if (nextUrl === url && nextHeaders === headers) return event;
  const req = shallowCopy(request);
  if (nextUrl !== url) req.url = nextUrl;
  if (nextHeaders !== headers) req.headers = nextHeaders;
  const out = shallowCopy(event);
  out.request = req;
  return out;
}

function scrubOne(record: LogRecord, pass: Pass): LogRecord {
  const sc = pass.sc;
  let rec = record as unknown as Record<string, unknown>;
  for (const rule of sc.rules) {
    const next = applyRule(rec, rule.segments, 0, rule, pass);
    if (next !== rec) {
      rec = next as Record<string, unknown>;
      // A required field is replaced, never deleted.
      for (const k of REQUIRED_ROOTS) if (k in record && !(k in rec)) rec[k] = "[DROPPED:field]";
    }
  }
  if (sc.matchers.length > 0 || sc.defuse || sc.keyed.length > 0) {
    const base = rec;
    const box: { out: Record<string, unknown> | null } = { out: null };
    const set = (k: string, next: unknown) => {
      if (next === base[k]) return;
      // A copy made by a field rule is ours to change; the input record is not.
      box.out ??= base === (record as unknown) ? { ...base } : base;
      box.out[k] = next;
    };
    if (typeof base.message === "string") set("message", scrubString(base.message, undefined, pass));
    if (typeof base.url === "string") set("url", scrubUrl(base.url, pass));
    switch (base.type) {
      case "log":
        if (base.args !== undefined) set("args", walk(base.args, undefined, 0, pass));
        if (base.errors !== undefined) set("errors", walk(base.errors, undefined, 0, pass));
        break;
      case "exception":
        if (typeof base.stack === "string") set("stack", scrubString(base.stack, undefined, pass));
        break;
      case "diagnostic":
        set("data", walk(base.data, undefined, 0, pass));
        break;
      case "invocation":
        set("event", scrubEvent(base.event, pass));
        break;
      case "span":
        // Span attributes carry subrequest URLs (`url.full`), which may hold tokens.
        set("attributes", walk(base.attributes, undefined, 0, pass));
        break;
    }
    if (box.out) rec = box.out;
  }
  return rec as unknown as LogRecord;
}

/**
 * Scrubs a batch. Returns the input array itself (same record objects) when
 * nothing matched; otherwise a new array in which only the changed records
 * are new objects. Never mutates its input.
 */
export async function scrubRecords(
  records: readonly LogRecord[],
  scrubber: Scrubber,
): Promise<{ records: readonly LogRecord[]; hits: number }> {
  if (!scrubber.enabled || records.length === 0) return { records, hits: 0 };
  const pass: Pass = { sc: scrubber, hits: 0, hashes: new Map(), missing: new Set(), misses: 0, urls: new Map() };
  let out: LogRecord[] | null = null;
  let redo: number[] | null = null;
  for (let i = 0; i < records.length; i++) {
    const record = records[i] as LogRecord;
    const misses = pass.misses;
    const next = scrubOne(record, pass);
    if (pass.misses > misses) {
      redo ??= [];
      redo.push(i);
    }
    if (next !== record) {
      out ??= records.slice();
      out[i] = next;
    }
  }
  if (redo && out) {
    // Hash mode: compute the hashes this batch needs at once, then write them in.
    await scrubber.hashAll(pass.missing, pass.hashes);
    pass.missing.clear();
    pass.urls.clear();
    for (const i of redo) {
      const probe: Pass = { ...pass, hits: 0 };
      out[i] = scrubOne(records[i] as LogRecord, probe);
    }
  }
  return { records: out ?? records, hits: pass.hits };
}

/** Scrubs one record: a new record when anything was scrubbed, the same object otherwise. */
export async function scrubRecord(record: LogRecord, scrubber: Scrubber): Promise<{ record: LogRecord; hits: number }> {
  const { records, hits } = await scrubRecords([record], scrubber);
  return { record: records[0] as LogRecord, hits };
}

/** Scrubs one string as a record's message would be. */
export async function scrubText(text: string, scrubber: Scrubber): Promise<{ text: string; hits: number }> {
  const pass: Pass = { sc: scrubber, hits: 0, hashes: new Map(), missing: new Set(), misses: 0, urls: new Map() };
  if (!scrubber.enabled) return { text, hits: 0 };
  let out = scrubString(text, undefined, pass);
  if (pass.misses > 0) {
    await scrubber.hashAll(pass.missing, pass.hashes);
    pass.hits = 0;
    out = scrubString(text, undefined, pass);
  }
  return { text: out, hits: pass.hits };
}

/**
 * Masks what the scrubber finds in one text, synchronously: for tailfan's own
 * words (failure reasons), never records. The scrubber must be in mask mode
 * (see `reasonScrubber`).
 */
export function maskText(text: string, scrubber: Scrubber): string {
  if (!scrubber.enabled) return text;
  return scrubString(text, undefined, {
    sc: scrubber,
    hits: 0,
    hashes: new Map(),
    missing: new Set(),
    misses: 0,
    urls: new Map(),
  });
}

/**
 * The scrubber for tailfan's own words: the configured detectors and
 * patterns (the defaults when SCRUB is unset or off, since a failure reason
 * is not a record the user chose to leave untouched), always masking.
 */
export function reasonScrubber(config: ScrubConfig | null): Scrubber {
  const on = config?.enabled ? config : null;
  return compileScrubber({
    ...DEFAULT_SCRUB,
    detectors: on ? on.detectors : DEFAULT_SCRUB.detectors,
    patterns: on ? on.patterns : [],
  });
}

// ---------------------------------------------------------------------------
// Configuration

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

  let hashKey: string | null = o.hashKey ?? null;
  if (hashKey !== null) {
    const resolved = resolveRefs(hashKey, ".hashKey", { variable, env, errors, secrets });
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

  const detectors = { ...DEFAULT_SCRUB.detectors };
  for (const [k, on] of Object.entries(o.detectors ?? {})) if (on !== undefined) detectors[k as DetectorKind] = on;

  const patterns: ScrubPattern[] = [];
  const names = new Set<string>(DETECTOR_KINDS);
  (o.patterns ?? []).forEach((p, i) => {
    const at = `.patterns[${i}]`;
    let ok = true;
    if (!NAME.test(p.name)) {
      errors.push({
        variable,
        path: `${at}.name`,
        message: "must be 1 to 40 lowercase letters, digits or '_', starting with a letter",
      });
      ok = false;
    } else if (names.has(p.name)) {
      errors.push({
        variable,
        path: `${at}.name`,
        message: `"${p.name}" is already a detector or pattern name; names must be unique`,
      });
      ok = false;
    }
    names.add(p.name);
    const flags = p.flags ?? "";
    if (!/^[imsu]*$/.test(flags) || new Set(flags).size !== flags.length) {
      errors.push({
        variable,
        path: `${at}.flags`,
        message: "must be letters from i, m, s, u, each at most once (g and d are added by tailfan)",
      });
      ok = false;
    }
    let re: RegExp | null = null;
    try {
      re = new RegExp(p.pattern, /^[imsu]*$/.test(flags) ? flags : "");
    } catch (err) {
      // V8 writes "Invalid regular expression: /<source>/: <reason>": keep only the reason.
      const text = err instanceof Error ? err.message : String(err);
      const reason = text.slice(text.lastIndexOf(": ") + 2);
      errors.push({ variable, path: `${at}.pattern`, message: `is not a valid regular expression (${reason})` });
      ok = false;
    }
    if (re?.test("")) {
      errors.push({
        variable,
        path: `${at}.pattern`,
        message: "matches the empty string; a pattern must match at least one character",
      });
      ok = false;
    }
    if (ok) patterns.push({ name: p.name, pattern: p.pattern, flags });
  });

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
