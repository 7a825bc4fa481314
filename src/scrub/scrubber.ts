/**
 * The compiled scrubber: a scrub config's RegExps built once (detectors from
 * the catalogue, custom patterns, the combined pre-checks, field rules) and
 * its HMAC key imported once.
 */
import { DETECTORS, type DetectorEntry, type DetectorPattern } from "./detectors";
import type { FieldAction, ScrubConfig } from "./types";

export interface Matcher {
  kind: string;
  re: RegExp;
  check?: DetectorPattern["check"];
  span?: DetectorPattern["span"];
}

export interface KeyedMatcher {
  kind: string;
  key: RegExp;
  value: RegExp;
  check?: (secret: string) => boolean;
}

export interface CompiledRule {
  segments: string[];
  action: FieldAction;
}

const HASH_CACHE_LIMIT = 10_000;
const encoder = new TextEncoder();
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** The enabled built-in detectors' matchers, in catalogue order, and their triggers. */
function detectorMatchers(config: ScrubConfig): { matchers: Matcher[]; triggers: string[] } {
  const matchers: Matcher[] = [];
  const triggers: string[] = [];
  for (const d of DETECTORS as readonly DetectorEntry[]) {
    if (!config.detectors[d.kind as keyof ScrubConfig["detectors"]]) continue;
    for (const p of d.patterns) {
      const m: Matcher = { kind: d.kind, re: new RegExp(p.source, `${p.flags}gd`) };
      if (p.check) m.check = p.check;
      if (p.span) m.span = p.span;
      matchers.push(m);
      triggers.push(p.trigger);
    }
  }
  return { matchers, triggers };
}

/**
 * The pre-checks: one combined RegExp per flag set over the detectors'
 * triggers and the custom patterns (those without back references; those
 * with one are tested alone). A string no pre-check matches is not scanned.
 */
function prechecksFor(config: ScrubConfig, triggers: string[]): RegExp[] {
  const byFlags = new Map<string, string[]>([["i", triggers]]);
  const alone: RegExp[] = [];
  for (const p of config.patterns) {
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
  return prechecks;
}

function keyedMatchers(config: ScrubConfig): KeyedMatcher[] {
  const keyed: KeyedMatcher[] = [];
  for (const d of DETECTORS as readonly DetectorEntry[]) {
    if (!config.detectors[d.kind as keyof ScrubConfig["detectors"]]) continue;
    for (const k of d.keyed ?? []) {
      const m: KeyedMatcher = { kind: d.kind, key: new RegExp(k.key, "i"), value: new RegExp(k.value, "id") };
      if (k.check) m.check = k.check;
      keyed.push(m);
    }
  }
  return keyed;
}

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
    const { matchers, triggers } = detectorMatchers(config);
    // Custom patterns come after the built-in detectors, so a built-in kind names an overlap.
    for (const p of config.patterns) matchers.push({ kind: p.name, re: new RegExp(p.pattern, `${p.flags}gd`) });
    this.prechecks = prechecksFor(config, triggers);
    const keyed = keyedMatchers(config);
    this.enabled = config.enabled && (matchers.length > 0 || config.fields.length > 0 || config.defuseTemplates);
    this.matchers = matchers;
    this.keyed = keyed;
    this.keyTest = keyed.length > 0 ? new RegExp(keyed.map((k) => `(?:${k.key.source})`).join("|"), "i") : null;
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
