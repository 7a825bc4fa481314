import * as v from "valibot";
import { LOGPUSH_NO_SHAPING, logpushNdjson } from "./logpush";
import {
  batchFromOptions,
  dateParts,
  describeError,
  gzip,
  gzipOption,
  keySegment,
  maxBytesOption,
  maxRecordsOption,
  ndjson,
} from "./shared";
import { defineSink, type SerializedRecord } from "./types";

/** One R2 object: a batch of records as NDJSON, gzipped at send time. */
export interface R2Payload {
  key: string;
  body: string;
  customMetadata: Record<string, string>;
}

/**
 * `<prefix>/<yyyy>/<mm>/<dd>[/<hh>]/<name>`: a Logpush-like, date-partitioned
 * object key (UTC). An empty prefix starts the key at the year.
 */
export function datedKey(prefix: string, ms: number, name: string, hour = true): string {
  const { yyyy, mm, dd, hh } = dateParts(ms);
  return `${prefix ? `${prefix}/` : ""}${yyyy}/${mm}/${dd}/${hour ? `${hh}/` : ""}${name}`;
}

/** Puts an NDJSON body into R2, gzipped (`Content-Encoding: gzip`) unless `gzipped` is false. */
export async function putNdjson(
  bucket: R2Bucket,
  key: string,
  body: string,
  customMetadata: Record<string, string>,
  gzipped = true,
): Promise<void> {
  await bucket.put(key, gzipped ? await gzip(body) : body, {
    httpMetadata: gzipped
      ? { contentType: "application/x-ndjson", contentEncoding: "gzip" }
      : { contentType: "application/x-ndjson" },
    customMetadata,
  });
}

export const r2Sink = defineSink({
  type: "r2",
  description: "Archives batches as gzip NDJSON objects under Logpush-like date-partitioned keys in R2.",
  writesLine: (o) => (o.format === "logpush" ? LOGPUSH_NO_SHAPING : null),
  options: v.strictObject({
    /** Name of the R2 bucket binding in wrangler.toml. Required. */
    binding: v.string(),
    /** Key prefix; objects land at `<prefix>/<yyyy>/<mm>/<dd>/<hh>/<unique>.ndjson.gz`. Default `logs`. */
    prefix: v.optional(v.pipe(v.string(), v.regex(/^[^\\]*$/, "must not contain backslashes")), "logs"),
    /**
     * `ndjson` (one record per line) or `logpush` (one line per invocation in the fields of the Logpush
     * `workers_trace_events` dataset). Default `ndjson`.
     */
    format: v.optional(v.picklist(["ndjson", "logpush"], 'must be "ndjson" or "logpush"'), "ndjson"),
    /** Gzip objects (`.ndjson.gz`, `Content-Encoding: gzip`). Default `true`. */
    gzip: gzipOption(true),
    // An object has no size limit that matters here: no upper bounds. The defaults make a full buffered
    // queue() batch (the shipped max_batch_size of 20 work messages of at most 512 KiB of records) one
    // object: 10 MiB, and a record count that only very small records reach first.
    maxRecords: maxRecordsOption(100_000, Number.POSITIVE_INFINITY),
    maxBytes: maxBytesOption(10 * 1024 * 1024, Number.POSITIVE_INFINITY),
  }),
  batch: batchFromOptions(),
  bindings: (o) => [{ option: "binding", name: o.binding, kind: "r2" }],
  create(o, ctx) {
    const bucket = ctx.env[o.binding] as R2Bucket;
    const prefix = o.prefix.replace(/\/+$/, "");
    return {
      encode(batch): R2Payload {
        let start = Number.POSITIVE_INFINITY;
        let end = Number.NEGATIVE_INFINITY;
        const scripts = new Set<string>();
        for (const { record } of batch) {
          if (record.timestamp < start) start = record.timestamp;
          if (record.timestamp > end) end = record.timestamp;
          scripts.add(keySegment(record.scriptName));
        }
        if (!Number.isFinite(start)) start = end = 0;
        const first = (batch[0] as SerializedRecord | undefined)?.record.id ?? "empty";
        // Like Logpush: <start>_<end>_<id of the first record>, unique per batch and sortable by time.
        const unique = `${start}_${end}_${first}`;
        const ext = o.gzip ? "ndjson.gz" : "ndjson";
        return {
          key: datedKey(prefix, start, `${unique}.${ext}`),
          body: o.format === "logpush" ? logpushNdjson(batch) : ndjson(batch),
          customMetadata: {
            count: String(batch.length),
            start: String(start),
            end: String(end),
            scripts: [...scripts].sort().join(",").slice(0, 512),
          },
        };
      },
      async send(payload) {
        try {
          await putNdjson(bucket, payload.key, payload.body, payload.customMetadata, o.gzip);
          return { outcome: "ok" };
        } catch (err) {
          return { outcome: "retry", reason: `R2 put failed: ${describeError(err)}` };
        }
      },
    };
  },
});
