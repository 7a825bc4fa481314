/**
 * Alert rules for the slack, discord and webhook sinks: records are grouped
 * by a fingerprint (by default the exception name, the message with its
 * numbers and ids masked, and the script), and one Durable Object per rule
 * (the sink's name) decides what is posted: the first occurrence at once,
 * then at most one update per group per window with the count, or, in the
 * threshold form, one message when a group passes N records in M minutes;
 * and a resolved message once a group has been quiet for a window.
 *
 * This side (in every isolate) only groups and counts. An isolate sums its
 * groups' counts for `flushMs` and makes one call to the object with them,
 * so the object is written per group per flush, never per record. As in the
 * counters flush (src/stats/flush.ts), the send that opens a window waits on
 * its own timer and makes the call; the others add their counts and watch
 * the window with timers of their own, never awaiting another request's
 * promise; if that call failed or has not answered in time, they make their
 * own.
 */
import * as v from "valibot";
import { type Level, type LogRecord, levelRank } from "../src/record";
import { maskVariable } from "../src/text";
import { type AlertStyle, alertTime, alertTitle } from "./alerts";
import { cutText, describeError } from "./shared";
import type { BindingRef, SendResult, SerializedRecord, Sink, SinkContext } from "./types";

/** Record fields a rule can group by. `message` is masked: numbers and ids do not split a group. */
export const GROUP_FIELDS = [
  "exception.name",
  "message",
  "scriptName",
  "level",
  "type",
  "outcome",
  "eventType",
] as const;
export type GroupField = (typeof GROUP_FIELDS)[number];

export const DEFAULT_GROUP_BY: GroupField[] = ["exception.name", "message", "scriptName"];

/** The Durable Object binding (class TailfanAlerts) that keeps the rules' state. */
export const DEFAULT_ALERTS_BINDING = "TAILFAN_ALERTS";

const minutes = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1440));

/** The `rules` option: alert rules instead of one message per batch. */
export const rulesSchema = v.strictObject({
  /** The fields that make a group's fingerprint. Default `["exception.name","message","scriptName"]`. */
  groupBy: v.optional(
    v.pipe(v.array(v.picklist(GROUP_FIELDS)), v.minLength(1, "must name at least one field")),
    DEFAULT_GROUP_BY,
  ),
  /** At most one update per group per this many minutes; a group quiet for as long is resolved. Default 10. */
  windowMinutes: v.optional(minutes, 10),
  /** Threshold form: post only when a group has more than `count` records in `minutes` minutes. Default none. */
  threshold: v.optional(
    v.strictObject({
      count: v.pipe(v.number(), v.integer(), v.minValue(1)),
      minutes,
    }),
  ),
  /** Durable Object binding (class `TailfanAlerts`) that keeps the groups. Default `TAILFAN_ALERTS`. */
  binding: v.optional(v.pipe(v.string(), v.minLength(1)), DEFAULT_ALERTS_BINDING),
  /** Most groups the rule keeps; records of further groups are counted in one group "other errors". Default 100. */
  maxGroups: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1000)), 100),
  /** How long an isolate sums its counts before one call to the object (0: each batch calls). Default 1000. */
  flushMs: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(2000)), 1000),
});
export type RuleOptions = v.InferOutput<typeof rulesSchema>;

/** The binding a sink's rules name, for the config check. */
export function ruleBindings(rules: RuleOptions | undefined): BindingRef[] {
  return rules ? [{ option: "rules.binding", name: rules.binding, kind: "durable_object" }] : [];
}

/** One group's records in one batch (or one isolate's window). */
export interface GroupDelta {
  /** A short hash of the group's key. */
  fingerprint: string;
  /** The grouped fields' values (message masked). */
  key: Partial<Record<GroupField, string>>;
  /** The first record's message, unmasked: what the messages show. */
  sample: string;
  /** The first record's script. */
  script: string;
  /** The highest level among the records. */
  level: Level;
  count: number;
  /** Record timestamps, epoch ms. */
  firstSeen: number;
  lastSeen: number;
}

