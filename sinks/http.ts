import * as v from "valibot";
import { LOGPUSH_NO_SHAPING, logpushNdjson } from "./logpush";
import {
  batchFromOptions,
  batchOptions,
  gzipOption,
  headersOption,
  httpUrl,
  jsonArray,
  ndjson,
  postPayload,
} from "./shared";
import { defineSink } from "./types";

/** A request body ready to send: the encoded records, before optional gzip. */
export interface HttpPayload {
  body: string;
  contentType: string;
  records: number;
}

export const httpSink = defineSink({
  type: "http",
  description: "POSTs batches of records to any HTTP endpoint as a JSON array or NDJSON.",
  writesLine: (o) => (o.format === "logpush" ? LOGPUSH_NO_SHAPING : null),
  options: v.strictObject({
    /** Endpoint the batches are sent to. Required. */
    url: httpUrl,
    /** HTTP method. Default `POST`. */
    method: v.optional(v.picklist(["POST", "PUT"]), "POST"),
    headers: headersOption,
    /**
     * `json` (one array per request), `ndjson` (one record per line), or `logpush` (NDJSON, one line per
     * invocation in the fields of the Logpush `workers_trace_events` dataset). Default `json`.
     */
    format: v.optional(v.picklist(["json", "ndjson", "logpush"]), "json"),
    // Off by default: an arbitrary endpoint may not accept gzip.
    gzip: gzipOption(false),
    ...batchOptions({ maxRecords: 1000, maxBytes: 1024 * 1024 }),
  }),
  batch: batchFromOptions(),
  create(o) {
    return {
      encode(batch): HttpPayload {
        if (o.format === "logpush") {
          return { body: logpushNdjson(batch), contentType: "application/x-ndjson", records: batch.length };
        }
        return o.format === "ndjson"
          ? { body: ndjson(batch), contentType: "application/x-ndjson", records: batch.length }
          : { body: jsonArray(batch), contentType: "application/json", records: batch.length };
      },
      send(payload, signal) {
        const post = { url: o.url, method: o.method, headers: o.headers, gzip: o.gzip };
        return postPayload({ ...post, body: payload.body, contentType: payload.contentType }, signal);
      },
    };
  },
});
