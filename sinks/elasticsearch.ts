import * as v from "valibot";
import {
  appendPath,
  batchFromOptions,
  batchOptions,
  classifyStatus,
  endpointOption,
  gzipOption,
  itemResults,
  parseJson,
  postPayload,
} from "./shared";
import { defineSink, type SendResult, type SerializedRecord } from "./types";

/** A `_bulk` request body ready to send: action and document line pairs, before optional gzip. */
export interface BulkPayload {
  body: string;
  records: number;
}

/**
 * Elasticsearch index and data stream names: lowercase, none of `\ / * ? " < > | , #`,
 * space or `:`, not starting with `-`, `_` or `+`, not `.` or `..`, at most 255 bytes.
 */
function indexNameProblem(name: string): string | null {
  if (name.length === 0) return "must not be empty";
  if (name !== name.toLowerCase()) return "must be lowercase";
  if (/[\\/*?"<>|,# :]/.test(name)) return 'must not contain \\ / * ? " < > | , # : or spaces';
  if (/^[-_+]/.test(name)) return "must not start with -, _ or +";
  if (name === "." || name === "..") return "must not be . or ..";
  if (new TextEncoder().encode(name).byteLength > 255) return "must be at most 255 bytes";
  return null;
}

/** Base64 of a string's UTF-8 bytes (btoa alone only takes Latin-1). */
function base64Utf8(s: string): string {
  let binary = "";
  for (const b of new TextEncoder().encode(s)) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** The record's time as ISO 8601; epoch 0 when the runtime gave something that is not a time. */
function isoTime(ms: number): string {
  const d = new Date(Number.isFinite(ms) ? ms : 0);
  return Number.isNaN(d.getTime()) ? new Date(0).toISOString() : d.toISOString();
}

/** One item of a `_bulk` response: `{ "<action>": { status, error?: { type, reason } } }`. */
interface BulkItemResult {
  status?: unknown;
  error?: { type?: unknown; reason?: unknown } | unknown;
}

/** Short description of an item's error, for the reason: `type: reason`, at most ~120 characters. */
function itemError(item: BulkItemResult): string {
  const err = item.error;
  if (err && typeof err === "object") {
    const e = err as { type?: unknown; reason?: unknown };
    const text = [e.type, e.reason].filter((x) => typeof x === "string").join(": ");
    if (text) return text.replace(/\s+/g, " ").slice(0, 120);
  }
  return typeof err === "string" ? err.slice(0, 120) : "";
}

/**
 * Reads a `_bulk` response (already parsed JSON) for a batch of `batchLength`
 * records, sent as one action per record in batch order.
 *
 * - `errors` false (or absent): every item was taken → ok.
 * - `errors` true: per item, 2xx is taken; 409 (version conflict on `create`:
 *   the document with that `_id` is already indexed, i.e. a retry of a batch
 *   that had landed) is taken too; 408, 429 and 5xx except 501 are retried;
 *   any other status is refused for good → `partial` with those indices.
 * - `errors` true but `items` missing or of the wrong length: nothing can be
 *   attributed, so the whole batch is retried. That is safe: every action is
 *   a `create` with the record id as `_id`, so what did land answers 409.
 * - A body that is not a bulk response (a proxy's "ok"): the 2xx stands → ok.
 */
export function bulkOutcome(response: unknown, batchLength: number, status = 200): SendResult {
  if (!response || typeof response !== "object") return { outcome: "ok", status };
  const r = response as { errors?: unknown; items?: unknown };
  if (r.errors !== true) return { outcome: "ok", status };
  if (!Array.isArray(r.items) || r.items.length !== batchLength) {
    const got = Array.isArray(r.items) ? `${r.items.length} item(s)` : "no items";
    return {
      outcome: "retry",
      status,
      reason: `bulk response has errors but ${got} for ${batchLength} action(s); retrying the batch`,
    };
  }
  const retry: number[] = [];
  const fail: number[] = [];
  let firstRetry = "";
  let firstFail = "";
  r.items.forEach((raw, i) => {
    // Each item is an object with one key, the action (`create`, `index`, ...).
    const item: BulkItemResult =
      raw && typeof raw === "object" ? ((Object.values(raw as object)[0] as BulkItemResult | undefined) ?? {}) : {};
    const code = typeof item.status === "number" ? item.status : 0;
    if (code === 409) return; // already indexed: a duplicate from a retry
    if (code >= 200 && code < 300) return;
    if (code === 0) {
      // No status: unknown, so retry (a create of a record that landed answers 409 next time).
      retry.push(i);
      if (!firstRetry) firstRetry = `item ${i} without status`;
      return;
    }
    const verdict = classifyStatus(code, null).outcome;
    const what = `${code}${itemError(item) ? ` ${itemError(item)}` : ""}`;
    if (verdict === "retry") {
      retry.push(i);
      if (!firstRetry) firstRetry = what;
    } else {
      fail.push(i);
      if (!firstFail) firstFail = what;
    }
  });
  const parts: string[] = [];
  if (fail.length > 0) parts.push(`${fail.length} refused (first: ${firstFail})`);
  if (retry.length > 0) parts.push(`${retry.length} to retry (first: ${firstRetry})`);
  return itemResults({
    count: batchLength,
    retry,
    fail,
    reason: `bulk: ${parts.join(", ")} of ${batchLength}`,
    status,
  });
}

export interface BulkRequest {
  url: string;
  body: string;
  records: number;
  headers: Record<string, string>;
  gzip: boolean;
}

/**
 * Sends one `_bulk` request and reads the answer: a non-2xx is classified
 * like any HTTP sink (with a short body snippet), a 2xx body is read with
 * `bulkOutcome`. Never throws; `fetcher` is for tests.
 */
export function sendBulk(bulk: BulkRequest, signal: AbortSignal, fetcher: typeof fetch = fetch): Promise<SendResult> {
  const post = { url: bulk.url, body: bulk.body, contentType: "application/x-ndjson", gzip: bulk.gzip, fetcher };
  return postPayload(
    {
      ...post,
      headers: bulk.headers,
      onOk(text, response) {
        // Unreadable: the items are unknown, so the batch is retried; what landed answers 409 next time.
        if (text === null)
          return { outcome: "retry", status: response.status, reason: "could not read the bulk response" };
        return bulkOutcome(parseJson(text), bulk.records, response.status);
      },
    },
    signal,
  );
}

export const elasticsearchSink = defineSink({
  type: "elasticsearch",
  description:
    "Indexes records into Elasticsearch or OpenSearch with the _bulk API (create actions, record id as _id).",
  writesLine: true,
  options: v.pipe(
    v.strictObject({
      /** Base URL of the cluster, e.g. `https://my-deployment.es.us-east-1.aws.elastic.cloud`; `/_bulk` is appended. Required. */
      endpoint: endpointOption.required,
      /** Index, alias or data stream the documents go to. Default `tailfan-logs`. */
      index: v.optional(
        v.pipe(
          v.string(),
          v.rawCheck(({ dataset, addIssue }) => {
            if (!dataset.typed) return;
            const problem = indexNameProblem(dataset.value);
            if (problem) addIssue({ message: problem });
          }),
        ),
        "tailfan-logs",
      ),
      /**
       * `index` names a data stream (e.g. `logs-tailfan-default`, which Elasticsearch's
       * built-in `logs-*-*` template turns into one). Actions are `create` either way;
       * this only checks the name is one a data stream can have. Default `false`.
       */
      dataStream: v.optional(v.boolean(), false),
      /**
       * API key, sent as `Authorization: ApiKey <key>`: the `encoded` value Kibana shows,
       * or `id:api_key` (encoded for you). Default: the secret `ELASTICSEARCH_API_KEY`.
       * Set `""` for basic auth (`username` + `password`) or an open cluster.
       */
      apiKey: v.optional(
        v.pipe(
          v.string(),
          v.check((s) => !/[\r\n]/.test(s), "must not contain line breaks"),
        ),
      ),
      /** User for basic auth; needs `password`. Default none. */
      username: v.optional(
        v.pipe(
          v.string(),
          v.minLength(1, "must not be empty"),
          v.check((s) => !s.includes(":"), "must not contain ':'"),
        ),
      ),
      /** Password for basic auth; reference a secret: `"${ELASTICSEARCH_PASSWORD}"`. Default none. */
      password: v.optional(v.pipe(v.string(), v.minLength(1, "must not be empty"))),
      gzip: gzipOption(true),
      // Elastic suggests bulk requests of a few MB.
      ...batchOptions({ maxRecords: 1000, maxBytes: 5 * 1024 * 1024 }),
    }),
    v.forward(
      v.partialCheck(
        [["username"], ["password"]],
        (o) => (o.username === undefined) === (o.password === undefined),
        "username and password go together: set both for basic auth, or neither",
      ),
      ["password"],
    ),
    v.forward(
      v.partialCheck(
        [["apiKey"], ["username"]],
        (o) => !(o.apiKey && o.username !== undefined),
        "use either apiKey or username and password, not both",
      ),
      ["apiKey"],
    ),
    v.forward(
      v.partialCheck(
        [["index"], ["dataStream"]],
        (o) => !(o.dataStream && o.index.startsWith(".ds-")),
        "a data stream name must not start with .ds-",
      ),
      ["index"],
    ),
  ),
  batch: batchFromOptions(),
  defaultSecrets: { apiKey: "ELASTICSEARCH_API_KEY" },
  create(o) {
    const url = appendPath(o.endpoint, "/_bulk");
    const headers: Record<string, string> = {};
    if (o.apiKey) {
      // Kibana and the create-API-key API give the `encoded` value; `id:api_key` is encoded here.
      headers.authorization = `ApiKey ${o.apiKey.includes(":") ? base64Utf8(o.apiKey) : o.apiKey}`;
    } else if (o.username !== undefined && o.password !== undefined) {
      headers.authorization = `Basic ${base64Utf8(`${o.username}:${o.password}`)}`;
    }
    const index = JSON.stringify(o.index);
    return {
      encode(batch: readonly SerializedRecord[]): BulkPayload {
        let body = "";
        for (const item of batch) {
          // `create` + `_id`: a retried record is refused with 409 instead of indexed twice.
          body += `{"create":{"_index":${index},"_id":${JSON.stringify(item.record.id)}}}\n`;
          // The record's own JSON with `@timestamp` in front (a record line always starts with `{`).
          const rest = item.line.length > 2 ? `,${item.line.slice(1)}` : "}";
          body += `{"@timestamp":${JSON.stringify(isoTime(item.record.timestamp))}${rest}\n`;
        }
        return { body, records: batch.length };
      },
      send(payload, signal) {
        return sendBulk({ url, headers, gzip: o.gzip, body: payload.body, records: payload.records }, signal);
      },
    };
  },
});