/** What posts a rule's messages: the sink type and where it posts. */
export interface AlertTarget {
  type: string;
  url: string;
  headers?: Record<string, string>;
}

/** A rule as the object applies it. */
export interface RuleSettings {
  /** The sink's name. */
  rule: string;
  windowMinutes: number;
  threshold?: { count: number; minutes: number } | undefined;
  maxGroups: number;
}

/** One message the object posts about a group. */
export interface AlertEvent {
  /** `new`: first occurrence; `update`: the count of a window; `threshold`: passed N in M minutes; `resolved`: quiet for a window. */
  kind: "new" | "update" | "threshold" | "resolved";
  rule: string;
  fingerprint: string;
  key: Partial<Record<GroupField, string>>;
  sample: string;
  script: string;
  level: Level;
  /** new: records so far; update: records in the window; threshold: records in its minutes; resolved: records since first seen. */
  count: number;
  /** The minutes `count` is over (new: 0; resolved: the quiet window). */
  minutes: number;
  /** Records since the group was first seen (since it was last resolved). */
  total: number;
  firstSeen: number;
  lastSeen: number;
  threshold?: { count: number; minutes: number } | undefined;
}

/** What the object answered to one call. */
export interface AddResult {
  rowsWritten: number;
}

/** The object's side of a call, as a stub sees it. */
export interface AlertsStub {
  add(target: AlertTarget, rule: RuleSettings, deltas: GroupDelta[]): Promise<AddResult>;
}

/** One line of text: line breaks and runs of spaces folded. */
const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();

function fieldValue(r: LogRecord, field: GroupField): string {
  switch (field) {
    case "exception.name":
      return r.type === "exception" ? r.exceptionName || "Error" : "";
    case "message":
      return maskVariable(oneLine(r.message)).slice(0, 500);
    case "scriptName":
      return r.scriptName ?? "";
    case "level":
      return r.level;
    case "type":
      return r.type;
    case "outcome":
      return r.outcome;
    case "eventType":
      return r.eventType;
  }
}

/** A 53-bit string hash (cyrb53) as 14 hex digits: short, stable, and well spread. */
export function hashKey(s: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16).padStart(14, "0");
}

/** A record's group: its key and fingerprint. */
export function fingerprintOf(
  r: LogRecord,
  groupBy: readonly GroupField[],
): { fingerprint: string; key: GroupDelta["key"] } {
  const key: GroupDelta["key"] = {};
  for (const f of groupBy) key[f] = fieldValue(r, f);
  return { fingerprint: hashKey(JSON.stringify(groupBy.map((f) => key[f]))), key };
}

const rank = (l: Level) => levelRank(l) ?? 0;

/** Adds `d` into `into` (same fingerprint): counts summed, first and last seen widened, first sample kept. */
export function mergeDelta(into: GroupDelta, d: GroupDelta): void {
  if (d.firstSeen < into.firstSeen) {
    into.firstSeen = d.firstSeen;
    into.sample = d.sample;
    into.script = d.script;
  }
  into.lastSeen = Math.max(into.lastSeen, d.lastSeen);
  into.count += d.count;
  if (rank(d.level) > rank(into.level)) into.level = d.level;
}

/** The records' groups, in order of first appearance. */
export function groupRecords(records: readonly LogRecord[], groupBy: readonly GroupField[]): GroupDelta[] {
  const groups = new Map<string, GroupDelta>();
  for (const r of records) {
    const { fingerprint, key } = fingerprintOf(r, groupBy);
    const ts = Number.isFinite(r.timestamp) ? r.timestamp : 0;
    const d: GroupDelta = {
      fingerprint,
      key,
      sample: cutText(oneLine(alertTitle(r)), 1000),
      script: r.scriptName ?? "unknown script",
      level: r.level,
      count: 1,
      firstSeen: ts,
      lastSeen: ts,
    };
    const seen = groups.get(fingerprint);
    if (seen) mergeDelta(seen, d);
    else groups.set(fingerprint, d);
  }
  return [...groups.values()];
}

