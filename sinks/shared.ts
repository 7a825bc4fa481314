/**
 * The building blocks sink types share: option schemas (endpoint, headers,
 * gzip, batch limits, credentials), HTTP sending and classification,
 * Retry-After, per-item results, gzip, NDJSON, key parts.
 */
import * as v from "valibot";
import { utf8Length } from "../src/text";
import type { BatchLimits, SendResult, SerializedRecord, Sink } from "./types";

export { cutText, utf8Length } from "../src/text";

/** Control characters (tab excepted) would break or smuggle headers. */
export function hasControlCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

/** A string safe in a header value: keys, tokens, tenants. */
export const headerSafe = v.check(
  (s: string) => !hasControlCharacter(s),
  "must not contain control characters or line breaks",
);

/**
 * A key, token or tenant sent in a header: not empty, no line breaks. A
 * credential's default is the sink's `defaultSecrets` entry, so it need never
 * be written in the config.
 */
export const credentialOption = v.pipe(v.string(), v.minLength(1, "must not be empty"), headerSafe);

/**
 * The one URL option of every sink (endpoints, webhooks): an absolute
 * http(s) URL. A bare URL check would let `ftp:`, `javascript:` or `mailto:`
 * through; the scheme is checked too. `what` names the URL in the message.
 */
export function urlOption(what?: string) {
  return v.pipe(v.string(), v.check(isHttpUrl, `must be an absolute http(s) URL${what ? ` (${what})` : ""}`));
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === "http:" || u.protocol === "https:") && u.host !== "" && /^https?:\/\//i.test(s);
  } catch {
    return false;
  }
}

/** An absolute http(s) URL: endpoints. */
export const httpUrl = urlOption();

/**
 * The `endpoint` option of a sink: an absolute http(s) URL. `required` when the
 * sink has no home of its own (a self-hosted backend), `optional` when the sink
 * derives it from other options (site, region, DSN), `withDefault(url)` when the
 * vendor has one API base URL.
 */
export const endpointOption = {
  required: httpUrl,
  optional: v.optional(httpUrl),
  withDefault: (url: string) => v.optional(httpUrl, url),
};

/** The endpoint with `path` appended to its path; a query string stays at the end. */
export function appendPath(endpoint: string, path: string): string {
  const u = new URL(endpoint);
  u.pathname = `${u.pathname.replace(/\/+$/, "")}${path}`;
  return u.toString();
}

