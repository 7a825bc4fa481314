/**
 * Better Stack Telemetry (Logs): `POST https://<ingesting host>`,
 * `Authorization: Bearer <source token>`, NDJSON: one event per line, the record
 * with `dt` (the event time) added.
 */
import * as v from "valibot";
import {
  type BodyPayload,
  batchFromOptions,
  batchOptions,
  bodySink,
  credentialOption,
  endpointOption,
  gzipOption,
  ndjsonWithTime,
} from "./shared";
import { defineSink } from "./types";

/** An NDJSON body ready to send, before optional gzip. */
export type BetterStackPayload = BodyPayload;

/** Better Stack answers 413 above 20 MiB per request; batches stay well under it. */
const BETTERSTACK_MAX_REQUEST_BYTES = 20 * 1024 * 1024;

export const betterstackSink = defineSink({
  type: "betterstack",
  description: "Sends records to a Better Stack Telemetry source as NDJSON with dt set from the record's timestamp.",
  writesLine: true,
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
      endpoint: endpointOption.optional,
      /** The source token. Default: the secret `BETTERSTACK_SOURCE_TOKEN`. */
      token: credentialOption,
      gzip: gzipOption(true),
      // At most 10 MiB of records: the API's limit is 20 MiB per request.
      ...batchOptions({ maxRecords: 1000, maxBytes: 5 * 1024 * 1024 }, { maxBytes: 10 * 1024 * 1024 }),
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
  // One record alone must fit a request, with room for `dt`.
  batch: batchFromOptions(BETTERSTACK_MAX_REQUEST_BYTES / 2),
  defaultSecrets: { token: "BETTERSTACK_SOURCE_TOKEN" },
  create(o) {
    return bodySink((batch) => ndjsonWithTime(batch, "dt"), {
      url: o.endpoint ?? `https://${o.host}/`,
      contentType: "application/x-ndjson",
      headers: { authorization: `Bearer ${o.token}` },
      gzip: o.gzip,
    });
  },
});
