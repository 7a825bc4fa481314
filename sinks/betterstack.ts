/**
 * Better Stack Telemetry (Logs): `POST https://<ingesting host>`,
 * `Authorization: Bearer <source token>`, NDJSON: one event per line, the record
 * with `dt` (the event time) added.
 */
import * as v from "valibot";
import { headerSafe, httpUrl, postPayload } from "./shared";
import { defineSink, type SerializedRecord } from "./types";

/** An NDJSON body ready to send, before optional gzip. */
export interface BetterStackPayload {
  body: string;
  records: number;
}

/** Better Stack answers 413 above 20 MiB per request; batches stay well under it. */
const BETTERSTACK_MAX_REQUEST_BYTES = 20 * 1024 * 1024;

/** Epoch ms as RFC 3339 UTC with milliseconds; out-of-range times are clamped (toISOString would throw). */
function isoTime(ms: number): string {
  const t = Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 253_402_300_799_999) : 0;
  return new Date(t).toISOString();
}

/** The record's JSON with `field` added first, without re-serializing the record. */
function withLeadingField(line: string, field: string, value: string): string {
  const head = `{${JSON.stringify(field)}:${JSON.stringify(value)}`;
  return line === "{}" ? `${head}}` : `${head},${line.slice(1)}`;
}

export const betterstackSink = defineSink({
  type: "betterstack",
  description: "Sends records to a Better Stack Telemetry source as NDJSON with dt set from the record's timestamp.",
  options: v.pipe(
    v.strictObject({
      /**
       * The source's ingesting host, e.g. `s1234.eu-nbg-2.betterstackdata.com` (Sources → your source →
       * Data ingestion). Required unless `endpoint` is set.
       */
      host: v.optional(
        v.pipe(
          v.string(),
          v.regex(
            /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?$/,
            "must be a host name like s1234.eu-nbg-2.betterstackdata.com, without https:// or a path",
          ),
        ),
      ),
      /** Full ingest URL instead of `https://<host>` (proxies, tests). Default none. */
      endpoint: v.optional(httpUrl),
      /** The source token. Default: the secret `BETTERSTACK_SOURCE_TOKEN`. */
      token: v.pipe(v.string(), v.minLength(1, "must not be empty"), headerSafe),
      /** Gzip the body (`Content-Encoding: gzip`). Default `true`. */
      gzip: v.optional(v.boolean(), true),
      /** Most records per request. Default 1000. */
      maxRecords: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(100_000)), 1000),
      /** Most bytes of record JSON per request, before gzip. Default 5 MiB, at most 10 MiB (the API's limit is 20 MiB). */
      maxBytes: v.optional(
        v.pipe(v.number(), v.integer(), v.minValue(1024), v.maxValue(10 * 1024 * 1024)),
        5 * 1024 * 1024,
      ),
    }),
    v.forward(
      v.check((o) => o.host !== undefined || o.endpoint !== undefined, "is required (or set endpoint)"),
      ["host"],
    ),
    v.forward(
      v.check((o) => o.host === undefined || o.endpoint === undefined, "set host or endpoint, not both"),
      ["endpoint"],
    ),
  ),
  batch: (o) => ({
    maxRecords: o.maxRecords,
    maxBytes: o.maxBytes,
    // One record alone must fit a request, with room for `dt`.
    maxRecordBytes: BETTERSTACK_MAX_REQUEST_BYTES / 2,
  }),
  defaultSecrets: { token: "BETTERSTACK_SOURCE_TOKEN" },
  create(o) {
    const url = o.endpoint ?? `https://${o.host}/`;
    const headers = { authorization: `Bearer ${o.token}` };
    return {
      encode(batch: readonly SerializedRecord[]): BetterStackPayload {
        let body = "";
        for (const item of batch) body += `${withLeadingField(item.line, "dt", isoTime(item.record.timestamp))}\n`;
        return { body, records: batch.length };
      },
      send(payload, signal) {
        return postPayload(
          { url, body: payload.body, contentType: "application/x-ndjson", headers, gzip: o.gzip },
          signal,
        );
      },
    };
  },
});
