import * as v from "valibot";
import { headerSafe, httpUrl, jsonArray, ndjson, postPayload } from "./shared";
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
  options: v.strictObject({
    /** Endpoint the batches are sent to. Required. */
    url: httpUrl,
    /** HTTP method. Default `POST`. */
    method: v.optional(v.picklist(["POST", "PUT"]), "POST"),
    /** Extra request headers; values may reference secrets as `${NAME}`. Default none. */
    headers: v.optional(
      v.record(
        v.pipe(v.string(), v.regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "must be a valid HTTP header name")),
        v.pipe(v.string(), headerSafe),
      ),
      {},
    ),
    /** `json` (one array per request) or `ndjson` (one record per line). Default `json`. */
    format: v.optional(v.picklist(["json", "ndjson"]), "json"),
    /** Gzip the body and send `Content-Encoding: gzip`. Default `false`. */
    gzip: v.optional(v.boolean(), false),
    /** Most records per request. Default 1000. */
    maxRecords: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(100_000)), 1000),
    /** Most bytes of record JSON per request, before gzip. Default 1 MiB. */
    maxBytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1024), v.maxValue(100 * 1024 * 1024)), 1024 * 1024),
  }),
  batch: (o) => ({ maxRecords: o.maxRecords, maxBytes: o.maxBytes }),
  create(o) {
    return {
      encode(batch): HttpPayload {
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
