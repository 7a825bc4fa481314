/**
 * Axiom: `POST https://api.axiom.co/v1/datasets/<dataset>/ingest` (or an edge
 * deployment's `https://<edge>/v1/ingest/<dataset>`), `Authorization: Bearer <token>`,
 * NDJSON: one event per line, the record with `_time` added.
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
  hasControlCharacter,
  ndjsonWithTime,
} from "./shared";
import { defineSink } from "./types";

/** An NDJSON body ready to send, before optional gzip. */
export type AxiomPayload = BodyPayload;

/** Axiom's system-wide ingest limits: 1 MB per event, 10,000 events per batch. */
const AXIOM_MAX_EVENT_BYTES = 1_000_000;
const AXIOM_MAX_EVENTS = 10_000;
/** Room for the `"_time":"...",` that encode adds to each record. */
const TIME_FIELD_BYTES = 40;

/** The ingest URL for an endpoint (its path and query kept) and a dataset. */
export function ingestUrl(endpoint: string, dataset: string): string {
  const url = new URL(endpoint);
  const path = url.pathname.replace(/\/+$/, "");
  const name = encodeURIComponent(dataset);
  // Edge deployments (us-east-1.aws.edge.axiom.co, eu-central-1.aws.edge.axiom.co) use /v1/ingest/<dataset>.
  url.pathname = url.hostname.endsWith(".edge.axiom.co")
    ? `${path}/v1/ingest/${name}`
    : `${path}/v1/datasets/${name}/ingest`;
  return url.toString();
}

export const axiomSink = defineSink({
  type: "axiom",
  description: "Sends records to an Axiom dataset as NDJSON with _time set from the record's timestamp.",
  writesLine: true,
  options: v.strictObject({
    /** The dataset to ingest into. Required. */
    dataset: v.pipe(
      v.string(),
      v.minLength(1, "must not be empty"),
      v.maxLength(128, "must be at most 128 characters"),
      v.check((s) => !s.includes("/") && !hasControlCharacter(s), "must not contain slashes or control characters"),
    ),
    /** API token with ingest permission. Default: the secret `AXIOM_TOKEN`. */
    token: credentialOption,
    /**
     * API base URL. Default `https://api.axiom.co`. For an edge deployment give its domain, e.g.
     * `https://eu-central-1.aws.edge.axiom.co` (the path becomes `/v1/ingest/<dataset>`).
     */
    endpoint: endpointOption.withDefault("https://api.axiom.co"),
    gzip: gzipOption(true),
    // Axiom takes at most 10,000 events per request.
    ...batchOptions(
      { maxRecords: 1000, maxBytes: 5 * 1024 * 1024 },
      { maxRecords: AXIOM_MAX_EVENTS, maxBytes: 50 * 1024 * 1024 },
    ),
  }),
  batch: batchFromOptions(AXIOM_MAX_EVENT_BYTES - TIME_FIELD_BYTES),
  defaultSecrets: { token: "AXIOM_TOKEN" },
  create(o) {
    return bodySink((batch) => ndjsonWithTime(batch, "_time"), {
      url: ingestUrl(o.endpoint, o.dataset),
      contentType: "application/x-ndjson",
      headers: { authorization: `Bearer ${o.token}` },
      gzip: o.gzip,
    });
  },
});
