/**
 * Sentry: every `exception` record becomes one Sentry error event, sent as
 * one envelope (`POST <host>/api/<projectId>/envelope/`) per event;
 * `console.*` lines of the same invocation in the same batch ride along as
 * the event's breadcrumbs. Other records are not errors in Sentry's sense:
 * the sink does not take them (`droppedFilter`).
 *
 * Envelope format: https://develop.sentry.dev/sdk/data-model/envelopes/
 * Event payload: https://develop.sentry.dev/sdk/data-model/event-payloads/
 */
import * as v from "valibot";
import type { ExceptionRecord, LogRecord } from "../src/record";
import { VERSION } from "../src/version";
import {
  cutText as cut,
  endpointOption,
  gzipOption,
  itemResults,
  maxRecordsOption,
  postPayload,
  utf8Length,
} from "./shared";
import { defineSink, type SendResult, type SerializedRecord } from "./types";

/** The parts of a DSN (`https://<publicKey>@<host>[/<path>]/<projectId>`) the sink needs. */
export interface SentryDsn {
  publicKey: string;
  /** `https:` or `http:` (self-hosted). */
  protocol: string;
  /** Host and optional port. */
  host: string;
  /** Path before the project id, for Sentry served under a sub-path; "" normally. */
  pathPrefix: string;
  projectId: string;
}

