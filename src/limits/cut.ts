/** Cutting one record that is over a limit: the fixed fields kept, the others shaped, shared out, or replaced. */

import { CONTEXT_KEYS, type Json, type LogRecord } from "../record";
import { utf8Length } from "../text";
import type { LimitsConfig } from "./config";
import { type Cut, cutString, jsonBytes, measure } from "./measure";
import { type ShapeState, shape } from "./shape";
import { placeholder, shrink, waterLevel } from "./shrink";

// ---------------------------------------------------------------------------
// Which fields may be cut

/**
 * Never cut: the context (what a record is found and grouped by) and the
 * small fields that identify and classify it. Everything else (message,
 * stack, args, errors, event, data, tailAttributes, preview, extra,
 * exceptionName, channel, and any field a later version adds) may be.
 */
const PROTECTED = new Set<string>([
  ...CONTEXT_KEYS,
  "id",
  "type",
  "timestamp",
  "level",
  "logLevel",
  "logCount",
  "exceptionCount",
  "diagnosticCount",
]);

interface Built {
  record: LogRecord;
  line: string;
  bytes: number;
}

function build(keys: readonly string[], values: Map<string, unknown>, fields: string[]): Built {
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const x = values.get(key);
    if (x !== undefined) out[key] = x;
  }
  out.limited = true;
  out.limitedFields = fields;
  const line = JSON.stringify(out);
  return { record: out as unknown as LogRecord, line, bytes: utf8Length(line) };
}

/** A record taken apart for cutting: its fields in order, what phase 1 made of the cuttable ones. */
interface Parts {
  keys: string[];
  /** Fields a cut before this one (queued records) already listed. */
  prior: string[];
  values: Map<string, unknown>;
  cuttable: string[];
  shaped: Map<string, Json>;
  changed: Set<string>;
  base: Cut;
}

/** Phase 1, always: the message's length, nesting depth, array lengths. */
function shapeFields(record: LogRecord, config: LimitsConfig): Parts {
  const src = record as unknown as Record<string, unknown>;
  const prior = Array.isArray(src.limitedFields)
    ? (src.limitedFields as unknown[]).filter((f): f is string => typeof f === "string")
    : [];
  const keys = Object.keys(src).filter((k) => k !== "limited" && k !== "limitedFields");
  const parts: Parts = {
    keys,
    prior,
    values: new Map(),
    cuttable: [],
    shaped: new Map(),
    changed: new Set(),
    base: { bytes: 0, sizes: new Map() },
  };
  for (const key of keys) {
    const x = src[key];
    if (PROTECTED.has(key)) {
      parts.values.set(key, x);
      continue;
    }
    let copy: Json | undefined;
    if (typeof x === "string") {
      copy = key === "message" ? cutString(x, Number.POSITIVE_INFINITY, config.maxMessageChars, parts.base) : x;
      if (copy !== x) parts.changed.add(key);
    } else {
      const st: ShapeState = {
        maxDepth: config.maxDepth,
        maxArrayItems: config.maxArrayItems,
        changed: false,
        cut: parts.base,
      };
      copy = shape(x, 0, st);
      if (st.changed) parts.changed.add(key);
    }
    if (copy === undefined) continue;
    parts.cuttable.push(key);
    parts.shaped.set(key, copy);
    parts.values.set(key, copy);
  }
  return parts;
}

/** `limitedFields`: the fields cut now or before, in record order. */
function fieldsOf(parts: Parts, set: ReadonlySet<string>): string[] {
  const out = parts.keys.filter((k) => set.has(k) || parts.prior.includes(k));
  for (const p of parts.prior) if (!out.includes(p)) out.push(p);
  return out;
}

/**
 * Phase 2, over the byte limit: share what the fixed fields leave among the
 * cuttable ones, biggest cut first, to the same size. Null when even that
 * does not fit.
 */
function shareOut(parts: Parts, sizes: number[], skeleton: Map<string, unknown>, fields: number, max: number) {
  const { keys, values, cuttable, shaped, changed, base } = parts;
  let budget = max - build(keys, skeleton, fieldsOf(parts, new Set(cuttable))).bytes - fields;
  for (let attempt = 0; attempt < 4; attempt++) {
    const cut: Cut = { bytes: base.bytes, sizes: base.sizes };
    const level = waterLevel(sizes, budget);
    const now = new Set(changed);
    const next = new Map(values);
    cuttable.forEach((k, i) => {
      if ((sizes[i] as number) <= level) return;
      next.set(k, shrink(shaped.get(k) as Json, level, cut));
      now.add(k);
    });
    const built = build(keys, next, fieldsOf(parts, now));
    if (built.bytes <= max) return { ...built, cutBytes: cut.bytes };
    // Markers and promised minimums can overshoot a small budget: try again with less.
    budget -= built.bytes - max + 64;
  }
  return null;
}

/** Phase 3, only placeholders: the context alone is (nearly) over the limit. */
function placeholders(parts: Parts): Built & { cutBytes: number } {
  const cut: Cut = { bytes: parts.base.bytes, sizes: parts.base.sizes };
  const next = new Map(parts.values);
  for (const k of parts.cuttable) next.set(k, placeholder(parts.shaped.get(k) as Json, cut));
  const built = build(parts.keys, next, fieldsOf(parts, new Set(parts.cuttable)));
  return { ...built, cutBytes: cut.bytes };
}

/** Cuts a record known to be over a limit. `null`: nothing could be cut. */
export function cutRecord(record: LogRecord, config: LimitsConfig): (Built & { cutBytes: number }) | null {
  const parts = shapeFields(record, config);
  const { keys, values, cuttable, shaped, changed, base } = parts;
  const max = config.maxRecordBytes;
  // Sizes are added up, not serialized: a field may be megabytes.
  const sizes = cuttable.map((k) => measure(shaped.get(k) as Json, base));
  const skeleton = new Map(values);
  for (const k of cuttable) skeleton.delete(k);
  let fields = 0;
  for (const k of cuttable) fields += jsonBytes(k) + 2;
  let total = build(keys, skeleton, fieldsOf(parts, changed)).bytes + fields;
  for (const size of sizes) total += size;
  if (total <= max) {
    const built = build(keys, values, fieldsOf(parts, changed));
    if (built.bytes <= max) return changed.size > 0 ? { ...built, cutBytes: base.bytes } : null;
  }
  return shareOut(parts, sizes, skeleton, fields, max) ?? placeholders(parts);
}
