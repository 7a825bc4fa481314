import * as v from "valibot";
import { levelRank } from "../src/record";
import { LOGPUSH_NO_SHAPING, logpushNdjson } from "./logpush";
import { dateParts, describeError, keySegment, maxRecordsOption, ndjson, truncateUtf8 } from "./shared";
import { defineSink, type SerializedRecord } from "./types";

/** One KV write: the NDJSON of one invocation's records in this batch. */
export interface KvEntry {
  key: string;
  value: string;
  metadata: KvMetadata;
}

/** Stored as key metadata, so `list()` shows what an entry holds without reading it. */
export interface KvMetadata {
  script: string | null;
  level: string;
  outcome: string;
  eventType: string;
  count: number;
  ts: number;
}

const TEMPLATE_VARS = [
  "script",
  "date",
  "yyyy",
  "mm",
  "dd",
  "hh",
  "invocation",
  "id",
  "level",
  "outcome",
  "eventType",
  "ts",
];

/** KV's key limit. */
const KV_MAX_KEY_BYTES = 512;

/** Keeps a key within KV's limit without losing the record id that makes it unique. */
function fitKey(key: string, id: string): string {
  if (truncateUtf8(key, KV_MAX_KEY_BYTES) === key) return key;
  return `${truncateUtf8(key, KV_MAX_KEY_BYTES - id.length - 1)}~${id}`;
}

/** The records of one entry each: per invocation, or the whole batch as one. */
function groupRecords(
  batch: readonly SerializedRecord[],
  per: "invocation" | "batch",
): Map<string, SerializedRecord[]> {
  const groups = new Map<string, SerializedRecord[]>();
  if (per === "batch" && batch.length > 0) groups.set("batch", [...batch]);
  else
    for (const item of batch) {
      const list = groups.get(item.record.invocationId);
      if (list) list.push(item);
      else groups.set(item.record.invocationId, [item]);
    }
  return groups;
}

/** One KV entry for a group of records: its key from the template, its NDJSON value and metadata. */
function kvEntry(items: readonly SerializedRecord[], template: string, logpush: boolean): KvEntry {
  const first = (items[0] as SerializedRecord).record;
  let level = first.level;
  // A batch entry can span invocations: metadata keeps a value only when all its records share it.
  let script = first.scriptName;
  let outcome = first.outcome;
  let eventType: string = first.eventType;
  for (const { record } of items) {
    if (levelRank(record.level) > levelRank(level)) level = record.level;
    if (record.scriptName !== script) script = null;
    if (record.outcome !== outcome) outcome = "mixed";
    if (record.eventType !== eventType) eventType = "mixed";
  }
  const ts = first.eventTimestamp ?? first.timestamp;
  const vars: Record<string, string> = {
    ...dateParts(ts),
    script: keySegment(first.scriptName),
    invocation: first.invocationId,
    id: first.id,
    level,
    outcome: keySegment(first.outcome),
    eventType: first.eventType,
    ts: String(ts),
  };
  const key = fitKey(
    template.replace(/\{([^}]*)\}/g, (_, name: string) => vars[name] ?? ""),
    first.id,
  );
  const value = logpush ? logpushNdjson(items) : ndjson(items);
  return { key, value, metadata: { script, level, outcome, eventType, count: items.length, ts } };
}

export const kvSink = defineSink({
  type: "kv",
  description: "Writes each invocation's records as one NDJSON value in Workers KV, with metadata for list().",
  writesLine: (o) => (o.format === "logpush" ? LOGPUSH_NO_SHAPING : null),
  options: v.strictObject({
    /** Name of the KV namespace binding in wrangler.toml. Required. */
    binding: v.string(),
    /**
     * Key template. Variables: {script} {date} {yyyy} {mm} {dd} {hh} {invocation} {id}
     * {level} {outcome} {eventType} {ts}. Must contain {id}. Default `logs/{date}/{script}/{ts}-{id}`.
     */
    key: v.optional(
      v.pipe(
        v.string(),
        v.check((k) => k.includes("{id}"), "must contain {id} so that entries never overwrite each other"),
        v.check(
          (k) => [...k.matchAll(/\{([^}]*)\}/g)].every((m) => TEMPLATE_VARS.includes(m[1] ?? "")),
          `may only use the variables {${TEMPLATE_VARS.join("} {")}}`,
        ),
      ),
      "logs/{date}/{script}/{ts}-{id}",
    ),
    /**
     * `invocation`: one entry per invocation (easy to look up). `batch`: one entry per batch, the
     * fewest writes (use with buffered delivery at high volume). Default `invocation`.
     */
    per: v.optional(v.picklist(["invocation", "batch"], 'must be "invocation" or "batch"'), "invocation"),
    /**
     * `ndjson` (one record per line) or `logpush` (one line per invocation in the fields of the Logpush
     * `workers_trace_events` dataset). Default `ndjson`.
     */
    format: v.optional(v.picklist(["ndjson", "logpush"], 'must be "ndjson" or "logpush"'), "ndjson"),
    /** Seconds until KV deletes the entry (at least 60). Default: kept forever. */
    ttl: v.optional(v.pipe(v.number(), v.integer(), v.minValue(60, "must be at least 60 seconds (a KV limit)"))),
    maxRecords: maxRecordsOption(1000, Number.POSITIVE_INFINITY),
  }),
  batch: (o) => ({ maxRecords: o.maxRecords, maxBytes: 20 * 1024 * 1024, maxRecordBytes: 25 * 1024 * 1024 - 1 }),
  bindings: (o) => [{ option: "binding", name: o.binding, kind: "kv" }],
  create(o, ctx) {
    const kv = ctx.env[o.binding] as KVNamespace;
    return {
      encode(batch): KvEntry[] {
        return [...groupRecords(batch, o.per).values()].map((items) => kvEntry(items, o.key, o.format === "logpush"));
      },
      async send(entries) {
        try {
          await Promise.all(
            entries.map((e) =>
              kv.put(
                e.key,
                e.value,
                o.ttl === undefined ? { metadata: e.metadata } : { metadata: e.metadata, expirationTtl: o.ttl },
              ),
            ),
          );
          return { outcome: "ok" };
        } catch (err) {
          // KV put errors are rate limits or transient; the same keys are safe to write again.
          return { outcome: "retry", reason: `KV put failed: ${describeError(err)}` };
        }
      },
    };
  },
});