/** A 2xx answer's body as JSON; undefined when it could not be read or is not JSON. */
export function parseJson(text: string | null): unknown {
  if (text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Gzip the body (`Content-Encoding: gzip`); the default is the sink's, `true` wherever the vendor accepts it. */
export function gzipOption(byDefault: boolean) {
  return v.optional(v.boolean(), byDefault);
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Extra request headers; values may reference secrets as `${NAME}`. Default none (`{}`). */
export const headersOption = v.optional(
  v.record(
    v.pipe(v.string(), v.regex(HEADER_NAME, "must be a valid HTTP header name")),
    v.pipe(v.string(), headerSafe),
  ),
  {},
);

/** Upper bounds of the batch options where a sink does not set its own (a vendor's documented limit). */
export const BATCH_MOST = { maxRecords: 100_000, maxBytes: 100 * 1024 * 1024 } as const;

/** `maxRecords`: most records per payload, from 1 to `most`. */
export function maxRecordsOption(byDefault: number, most: number = BATCH_MOST.maxRecords) {
  return v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(most)), byDefault);
}

/** `maxBytes`: most bytes of record JSON per payload, before encoding and gzip, from 1 KiB to `most`. */
export function maxBytesOption(byDefault: number, most: number = BATCH_MOST.maxBytes) {
  return v.optional(v.pipe(v.number(), v.integer(), v.minValue(1024), v.maxValue(most)), byDefault);
}

/**
 * The batch options of a sink: its defaults and, where the vendor sets one,
 * its upper bounds. Spread into the options schema.
 */
export function batchOptions(
  byDefault: { maxRecords: number; maxBytes: number },
  most: { maxRecords?: number; maxBytes?: number } = {},
) {
  return {
    /** Most records per payload. */
    maxRecords: maxRecordsOption(byDefault.maxRecords, most.maxRecords),
    /** Most bytes of record JSON per payload, before encoding and gzip. */
    maxBytes: maxBytesOption(byDefault.maxBytes, most.maxBytes),
  };
}

/**
 * The `batch` of a sink whose limits are its `batchOptions`, with the largest
 * single record the vendor takes when it has such a limit.
 */
export function batchFromOptions(maxRecordBytes?: number) {
  return (o: { maxRecords: number; maxBytes: number }): BatchLimits =>
    maxRecordBytes === undefined
      ? { maxRecords: o.maxRecords, maxBytes: o.maxBytes }
      : { maxRecords: o.maxRecords, maxBytes: o.maxBytes, maxRecordBytes };
}

/** What a backend answered for each item of one payload, by index into the batch. */
export interface ItemAnswers {
  /** How many records the payload holds. */
  count: number;
  /** Indices worth another attempt. */
  retry: readonly number[];
  /** Indices refused for good. */
  fail: readonly number[];
  /** Why, when some were not taken. */
  reason: string;
  status?: number | undefined;
  retryAfterMs?: number | undefined;
  /** The answer to give as is when every record is to be retried, or every one refused (one request's own answer). */
  whole?: { retry?: SendResult | undefined; fail?: SendResult | undefined };
}

/**
 * The one way a sink turns per-item answers (a 2xx whose body refuses some
 * records, or a batch sent as several requests) into a SendResult: nothing
 * refused is `ok`, every record to retry is `retry`, every one refused is
 * `fail`, anything between is `partial`.
 */
export function itemResults(a: ItemAnswers): SendResult {
  const withStatus = (r: SendResult): SendResult => {
    if (a.status !== undefined) r.status = a.status;
    return r;
  };
  if (a.retry.length === 0 && a.fail.length === 0) return withStatus({ outcome: "ok" });
  if (a.retry.length === a.count) return a.whole?.retry ?? withStatus({ outcome: "retry", reason: a.reason });
  if (a.fail.length === a.count) return a.whole?.fail ?? withStatus({ outcome: "fail", reason: a.reason });
  const partial = withStatus({ outcome: "partial", retry: a.retry, fail: a.fail, reason: a.reason });
  if (a.retryAfterMs !== undefined && partial.outcome === "partial") partial.retryAfterMs = a.retryAfterMs;
  return partial;
}

/** Epoch ms as RFC 3339 UTC with milliseconds; out-of-range times are clamped (toISOString would throw). */
export function isoTime(ms: number): string {
  const t = Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 253_402_300_799_999) : 0;
  return new Date(t).toISOString();
}

/** The record's JSON with `field` added first, without re-serializing the record. */
export function withLeadingField(line: string, field: string, value: string): string {
  const head = `{${JSON.stringify(field)}:${JSON.stringify(value)}`;
  return line === "{}" ? `${head}}` : `${head},${line.slice(1)}`;
}

/** NDJSON of the records, each with its timestamp as RFC 3339 in `field` first (Axiom's `_time`, Better Stack's `dt`). */
export function ndjsonWithTime(batch: readonly SerializedRecord[], field: string): string {
  let body = "";
  for (const item of batch) body += `${withLeadingField(item.line, field, isoTime(item.record.timestamp))}\n`;
  return body;
}

/** Joins record lines as NDJSON (one object per line, trailing newline). */
export function ndjson(batch: readonly SerializedRecord[]): string {
  let out = "";
  for (const item of batch) out += `${item.line}\n`;
  return out;
}

/** Joins record lines as one JSON array. */
export function jsonArray(batch: readonly SerializedRecord[]): string {
  let out = "[";
  for (let i = 0; i < batch.length; i++) {
    if (i > 0) out += ",";
    out += (batch[i] as SerializedRecord).line;
  }
  return `${out}]`;
}

/**
 * Writes the bytes to a CompressionStream in one chunk, not piped from a
 * Blob's stream: a pipe is a second stream and a pump per body, about a third
 * of a small body's gzip.
 */
async function compress(input: Uint8Array): Promise<Uint8Array> {
  const cs = new CompressionStream("gzip");
  const writer = cs.writable.getWriter();
  // Their failures reach the reader below; these promises only settle with it.
  writer.write(input).catch(() => {});
  writer.close().catch(() => {});
  return new Uint8Array(await new Response(cs.readable).arrayBuffer());
}

