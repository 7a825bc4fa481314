/** Scanning one string: hits from the keyed and plain matchers (also in its decoded view), merged, replaced. */
import type { KeyedMatcher, Matcher, Scrubber } from "./scrubber";

interface Hit {
  start: number;
  end: number;
  kind: string;
  prio: number;
}

/** State of one scrubRecords call. */
export interface Pass {
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

export function newPass(sc: Scrubber): Pass {
  return { sc, hits: 0, hashes: new Map(), missing: new Set(), misses: 0, urls: new Map() };
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
        if (ok && m.span) {
          const span = m.span(s, start, end);
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

export function scrubString(s: string, key: string | undefined, pass: Pass): string {
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
