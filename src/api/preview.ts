/**
 * What /routes/test shows: per record where it goes, per sink the first
 * batch as the sink would encode it, cut to a safe, small preview.
 */
import type { ResolvedConfig } from "../config";
import { splitBatches } from "../delivery/batch";
import { normalizeTraceItems } from "../normalize";
import { dropOwnEvents, planDelivery, prepareRecords } from "../pipeline";
import type { LogRecord } from "../record";
import { routeRecord } from "../router";
import { utf8Length } from "../text";
import { explainWhere } from "../where";

/** Characters of a record's message shown by /routes/test. */
const MESSAGE_CHARS = 200;
/** Characters of an encoded body shown in a preview. */
const PREVIEW_CHARS = 2048;

/** Makes a payload safe and small to show: long strings cut, long lists shortened, binary as its size. */
function summarize(value: unknown, depth = 0): unknown {
  if (typeof value === "string") {
    return value.length > 200 ? `${value.slice(0, 200)}… (${value.length} chars)` : value;
  }
  if (value === null || typeof value !== "object") return value;
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return `(${value.byteLength} bytes of binary)`;
  if (depth >= 6) return "(…)";
  if (Array.isArray(value)) {
    const shown = value.slice(0, 3).map((x) => summarize(x, depth + 1));
    if (value.length > 3) shown.push(`(… ${value.length - 3} more)`);
    return shown;
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(value)) out[k] = summarize(x, depth + 1);
  return out;
}

/** The first 2 KB of a body string, with its full size. */
function bodyPreview(body: string) {
  return {
    body: body.length > PREVIEW_CHARS ? body.slice(0, PREVIEW_CHARS) : body,
    bodyBytes: utf8Length(body),
    truncated: body.length > PREVIEW_CHARS,
  };
}

/** What a sink would receive for the first batch of the records routed to it. Encodes only; sends nothing. */
function previewOf(payload: unknown) {
  if (typeof payload === "string") return bodyPreview(payload);
  if (payload !== null && typeof payload === "object" && !Array.isArray(payload)) {
    const { body, ...rest } = payload as Record<string, unknown>;
    if (typeof body === "string") return { ...bodyPreview(body), payload: summarize(rest) };
  }
  return { payload: summarize(payload) };
}

type Bindings = Record<string, unknown>;
type Target = ReturnType<typeof planDelivery>[number];

/** Each `where` of the routes and sinks, leaf by leaf, for one record: which leaf matched, which failed. */
function whereDetail(r: LogRecord, config: ResolvedConfig) {
  const out: { at: string; sink?: string; matched: boolean; leaves: ReturnType<typeof explainWhere>["leaves"] }[] = [];
  for (const [i, route] of (config.routes ?? []).entries()) {
    if (route.filter.where) out.push({ at: `ROUTES[${i}].where`, ...explainWhere(route.filter.where, r) });
  }
  for (const [i, s] of config.sinks.entries()) {
    if (s.filter.where) out.push({ at: `SINKS[${i}].where`, sink: s.name, ...explainWhere(s.filter.where, r) });
  }
  return out;
}

/** Where one record goes, and which routes (by index) matched it. */
function recordDetail(r: LogRecord, config: ResolvedConfig) {
  const sampledOut: string[] = [];
  const sinks = routeRecord(r, config.table, sampledOut);
  const routes = config.routes;
  const where = whereDetail(r, config);
  return {
    id: r.id,
    type: r.type,
    level: r.level,
    message: r.message.length > MESSAGE_CHARS ? r.message.slice(0, MESSAGE_CHARS) : r.message,
    sinks,
    matchedRoutes:
      routes === null ? ("inline filter" as const) : routes.flatMap((route, i) => (route.matches(r) ? [i] : [])),
    dropped: sinks.length === 0,
    ...(sampledOut.length > 0 ? { sampledOut } : {}),
    ...(where.length > 0 ? { where } : {}),
  };
}

/** One sink's share: its records, its batches, and a preview of the first batch encoded. */
function sinkDetail(s: ResolvedConfig["sinks"][number], target: Target | undefined) {
  if (!target) return { sink: s.name, type: s.type, records: 0, batches: 0, oversized: 0, preview: null };
  const { batches, oversized } = splitBatches(target.items, target.batch);
  const first = batches[0];
  let preview: unknown = null;
  if (first) {
    try {
      preview = { records: first.length, ...previewOf(target.sink.encode(first)) };
    } catch (err) {
      preview = { records: first.length, error: `encode failed: ${err instanceof Error ? err.message : String(err)}` };
    }
  }
  return {
    sink: s.name,
    type: s.type,
    records: target.items.length,
    batches: batches.length,
    oversized: oversized.length,
    preview,
  };
}

/** Route detail per record and an encoded preview per sink: the same steps as tail(), up to the send. */
export async function routeTest(items: readonly unknown[], config: ResolvedConfig, env: Bindings) {
  const own = dropOwnEvents(items, config.selfName);
  const { records, views } = await prepareRecords(normalizeTraceItems(own.events), config);
  const detail = records.map((r: LogRecord) => recordDetail(r, config));
  const targets = planDelivery(records, config, env, undefined, views);
  const sinks = config.sinks.map((s) =>
    sinkDetail(
      s,
      targets.find((t) => t.name === s.name),
    ),
  );
  return { droppedLoop: own.dropped, records: detail, sinks };
}