/** Parses a Sentry DSN; undefined when it is not one. */
export function parseDsn(dsn: string): SentryDsn | undefined {
  let url: URL;
  try {
    url = new URL(dsn);
  } catch {
    return undefined;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return undefined;
  if (url.username === "" || url.host === "") return undefined;
  const segments = url.pathname.split("/").filter(Boolean);
  const projectId = segments.pop();
  if (projectId === undefined || !/^\d+$/.test(projectId)) return undefined;
  return {
    publicKey: decodeURIComponent(url.username),
    protocol: url.protocol,
    host: url.host,
    pathPrefix: segments.length > 0 ? `/${segments.join("/")}` : "",
    projectId,
  };
}

/** The envelope endpoint a DSN points at: `https://<host>/api/<projectId>/envelope/`. */
export function envelopeEndpoint(dsn: SentryDsn): string {
  return `${dsn.protocol}//${dsn.host}${dsn.pathPrefix}/api/${dsn.projectId}/envelope/`;
}

// Sentry's rules for environment and release names:
// https://docs.sentry.io/product/sentry-basics/environments/ (no newlines, spaces or slashes, not "None", 64 chars)
// https://docs.sentry.io/product/releases/ (no newlines, tabs, slashes or backslashes, not "." / ".." / " ", 200 chars)
const validEnvironment = (s: string) => /^[^\s/]{1,64}$/.test(s) && s !== "None";
const validRelease = (s: string) => /^[^\n\r\t/\\]{1,200}$/.test(s) && s !== "." && s !== ".." && s.trim() !== "";

export const sentrySink = defineSink({
  type: "sentry",
  description: "Sends each exception record to Sentry as an error event (one envelope per event).",
  options: v.strictObject({
    /**
     * The project's DSN (Project Settings → Client Keys): `https://<publicKey>@<host>/<projectId>`.
     * Default: the secret `SENTRY_DSN`.
     */
    dsn: v.pipe(
      v.string(),
      v.check(
        (s) => parseDsn(s) !== undefined,
        "must be a Sentry DSN like https://<publicKey>@o0.ingest.sentry.io/<projectId> (Project Settings → Client Keys)",
      ),
    ),
    /** Envelope URL, overriding the one derived from the DSN (`https://<host>/api/<projectId>/envelope/`). Default: derived. */
    endpoint: endpointOption.optional,
    /** Sentry `environment` of every event (e.g. `production`). Default: none (Sentry shows `production`). */
    environment: v.optional(
      v.pipe(
        v.string(),
        v.check(validEnvironment, "must be 1 to 64 characters without spaces, line breaks or slashes, and not None"),
      ),
    ),
    /** Sentry `release` of every event. Default: the record's `scriptVersion.id`, else its `scriptVersion.tag`. */
    release: v.optional(
      v.pipe(
        v.string(),
        v.check(validRelease, "must be 1 to 200 characters without line breaks, tabs or slashes, and not . or .."),
      ),
    ),
    gzip: gzipOption(true),
    // Each exception in a batch is one request, sent one after the other inside the per-attempt
    // timeout, so the default is moderate.
    maxRecords: maxRecordsOption(100, 1000),
  }),
  // Each event is bounded by the truncation below (well under Sentry's 1 MB per event), so no record limit.
  batch: (o) => ({ maxRecords: o.maxRecords, maxBytes: 1024 * 1024 }),
  takes: sentryTakes,
  defaultSecrets: { dsn: "SENTRY_DSN" },
  create(o) {
    const dsn = parseDsn(o.dsn) as SentryDsn;
    const url = o.endpoint ?? envelopeEndpoint(dsn);
    const auth = `Sentry sentry_version=7, sentry_key=${dsn.publicKey}, sentry_client=tailfan/${VERSION}`;
    return {
      encode(batch): SentryPayload {
        return encodeSentry(batch, { environment: o.environment, release: o.release });
      },
      async send(payload, signal) {
        return sendEnvelopes(payload, (env) =>
          postPayload(
            {
              url,
              body: envelopeBody(env, o.dsn, new Date().toISOString()),
              contentType: "application/x-sentry-envelope",
              headers: { "x-sentry-auth": auth },
              gzip: o.gzip,
            },
            signal,
          ),
        );
      },
    };
  },
});

/** One event, ready to send but for the envelope header (whose `sent_at` is the time of sending). */
export interface SentryEnvelope {
  /** Index of the exception record in the batch. */
  index: number;
  eventId: string;
  /** The item header line, the event JSON and a trailing newline. */
  items: string;
}

export interface SentryPayload {
  envelopes: SentryEnvelope[];
  /** Records in the batch, exceptions or not. */
  records: number;
}

/** The full envelope body: header line `{event_id, sent_at, dsn, sdk}` then the items. */
export function envelopeBody(envelope: SentryEnvelope, dsn: string, sentAt: string): string {
  const header = { event_id: envelope.eventId, sent_at: sentAt, dsn, sdk: { name: "tailfan", version: VERSION } };
  return `${JSON.stringify(header)}\n${envelope.items}`;
}

/**
 * Posts the envelopes one after the other. After a retryable answer (429, 5xx,
 * network) the rest are not tried in this attempt; each refused one is
 * reported by its record index, so the core retries only those.
 */
export async function sendEnvelopes(
  payload: SentryPayload,
  post: (envelope: SentryEnvelope) => Promise<SendResult>,
): Promise<SendResult> {
  const retry: number[] = [];
  const fail: number[] = [];
  let retried: (SendResult & { outcome: "retry" }) | undefined;
  let failed: (SendResult & { outcome: "fail" }) | undefined;
  let status: number | undefined;
  for (const envelope of payload.envelopes) {
    if (retried !== undefined) {
      retry.push(envelope.index);
      continue;
    }
    const result = await post(envelope);
    if (result.status !== undefined) status = result.status;
    if (result.outcome === "retry") {
      retried = result;
      retry.push(envelope.index);
    } else if (result.outcome === "fail") {
      failed = result;
      fail.push(envelope.index);
    }
  }
  const parts: string[] = [];
  if (retried) parts.push(`${retry.length} event(s) to retry: ${retried.reason}`);
  if (failed) parts.push(`${fail.length} event(s) refused: ${failed.reason}`);
  // When some were refused, the status is that of the refusal, not of the last request.
  const refused = retried ?? failed;
  return itemResults({
    count: payload.records,
    retry,
    fail,
    reason: parts.join("; "),
    status: refused ? refused.status : status,
    retryAfterMs: retried?.retryAfterMs,
    whole: { retry: retried, fail: failed },
  });
}

interface EncodeOptions {
  environment?: string | undefined;
  release?: string | undefined;
}

const MAX_VALUE = 8192; // Sentry trims exception values and messages at 8 KiB anyway.
const MAX_FRAMES = 100;
const MAX_BREADCRUMBS = 100; // The JS SDKs' default maxBreadcrumbs.
const MAX_TAG_VALUE = 200; // Sentry tag values: at most 200 characters, no line breaks.

/** Pure: the same batch gives the same envelopes (event ids derive from record ids). */
/** Sentry's default filter: exception records, and the log lines of their invocations (breadcrumbs). */
export function sentryTakes(records: readonly LogRecord[]): (record: LogRecord) => boolean {
  const failing = new Set<string>();
  for (const r of records) if (r.type === "exception") failing.add(r.invocationId);
  return (r) => r.type === "exception" || (r.type === "log" && failing.has(r.invocationId));
}

export function encodeSentry(batch: readonly SerializedRecord[], o: EncodeOptions): SentryPayload {
  // console.* lines per invocation, for breadcrumbs.
  const logs = new Map<string, LogRecord[]>();
  for (const item of batch) {
    const r = item.record;
    if (r.type !== "log") continue;
    const list = logs.get(r.invocationId);
    if (list) list.push(r);
    else logs.set(r.invocationId, [r]);
  }
  const envelopes: SentryEnvelope[] = [];
  batch.forEach((item, index) => {
    const r = item.record;
    if (r.type !== "exception") return;
    const event = sentryEvent(r, o, logs.get(r.invocationId) ?? []);
    const json = JSON.stringify(event);
    const itemHeader = JSON.stringify({ type: "event", length: utf8Length(json), content_type: "application/json" });
    envelopes.push({ index, eventId: event.event_id, items: `${itemHeader}\n${json}\n` });
  });
  return { envelopes, records: batch.length };
}

export interface SentryFrame {
  function?: string;
  filename?: string;
  abs_path?: string;
  lineno?: number;
  colno?: number;
  in_app: boolean;
}

/**
 * Parses a V8 stack (`    at fn (file:line:col)`, `    at file:line:col`,
 * `    at async fn (...)`, `    at new C (...)`) into Sentry frames, oldest
 * call first as Sentry wants them. Lines that are not frames are skipped.
 */
export function parseStack(stack: string | undefined): SentryFrame[] {
  if (!stack) return [];
  const frames: SentryFrame[] = [];
  for (const line of stack.split("\n")) {
    const m = /^\s*at (?:async )?(.*)$/.exec(line);
    if (!m) continue;
    const rest = (m[1] as string).trim();
    let fn: string | undefined;
    let location = rest;
    const withFn = /^(.*?) \((.*)\)$/.exec(rest);
    if (withFn) {
      fn = withFn[1] as string;
      location = withFn[2] as string;
    }
    const frame: SentryFrame = { in_app: true };
    if (fn) frame.function = fn;
    const loc = /^(.*?):(\d+)(?::(\d+))?$/.exec(location);
    if (loc) {
      frame.filename = loc[1] as string;
      frame.lineno = Number(loc[2]);
      if (loc[3] !== undefined) frame.colno = Number(loc[3]);
    } else if (location) {
      frame.filename = location; // native, <anonymous>, ...
    }
    if (frame.filename !== undefined) {
      frame.abs_path = frame.filename;
      frame.in_app = !/^(node:|native$|<anonymous>$|internal[:/])|\/node_modules\//.test(frame.filename);
    }
    frames.push(frame);
  }
  // V8 lists the innermost call first; keep the innermost MAX_FRAMES, oldest first.
  return frames.slice(0, MAX_FRAMES).reverse();
}

/** A 32-hex UUIDv4-shaped id derived from `key` (cyrb128), so a retry of the same record is the same event. */
export function eventIdFor(key: string): string {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < key.length; i++) {
    const k = key.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  const hex = [h1, h2, h3, h4].map((h) => (h >>> 0).toString(16).padStart(8, "0")).join("");
  const variant = ((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 12)}4${hex.slice(13, 16)}${variant}${hex.slice(17)}`;
}

const BREADCRUMB_LEVEL: Record<string, string> = {
  debug: "debug",
  info: "info",
  log: "info",
  warn: "warning",
  error: "error",
};

function tagValue(s: string): string {
  return cut(s.replace(/[\r\n]+/g, " "), MAX_TAG_VALUE);
}

function urlHost(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).host || undefined;
  } catch {
    return undefined;
  }
}

/** The release a record belongs to: its version id (what `@sentry/cloudflare` uses), else its tag. */
function recordRelease(r: LogRecord): string | undefined {
  for (const candidate of [r.scriptVersion?.id, r.scriptVersion?.tag]) {
    if (typeof candidate === "string" && validRelease(candidate)) return candidate;
  }
  return undefined;
}

/** Searchable tags of an event: low-cardinality facts about the invocation. */
function eventTags(r: ExceptionRecord): Record<string, string> {
  const tags: Record<string, string> = { outcome: tagValue(r.outcome), eventType: r.eventType };
  if (r.scriptName) tags.script = tagValue(r.scriptName);
  const host = urlHost(r.url);
  if (host) tags["url.host"] = tagValue(host);
  if (r.status !== undefined) tags.status = String(r.status);
  if (r.colo) tags.colo = tagValue(r.colo);
  if (r.entrypoint) tags.entrypoint = tagValue(r.entrypoint);
  return tags;
}

/** The rest of the record, shown on the event but not searchable. */
function eventExtra(r: ExceptionRecord): Record<string, unknown> {
  const extra: Record<string, unknown> = {
    invocationId: r.invocationId,
    recordId: r.id,
    cpuTime: r.cpuTime,
    wallTime: r.wallTime,
  };
  if (r.scriptVersion) extra.scriptVersion = r.scriptVersion;
  if (r.dispatchNamespace) extra.dispatchNamespace = r.dispatchNamespace;
  if (r.durableObjectId) extra.durableObjectId = r.durableObjectId;
  if (r.cron !== undefined) extra.cron = r.cron;
  if (r.queue !== undefined) extra.queue = r.queue;
  if (r.rpcMethod !== undefined) extra.rpcMethod = r.rpcMethod;
  if (r.truncated) extra.truncated = true;
  return extra;
}

/** The invocation's logs up to the exception, the last few, as console breadcrumbs. */
function breadcrumbs(r: ExceptionRecord, logs: readonly LogRecord[]) {
  return logs
    .filter((l) => l.timestamp <= r.timestamp)
    .slice(-MAX_BREADCRUMBS)
    .map((l) => ({
      timestamp: l.timestamp / 1000,
      type: "default",
      category: "console",
      level: BREADCRUMB_LEVEL[l.level] ?? "info",
      message: cut(l.message, 1024),
    }));
}

/** The Sentry event for one exception record. */
export function sentryEvent(r: ExceptionRecord, o: EncodeOptions, logs: readonly LogRecord[]) {
  const frames = parseStack(r.stack);
  const value: Record<string, unknown> = {
    type: r.exceptionName || "Error",
    value: cut(r.message, MAX_VALUE),
    mechanism: { type: "cloudflare_tail", handled: false },
  };
  // Sentry refuses a stacktrace with no frames.
  if (frames.length > 0) value.stacktrace = { frames };

  const event = {
    event_id: eventIdFor(r.id),
    timestamp: r.timestamp / 1000,
    platform: "javascript",
    level: "error",
    logger: "tailfan",
    exception: { values: [value] },
    tags: eventTags(r),
    extra: eventExtra(r),
    sdk: { name: "tailfan", version: VERSION },
  } as {
    event_id: string;
    release?: string;
    environment?: string;
    request?: { url?: string; method?: string };
    breadcrumbs?: { values: unknown[] };
    server_name?: string;
    [key: string]: unknown;
  };
  const release = o.release ?? recordRelease(r);
  if (release) event.release = release;
  if (o.environment) event.environment = o.environment;
  if (r.scriptName) event.server_name = r.scriptName;
  if (r.url !== undefined || r.method !== undefined) {
    event.request = {};
    if (r.url !== undefined) event.request.url = r.url;
    if (r.method !== undefined) event.request.method = r.method;
  }
  const crumbs = breadcrumbs(r, logs);
  if (crumbs.length > 0) event.breadcrumbs = { values: crumbs };
  return event;
}
