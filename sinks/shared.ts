/** Helpers shared by sink types: option schemas, HTTP classification, Retry-After, gzip, NDJSON, key parts. */
import * as v from "valibot";
import type { SendResult, SerializedRecord } from "./types";

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

/** Gzips a body with the runtime's CompressionStream. */
export async function gzip(body: string | Uint8Array): Promise<Uint8Array> {
  const input = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const stream = new Blob([input]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
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
  method?: string;
  /** Reads a 2xx answer's body; without it any 2xx is `ok`. */
  onOk?: OkReader;
  /** The fetch to use (tests). */
  fetcher?: typeof fetch;
}

/**
 * The one way sinks POST a payload: builds the request (gzip with
 * CompressionStream when asked), sends it, classifies the answer. Never throws.
 */
export async function postPayload(post: HttpPost, signal: AbortSignal): Promise<SendResult> {
  let request: Request;
  try {
    const headers = new Headers(post.headers);
    headers.set("content-type", post.contentType);
    let body: string | Uint8Array = post.body;
    if (post.gzip) {
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