// --- Messages ---

/** 1284 → `1,284`. */
export function formatCount(n: number): string {
  return String(Math.trunc(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

const NOUN: Record<Level, [string, string]> = {
  error: ["error", "errors"],
  warn: ["warning", "warnings"],
  info: ["record", "records"],
  log: ["record", "records"],
  debug: ["record", "records"],
};
const noun = (level: Level, n: number) => (NOUN[level] ?? ["record", "records"])[n === 1 ? 0 : 1];
const times = (n: number) => `${formatCount(n)} ${n === 1 ? "time" : "times"}`;
const ICON: Record<Level, string> = { error: "🔴", warn: "🟠", info: "🔵", log: "🔵", debug: "⚪" };

/**
 * The chat text of an event, within `style.limit`:
 *
 *     🔴 *shop-api*: TypeError: x is undefined
 *     new · first seen 2025-03-14 15:09:26 UTC
 *
 *     🔴 TypeError: x is undefined — 1,284 times in shop-api in the last 10 min
 *     🔴 More than 50 errors in 5 min in shop-api: 57 in the last 5 min
 *     ✅ Resolved: TypeError: x is undefined in shop-api — quiet for 10 min, 1,285 times since 2025-03-14 15:09:26 UTC
 */
export function renderEvent(e: AlertEvent, style: AlertStyle): string {
  const icon = ICON[e.level] ?? "🔴";
  const sample = style.escape(cutText(e.sample, 1000));
  const script = style.escape(cutText(e.script, 100));
  let text: string;
  switch (e.kind) {
    case "new": {
      const more = e.count > 1 ? ` · ${times(e.count)} so far` : "";
      text = `${icon} ${style.bold(script)}: ${sample}\nnew · first seen ${alertTime(e.firstSeen)}${more}`;
      break;
    }
    case "update":
      text = `${icon} ${sample} — ${times(e.count)} in ${script} in the last ${e.minutes} min`;
      break;
    case "threshold": {
      const t = e.threshold ?? { count: 0, minutes: e.minutes };
      const head = `More than ${formatCount(t.count)} ${noun(e.level, t.count)} in ${t.minutes} min in ${script}`;
      text = `${icon} ${style.bold(head)}: ${formatCount(e.count)} in the last ${e.minutes} min\n${sample}`;
      break;
    }
    case "resolved":
      text = `✅ Resolved: ${sample} in ${script} — quiet for ${e.minutes} min, ${times(e.total)} since ${alertTime(e.firstSeen)}`;
      break;
  }
  return cutText(text, style.limit);
}

/** Epoch ms as RFC 3339 (clamped to what toISOString takes). */
const iso = (ms: number) =>
  new Date(Math.min(Math.max(Number.isFinite(ms) ? ms : 0, 0), 253_402_300_799_999)).toISOString();

/** The webhook sink's JSON body for an event (docs/sinks.md, `webhook`). */
export function webhookEvent(e: AlertEvent): Record<string, unknown> {
  const body: Record<string, unknown> = {
    type: "tailfan.alert",
    event: e.kind,
    rule: e.rule,
    fingerprint: e.fingerprint,
    group: e.key,
    message: e.sample,
    script: e.script,
    level: e.level,
    count: e.count,
    windowMinutes: e.minutes,
    total: e.total,
    firstSeen: iso(e.firstSeen),
    lastSeen: iso(e.lastSeen),
  };
  if (e.threshold) body.threshold = e.threshold;
  return body;
}

// --- Sending: one call to the object per isolate per flushMs ---

/** A rule sink's payload: the batch's groups. */
export interface RulePayload {
  deltas: GroupDelta[];
  /** How many records the groups hold. */
  records: number;
}

/** How long a call to the object may take before it is given up. */
export const ALERTS_TIMEOUT_MS = 2_500;
const WATCH_MS = 25;

interface Window {
  deltas: Map<string, GroupDelta>;
  /** When the opener makes its call. */
  flushAt: number;
  /** The call's answer, once it has one. */
  result: SendResult | null;
}

/** Open windows, per binding and rule. */
const windows = new Map<string, Window>();
/**
 * Per payload: its latest attempt. A retry of the same payload (the core's
 * attempt timeout) first waits for that one, so a call that landed is not
 * counted twice.
 */
const attempts = new WeakMap<RulePayload, Promise<SendResult>>();

/** What this isolate's calls to the alert objects cost; the tests read it. */
export const alertCallCost = { calls: 0, rowsWritten: 0 };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function copy(d: GroupDelta): GroupDelta {
  return { ...d, key: { ...d.key } };
}

/** A sink posting through alert rules: `type` is its channel in the object. */
export function ruleSink(
  rules: RuleOptions,
  target: AlertTarget,
  ctx: SinkContext,
  pick: (batch: readonly SerializedRecord[]) => LogRecord[],
): Sink<RulePayload> {
  const settings: RuleSettings = {
    rule: ctx.name,
    windowMinutes: rules.windowMinutes,
    threshold: rules.threshold,
    maxGroups: rules.maxGroups,
  };
  const windowKey = `${rules.binding}\n${ctx.name}`;

  const call = async (deltas: GroupDelta[]): Promise<SendResult> => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    try {
      const ns = ctx.env[rules.binding] as DurableObjectNamespace | undefined;
      if (!ns || typeof ns.idFromName !== "function")
        return { outcome: "fail", reason: `no Durable Object binding "${rules.binding}" for the alert rules` };
      const stub = ns.get(ns.idFromName(ctx.name)) as unknown as AlertsStub;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the alert object did not answer within ${ALERTS_TIMEOUT_MS} ms`)),
          ALERTS_TIMEOUT_MS,
        );
      });
      const answer = await Promise.race([stub.add(target, settings, deltas), late]);
      alertCallCost.calls++;
      alertCallCost.rowsWritten += answer.rowsWritten;
      return { outcome: "ok" };
    } catch (err) {
      return { outcome: "retry", reason: `alert rules ${rules.binding}: ${describeError(err)}` };
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  };

  const send = async (payload: RulePayload): Promise<SendResult> => {
    if (payload.deltas.length === 0) return { outcome: "ok" };
    if (rules.flushMs <= 0) return call(payload.deltas);
    const open = windows.get(windowKey);
    if (open) {
      for (const d of payload.deltas) {
        const seen = open.deltas.get(d.fingerprint);
        if (seen) mergeDelta(seen, d);
        else open.deltas.set(d.fingerprint, copy(d));
      }
      // Watch the opener's call with timers of our own; make our own call if it failed or is late.
      const giveUpAt = open.flushAt + ALERTS_TIMEOUT_MS + 500;
      while (open.result === null && Date.now() < giveUpAt) await sleep(WATCH_MS);
      if (open.result?.outcome === "ok") return open.result;
      return call(payload.deltas);
    }
    const window: Window = {
      deltas: new Map(payload.deltas.map((d) => [d.fingerprint, copy(d)])),
      flushAt: Date.now() + rules.flushMs,
      result: null,
    };
    windows.set(windowKey, window);
    await sleep(rules.flushMs);
    if (windows.get(windowKey) === window) windows.delete(windowKey);
    window.result = await call([...window.deltas.values()]);
    return window.result;
  };

  return {
    encode(batch): RulePayload {
      const records = pick(batch);
      return { deltas: groupRecords(records, rules.groupBy), records: records.length };
    },
    async send(payload) {
      const earlier = attempts.get(payload);
      if (earlier) {
        const result = await earlier;
        if (result.outcome === "ok") return result;
      }
      const attempt = send(payload);
      attempts.set(payload, attempt);
      return attempt;
    },
  };
}

/** How the object posts a rule's events for one sink type. */
export interface AlertPoster {
  /** The request body for an event. */
  body(e: AlertEvent): string;
  /** Posts a body and classifies the answer. Never throws. */
  post(target: AlertTarget, body: string, signal: AbortSignal): Promise<SendResult>;
}