/** Bodies up to this size are remembered, so that the same body is gzipped once. */
const GZIP_MEMO_CHARS = 1024 * 1024;

/**
 * The last text body gzipped: the sinks of one invocation often send the same
 * NDJSON (an R2 archive and an http collector), and a CompressionStream costs
 * far more than comparing the text.
 */
let lastGzip: { text: string; bytes: Promise<Uint8Array> } | null = null;

/**
 * Gzips a body with the runtime's CompressionStream. A text body equal to the
 * one gzipped last is not compressed again; every caller gets its own copy of
 * the bytes, as a request or put may take its body's buffer.
 */
export async function gzip(body: string | Uint8Array): Promise<Uint8Array> {
  if (typeof body !== "string") return compress(body);
  if (body.length > GZIP_MEMO_CHARS) return compress(new TextEncoder().encode(body));
  const last = lastGzip;
  if (last !== null && last.text === body) return (await last.bytes).slice();
  const bytes = compress(new TextEncoder().encode(body));
  const memo = { text: body, bytes };
  lastGzip = memo;
  try {
    return (await bytes).slice();
  } catch (err) {
    if (lastGzip === memo) lastGzip = null;
    throw err;
  }
}

/**
 * Parses `Retry-After` (delta seconds or an HTTP date) into milliseconds from
 * `now`; undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * Classifies an HTTP response: 2xx ok; 408, 429 and 5xx except 501 retry;
 * any other status fails for good.
 */
export function classifyStatus(status: number, retryAfter: string | null, detail = ""): SendResult {
  if (status >= 200 && status < 300) return { outcome: "ok", status };
  const suffix = detail ? `: ${detail}` : "";
  if (status === 408 || status === 429 || (status >= 500 && status !== 501)) {
    const result: SendResult = { outcome: "retry", status, reason: `HTTP ${status}${suffix}` };
    const after = parseRetryAfter(retryAfter);
    if (after !== undefined) result.retryAfterMs = after;
    return result;
  }
  return { outcome: "fail", status, reason: `HTTP ${status}${suffix}` };
}

