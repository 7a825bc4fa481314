/**
 * Helpers for vendor sinks whose requests have hard size limits (datadog,
 * splunk, newrelic): entries are packed into as many bodies as the vendor's
 * per-request limits need, and sent one after the other.
 */
import { utf8Length } from "../src/text";
import { itemResults, truncateUtf8 } from "./shared";
import type { SendResult } from "./types";

/** One encoded entry (one record) and its exact UTF-8 size. */
export interface Entry {
  text: string;
  bytes: number;
}

/** One request body and the positions `[first, first + count)` of its records in the batch. */
export interface Body {
  body: string;
  first: number;
  count: number;
}

/** A payload of one or more request bodies (more only when one would break the vendor's limits). */
export interface MultiPayload {
  bodies: Body[];
  records: number;
}

/** How entries are framed into one body: `open + e1 + sep + e2 + ... + close`. */
export interface Frame {
  open: string;
  sep: string;
  close: string;
}

/**
 * `s` as a JSON string literal of at most `maxBytes` UTF-8 bytes, cut (at a
 * character boundary) when needed; null when not even `""` fits.
 */
export function jsonStringWithin(s: string, maxBytes: number): string | null {
  if (maxBytes < 2) return null;
  let budget = maxBytes - 2;
  let cut = truncateUtf8(s, budget);
  let json = JSON.stringify(cut);
  let size = utf8Length(json);
  while (size > maxBytes) {
    // Escapes made it longer than the raw text: shrink in proportion and try again.
    budget = Math.floor((budget * maxBytes) / size) - 1;
    cut = truncateUtf8(cut, Math.max(0, budget));
    json = JSON.stringify(cut);
    size = utf8Length(json);
  }
  return json;
}

/**
 * Packs entries, in order, into bodies of at most `maxEntries` entries and
 * `maxBytes` bytes (UTF-8, framing included). An entry that alone exceeds
 * `maxBytes` goes in a body of its own.
 */
export function packBodies(
  entries: readonly Entry[],
  limits: { maxEntries: number; maxBytes: number },
  frame: Frame,
): Body[] {
  const frameBytes = utf8Length(frame.open) + utf8Length(frame.close);
  const sepBytes = utf8Length(frame.sep);
  const bodies: Body[] = [];
  let parts: string[] = [];
  let first = 0;
  let bytes = frameBytes;
  const flush = (next: number) => {
    if (parts.length > 0)
      bodies.push({ body: frame.open + parts.join(frame.sep) + frame.close, first, count: parts.length });
    parts = [];
    first = next;
    bytes = frameBytes;
  };
  entries.forEach((entry, i) => {
    const add = entry.bytes + (parts.length > 0 ? sepBytes : 0);
    if (parts.length > 0 && (parts.length >= limits.maxEntries || bytes + add > limits.maxBytes)) flush(i);
    bytes += entry.bytes + (parts.length > 0 ? sepBytes : 0);
    parts.push(entry.text);
  });
  flush(entries.length);
  return bodies;
}

/**
 * Sends the bodies one after the other. One body: its result as is. Several:
 * when one fails, the records of the bodies already sent count as delivered
 * (`partial`), those of the failed body are retried or refused as its answer
 * says, and those of the bodies not yet sent are retried.
 */
export async function sendBodies(
  payload: MultiPayload,
  post: (body: string) => Promise<SendResult>,
): Promise<SendResult> {
  const { bodies } = payload;
  let last: SendResult = { outcome: "ok" };
  for (let k = 0; k < bodies.length; k++) {
    const b = bodies[k] as Body;
    const result = await post(b.body);
    if (result.outcome === "ok") {
      last = result;
      continue;
    }
    if (bodies.length === 1 || (k === 0 && result.outcome === "retry")) return result;
    const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
    const here = range(b.first, b.first + b.count);
    const later = range(b.first + b.count, payload.records);
    const failed = result.outcome === "fail";
    return itemResults({
      count: payload.records,
      retry: failed ? later : [...here, ...later],
      fail: failed ? here : [],
      reason: `request ${k + 1} of ${bodies.length}: ${result.reason}`,
      status: result.status,
      retryAfterMs: result.outcome === "retry" ? result.retryAfterMs : undefined,
    });
  }
  return last;
}
