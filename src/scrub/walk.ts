/**
 * The record walk: which fields of each record type are scanned, field rules
 * applied along their dot paths, and the batch entry points. Records are
 * never mutated; copies are made only along a changed path.
 */
import type { LogRecord } from "../record";
import { type CompiledRule, compileScrubber, type Scrubber } from "./scrubber";
import { newPass, type Pass, scrubString } from "./text";
import { DEFAULT_SCRUB, type ScrubConfig } from "./types";

/** Top-level fields every record of its type has: dropping one replaces its value instead of deleting it. */
const REQUIRED_ROOTS = new Set(["message", "event", "data"]);

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
  const pass: Pass = newPass(scrubber);
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
  const pass: Pass = newPass(scrubber);
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
  return scrubString(text, undefined, newPass(scrubber));
}

/**
 * Masks what the scrubber finds in every string of a JSON value (keyed
 * detectors see the property name), synchronously; the value itself when
 * nothing matched. For raw TraceItems tailfan keeps without a config (the
 * scrubber must be in mask mode, see `reasonScrubber`).
 */
export function maskJson(value: unknown, scrubber: Scrubber): unknown {
  if (!scrubber.enabled) return value;
  return walk(value, undefined, 0, newPass(scrubber));
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
