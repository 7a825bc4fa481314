/**
 * Honeycomb Events API: `POST https://api.honeycomb.io/1/batch/<dataset>`,
 * `X-Honeycomb-Team: <key>`, body `[{"time": RFC 3339, "data": {...record}}]`.
 * The answer to a batch is 200 with one `{"status": 202}` (or an error status)
 * per event, in order; events refused that way become a `partial` result.
 */
import * as v from "valibot";
import {
  appendPath,
  type BodyPayload,
  batchFromOptions,
  batchOptions,
  bodySink,
  classifyStatus,
  credentialOption,
  endpointOption,
  gzipOption,
  hasControlCharacter,
  isoTime,
  itemResults,
  parseJson,
} from "./shared";
import { defineSink, type SendResult, type SerializedRecord } from "./types";

/** A batch body ready to send, before optional gzip. */
export type HoneycombPayload = BodyPayload;

/** The batch as Honeycomb events: each record is the `data` of one, with its time. */
function batchBody(batch: readonly SerializedRecord[]): string {
  let body = "[";
  batch.forEach((item, i) => {
    body += `${i > 0 ? "," : ""}{"time":"${isoTime(item.record.timestamp)}","data":${item.line}}`;
  });
  return `${body}]`;
}

/**
 * Honeycomb's limits: an event at most 1 MB (older libhoney versions used 100 KB),
 * a batch request at most 5 MB (libhoney's apiMaxBatchSize): see the maxBytes option.
 */
const HONEYCOMB_MAX_EVENT_BYTES = 1_000_000;
/** Room for `{"time":"...","data":}` around each record. */
const WRAPPER_BYTES = 48;

/**
 * Reads Honeycomb's per-event answer to a batch of `count` events: ok when every
 * event got 202; otherwise the indices to retry (408, 429, 5xx but 501) and to
 * drop (any other status). An answer that is not such an array says nothing about
 * single events, so the 2xx of the request stands.
 */
export function batchResult(answer: unknown, count: number, status: number): SendResult {
  if (!Array.isArray(answer) || answer.length !== count) return { outcome: "ok", status };
  const retry: number[] = [];
  const fail: number[] = [];
  const reasons = new Map<string, number>();
  answer.forEach((entry, i) => {
    const s = typeof entry === "object" && entry !== null ? (entry as { status?: unknown }).status : undefined;
    if (typeof s !== "number" || (s >= 200 && s < 300)) return;
    const verdict = classifyStatus(s, null);
    if (verdict.outcome === "retry") retry.push(i);
    else fail.push(i);
    const error = (entry as { error?: unknown }).error;
    const why = `${s}${typeof error === "string" && error ? ` ${error.slice(0, 100)}` : ""}`;
    reasons.set(why, (reasons.get(why) ?? 0) + 1);
  });
  const summary = [...reasons].map(([why, n]) => `${n}× ${why}`).join("; ");
  const reason = `Honeycomb refused ${retry.length + fail.length} of ${count} event(s): ${summary}`.slice(0, 300);
  return itemResults({ count, retry, fail, reason, status });
}

export const honeycombSink = defineSink({
  type: "honeycomb",
  description: "Sends records to a Honeycomb dataset through the batch Events API, one event per record.",
  writesLine: true,
  options: v.strictObject({
    /** The dataset (case-insensitive on Honeycomb's side). Required. */
    dataset: v.pipe(
      v.string(),
      v.minLength(1, "must not be empty"),
      v.check((s) => !s.includes("/") && !hasControlCharacter(s), "must not contain slashes or control characters"),
    ),
    /** Ingest API key, sent as `X-Honeycomb-Team`. Default: the secret `HONEYCOMB_API_KEY`. */
    apiKey: credentialOption,
    /** API base URL. Default `https://api.honeycomb.io`; EU: `https://api.eu1.honeycomb.io`. */
    endpoint: endpointOption.withDefault("https://api.honeycomb.io"),
    gzip: gzipOption(true),
    // At most 4.5 MB of records: with the `time`/`data` wrapper of up to 10,000 events a request stays under 5 MB.
    ...batchOptions({ maxRecords: 1000, maxBytes: 4 * 1024 * 1024 }, { maxRecords: 10_000, maxBytes: 4_500_000 }),
  }),
  batch: batchFromOptions(HONEYCOMB_MAX_EVENT_BYTES - WRAPPER_BYTES),
  defaultSecrets: { apiKey: "HONEYCOMB_API_KEY" },
  create(o) {
    return bodySink(batchBody, {
      url: appendPath(o.endpoint, `/1/batch/${encodeURIComponent(o.dataset)}`),
      contentType: "application/json",
      headers: { "x-honeycomb-team": o.apiKey },
      gzip: o.gzip,
      // The 2xx answer says, per event, which were taken.
      onOk: (payload) => (text, response) => {
        const answer = parseJson(text);
        // Unreadable: taken (2xx), and nothing says an event was refused.
        if (answer === undefined) return { outcome: "ok", status: response.status };
        return batchResult(answer, payload.records, response.status);
      },
    });
  },
});
