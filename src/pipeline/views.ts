/**
 * Stage 4, scrub and per-sink views: the global SCRUB over the normalized
 * records, and the other views sinks asked for (unredacted, or scrubbed by
 * their own `scrub` option).
 */
import type { ResolvedConfig } from "../config";
import { toJson } from "../json";
import type { Json, LogRecord } from "../record";
import { type Scrubber, scrubRecords } from "../scrub";

/** The scrubbed records every sink sees, and the views of the sinks that see them otherwise. */
export interface PreparedRecords {
  records: readonly LogRecord[];
  views: Map<string, readonly LogRecord[]> | undefined;
}

/**
 * The records as an `unredacted: true` sink sees them: the URL and request
 * headers from the runtime's `getUnredacted()`, where the runtime offers it
 * (live TraceItems; a replayed JSON capture has nothing more to give).
 */
export function unredactRecords(records: readonly LogRecord[]): readonly LogRecord[] {
  const byInvocation = new Map<string, { url: unknown; request: unknown }>();
  for (const r of records) {
    if (r.type !== "invocation" || r.eventType !== "fetch") continue;
    try {
      const request = (r.event as { request?: { getUnredacted?: () => { url?: unknown } } } | null)?.request;
      if (typeof request?.getUnredacted !== "function") continue;
      const open = request.getUnredacted();
      byInvocation.set(r.invocationId, { url: open.url, request: toJson(open) });
    } catch {
      // A runtime that refuses keeps the redacted view.
    }
  }
  if (byInvocation.size === 0) return records;
  return records.map((r) => {
    const open = byInvocation.get(r.invocationId);
    if (!open) return r;
    const copy = { ...r, ...(typeof open.url === "string" ? { url: open.url } : {}) } as LogRecord;
    if (copy.type === "invocation" && r.type === "invocation") {
      copy.event = { ...(toJson(r.event) as object), request: open.request } as Json;
    }
    return copy;
  });
}

const scrub = async (records: readonly LogRecord[], scrubber: Scrubber | null) =>
  scrubber === null ? records : (await scrubRecords(records, scrubber)).records;

/**
 * Scrubs the records (global SCRUB) and builds the other views sinks asked
 * for. Every view starts from the normalized records, so a sink's own
 * scrubbing replaces the global one instead of adding to it.
 */
export async function prepareRecords(
  normalized: readonly LogRecord[],
  config: ResolvedConfig,
): Promise<PreparedRecords> {
  const records = await scrub(normalized, config.scrubber);
  let views: Map<string, readonly LogRecord[]> | undefined;
  let open: readonly LogRecord[] | undefined;
  const shared = new Map<string, readonly LogRecord[]>();
  for (const sink of config.sinks) {
    if (!sink.unredacted && sink.scrubber === undefined) continue;
    const scrubber = sink.scrubber === undefined ? config.scrubber : sink.scrubber;
    // Sinks with the same view share it, so it is serialized once.
    const key = `${sink.unredacted}|${sink.scrubber === undefined ? "global" : sink.name}`;
    let view = shared.get(key);
    if (!view) {
      if (sink.unredacted && open === undefined) open = unredactRecords(normalized);
      const source = sink.unredacted && open !== undefined ? open : normalized;
      view = sink.unredacted || scrubber !== config.scrubber ? await scrub(source, scrubber) : records;
      shared.set(key, view);
    }
    views ??= new Map();
    views.set(sink.name, view);
  }
  return { records, views };
}