/** Describes a thrown error in one line, naming timeouts as such. */
export function describeError(err: unknown, signal?: AbortSignal): string {
  if (signal?.aborted) {
    const reason = signal.reason;
    if (reason instanceof Error && reason.name === "TimeoutError") return "timed out";
    return "aborted";
  }
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/**
 * Reads a 2xx answer's body to decide what it means (an Elasticsearch bulk
 * answer's items, Honeycomb's per-event statuses, OTLP's partialSuccess).
 * `body` is null when the body could not be read.
 */
export type OkReader = (body: string | null, response: Response) => SendResult;

/**
 * Sends one HTTP request and classifies the answer; a network error or
 * timeout is `retry`. Reads at most a short snippet of an error body; a 2xx
 * body is drained, or handed to `onOk` when given.
 */
export async function sendHttp(
  request: Request,
  signal: AbortSignal,
  fetcher: typeof fetch = fetch,
  onOk?: OkReader,
): Promise<SendResult> {
  // workerd cannot catch the rejection of a fetch started with an aborted signal.
  if (signal.aborted) return { outcome: "retry", reason: `network error: ${describeError(signal.reason, signal)}` };
  let response: Response;
  try {
    response = await fetcher(request, { signal });
  } catch (err) {
    return { outcome: "retry", reason: `network error: ${describeError(err, signal)}` };
  }
  const ok = response.status >= 200 && response.status < 300;
  if (ok && onOk) {
    let body: string | null;
    try {
      body = await response.text();
    } catch {
      body = null;
    }
    return onOk(body, response);
  }
  let detail = "";
  if (!ok) {
    try {
      detail = (await response.text()).slice(0, 200).replace(/\s+/g, " ").trim();
    } catch {
      detail = "";
    }
  } else {
    // Drain the body so the connection is released.
    await response.body?.cancel().catch(() => {});
  }
  return classifyStatus(response.status, response.headers.get("retry-after"), detail);
}

export interface HttpPost {
  url: string;
  body: string;
  contentType: string;
  /** Extra headers (auth, tenant, ...). */
  headers?: Record<string, string>;
  /** Gzip the body and send `Content-Encoding: gzip`. */
  gzip?: boolean;
  /** With `gzip`: bodies of fewer UTF-8 bytes than this are sent as they are (default 0: every body is gzipped). */
  gzipMinBytes?: number;
  method?: string;
  /** Reads a 2xx answer's body; without it any 2xx is `ok`. */
  onOk?: OkReader;
  /** The fetch to use (tests). */
  fetcher?: typeof fetch;
}

/** Whether a body is smaller than `minBytes` of UTF-8, measured only when its length cannot tell. */
export function belowBytes(body: string, minBytes: number | undefined): boolean {
  if (minBytes === undefined || minBytes <= 0 || body.length >= minBytes) return false;
  return body.length * 3 < minBytes || utf8Length(body) < minBytes;
}

/**
 * The one way sinks POST a payload: builds the request (gzip with
 * CompressionStream when asked, for bodies of at least `gzipMinBytes`), sends
 * it, classifies the answer. Never throws.
 */
export async function postPayload(post: HttpPost, signal: AbortSignal): Promise<SendResult> {
  let request: Request;
  try {
    const headers = new Headers(post.headers);
    headers.set("content-type", post.contentType);
    let body: string | Uint8Array = post.body;
    if (post.gzip && !belowBytes(post.body, post.gzipMinBytes)) {
      body = await gzip(post.body);
      headers.set("content-encoding", "gzip");
    }
    request = new Request(post.url, { method: post.method ?? "POST", headers, body });
  } catch (err) {
    return { outcome: "fail", reason: `could not build the request: ${describeError(err)}` };
  }
  return sendHttp(request, signal, post.fetcher, post.onOk);
}

const pad2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/** UTC date parts of an epoch-ms time, for object keys. */
export function dateParts(ms: number): { yyyy: string; mm: string; dd: string; hh: string; date: string } {
  const d = new Date(Number.isFinite(ms) ? ms : 0);
  const yyyy = String(d.getUTCFullYear());
  const mm = pad2(d.getUTCMonth() + 1);
  const dd = pad2(d.getUTCDate());
  const hh = pad2(d.getUTCHours());
  return { yyyy, mm, dd, hh, date: `${yyyy}-${mm}-${dd}` };
}

/**
 * Keeps a key segment safe for KV and R2 keys: no slashes or control
 * characters from user data, and valid UTF-8 whatever the input (a lone
 * surrogate becomes U+FFFD, the cut never splits a pair), since the store
 * refuses a key it cannot encode and with it the whole batch.
 */
export function keySegment(value: string | null | undefined, fallback = "unknown"): string {
  if (!value) return fallback;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point.
  let segment = value.replace(/[\u0000-\u001f\u007f/\\]+/g, "_").slice(0, 128);
  const last = segment.charCodeAt(segment.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) segment = segment.slice(0, -1);
  segment = segment.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
  return segment === "." || segment === ".." ? "_" : segment;
}

/** Cuts a string to at most `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(s: string, maxBytes: number): string {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const pair = c >= 0xd800 && c <= 0xdbff && i + 1 < s.length;
    const size = c < 0x80 ? 1 : c < 0x800 ? 2 : pair ? 4 : 3;
    if (bytes + size > maxBytes) return s.slice(0, i);
    bytes += size;
    if (pair) i++;
  }
  return s;
}

/** One request body for a batch, before optional gzip, and how many records it holds. */
export interface BodyPayload {
  body: string;
  records: number;
}

/** How a sink that sends one request per batch posts it. */
export interface BodyPost {
  url: string;
  contentType: string;
  gzip: boolean;
  /** With `gzip`: smaller bodies are sent as they are. */
  gzipMinBytes?: number;
  /** Auth, tenant, ... */
  headers?: Record<string, string>;
  /** Reads a 2xx answer, knowing the payload it answers (per-event statuses, partial success). */
  onOk?: (payload: BodyPayload) => OkReader;
}

/**
 * The sink of a backend that takes one HTTP request per batch: `body` is the
 * vendor's mapping of the batch, the rest is posted like every other sink.
 */
export function bodySink(body: (batch: readonly SerializedRecord[]) => string, post: BodyPost): Sink<BodyPayload> {
  const { onOk, ...request } = post;
  return {
    encode: (batch) => ({ body: body(batch), records: batch.length }),
    send(payload, signal) {
      const reader = onOk ? { onOk: onOk(payload) } : {};
      return postPayload({ ...request, ...reader, body: payload.body }, signal);
    },
  };
}
