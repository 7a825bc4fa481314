/**
 * Alert helpers shared by the slack and discord sinks: which records alert,
 * how a burst is summarised into one message, and the per-webhook pacing of
 * about one message per second.
 */
import * as v from "valibot";
import { type Level, type LogRecord, levelRank as recordRank } from "../src/record";
import { cutText, describeError } from "./shared";
import type { BatchLimits, SendResult, SerializedRecord, Sink } from "./types";

/** Slack: a section block holds 3,000 characters; the whole message is kept within that. */
export const SLACK_TEXT_LIMIT = 3000;

/** Levels in ascending severity, as in src/record.ts (`log` ranks with `info`). */
export const ALERT_LEVELS = ["debug", "info", "log", "warn", "error"] as const satisfies readonly Level[];
// A level this version does not know ranks lowest.
const levelRank = (l: Level) => recordRank(l) ?? 0;

/** A webhook message, or null when no record in the batch calls for an alert. */
export interface WebhookPayload {
  body: string | null;
  /** How many records the message is about. */
  alerts: number;
}

/**
 * The records that alert: level at or above `minLevel`. An invocation record
 * is left out when the batch already alerts about the same invocation through
 * an exception or log record (they would say the same thing twice).
 */
export function selectAlerts(batch: readonly SerializedRecord[], minLevel: Level): LogRecord[] {
  const records = batch.map((i) => i.record);
  return records.filter(alerting(records, minLevel));
}

/**
 * The alert sinks' default filter (`takes`): the records `selectAlerts` would
 * pick, so the ones that can never alert are counted `droppedFilter`.
 */
export function alerting(records: readonly LogRecord[], minLevel: Level): (record: LogRecord) => boolean {
  const min = levelRank(minLevel);
  const covered = new Set<string>();
  for (const r of records) if (r.type !== "invocation" && levelRank(r.level) >= min) covered.add(r.invocationId);
  return (r) => levelRank(r.level) >= min && (r.type !== "invocation" || !covered.has(r.invocationId));
}

/** How a platform writes the pieces of a message. */
export interface AlertStyle {
  /** Most characters (UTF-16 code units, which never undercount) in the message. */
  limit: number;
  /** Most records listed one per line before "and N more". */
  listed: number;
  /** Escapes user text (messages, script names). */
  escape(s: string): string;
  /** Bold of already escaped text. */
  bold(s: string): string;
  /** Inline code of raw text (URLs): no links, no formatting. */
  code(s: string): string;
}

export const SLACK_STYLE: AlertStyle = {
  limit: SLACK_TEXT_LIMIT,
  listed: 10,
  escape: (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"),
  bold: (s) => `*${s}*`,
  code: (s) => `\`${SLACK_STYLE.escape(s.replace(/`/g, "'"))}\``,
};

const ICON: Record<Level, string> = { error: "🔴", warn: "🟠", info: "🔵", log: "🔵", debug: "⚪" };
const NOUN: Record<Level, [string, string]> = {
  error: ["error", "errors"],
  warn: ["warning", "warnings"],
  info: ["info", "infos"],
  log: ["log", "logs"],
  debug: ["debug", "debugs"],
};

/** One line of text: line breaks and runs of spaces folded. */
const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();

/** What went wrong, in a few words: `TypeError: x is undefined`. */
export function alertTitle(r: LogRecord): string {
  if (r.type === "exception") {
    const name = r.exceptionName || "Error";
    return r.message.startsWith(name) ? r.message : `${name}: ${r.message}`;
  }
  return r.message;
}

/** Where it happened: the request, the cron, the queue, ... */
function alertWhere(r: LogRecord): string | undefined {
  if (r.type === "invocation") return undefined; // its message already says it
  if (r.url !== undefined) return `${r.method ?? "?"} ${r.url}`;
  if (r.cron !== undefined) return `cron ${r.cron}`;
  if (r.queue !== undefined) return `queue ${r.queue}`;
  if (r.rpcMethod !== undefined) return `rpc ${r.rpcMethod}`;
  return r.eventType;
}

/** `2025-03-14 15:09:26 UTC`. */
export function alertTime(ms: number): string {
  const d = new Date(Number.isFinite(ms) ? ms : 0);
  return `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

const scriptOf = (r: LogRecord) => r.scriptName ?? "unknown script";

/**
 * The message for a batch's alerts. One alert: its title, then outcome,
 * where and when. Several: "12 errors in shop-api" and the first few, one
 * per line, then "and N more". Always within `style.limit`.
 */
export function renderAlerts(alerts: readonly LogRecord[], style: AlertStyle): string {
  const top = alerts.reduce<Level>((l, r) => (levelRank(r.level) > levelRank(l) ? r.level : l), "debug");
  const scripts = [...new Set(alerts.map(scriptOf))];
  const detail = (r: LogRecord) => {
    const parts = [`outcome ${style.escape(r.outcome)}`];
    const where = alertWhere(r);
    if (where !== undefined) parts.push(style.code(cutText(where, 200)));
    parts.push(alertTime(r.timestamp));
    return parts.join(" · ");
  };
  let text: string;
  const first = alerts[0];
  if (alerts.length === 1 && first) {
    const head = `${ICON[top]} ${style.bold(style.escape(cutText(scriptOf(first), 100)))}: ${style.escape(cutText(oneLine(alertTitle(first)), 1000))}`;
    text = `${head}\n${detail(first)}`;
  } else {
    const counts = new Map<Level, number>();
    for (const r of alerts) counts.set(r.level, (counts.get(r.level) ?? 0) + 1);
    const summary = [...counts.entries()]
      .sort((a, b) => levelRank(b[0]) - levelRank(a[0]))
      .map(([level, n]) => `${n} ${(NOUN[level] as [string, string])[n === 1 ? 0 : 1]}`)
      .join(", ");
    const where = scripts.length <= 3 ? scripts.map((s) => cutText(s, 60)).join(", ") : `${scripts.length} scripts`;
    const lines = [`${ICON[top]} ${style.bold(style.escape(`${summary} in ${where}`))}`];
    const listed = alerts.slice(0, style.listed);
    for (const r of listed) {
      const who = scripts.length > 1 ? `${style.escape(cutText(scriptOf(r), 60))}: ` : "";
      lines.push(`• ${who}${style.escape(cutText(oneLine(alertTitle(r)), 300))} — ${detail(r)}`);
    }
    const more = alerts.length - listed.length;
    // Keep the "and N more" line, dropping listed lines from the end until the whole fits.
    const tail = (n: number) => (n > 0 ? `\nand ${n} more` : "");
    let shown = listed.length;
    while (
      shown > 0 &&
      lines.slice(0, shown + 1).join("\n").length + tail(more + listed.length - shown).length > style.limit
    )
      shown--;
    text = lines.slice(0, shown + 1).join("\n") + tail(more + listed.length - shown);
  }
  return cutText(text, style.limit);
}

// --- Pacing: about one message per second per webhook, across invocations in this isolate ---

const GAP_MS = 1000;
/** Longest wait for a slot inside one send; beyond it the send answers retry with the delay. */
const MAX_WAIT_MS = 2000;
/** Per webhook URL: the earliest time the next message may go out. */
const nextSlot = new Map<string, number>();

/**
 * Waits for the webhook's next free slot (at most {@link MAX_WAIT_MS}, and
 * never past the signal). Undefined when the caller may post now; otherwise
 * the retry result to answer.
 */
export async function waitForSlot(
  webhook: string,
  signal: AbortSignal,
  now = Date.now(),
): Promise<SendResult | undefined> {
  const at = Math.max(now, nextSlot.get(webhook) ?? 0);
  const wait = at - now;
  if (wait > MAX_WAIT_MS)
    return { outcome: "retry", reason: "webhook rate limit: waiting for the next slot", retryAfterMs: wait };
  nextSlot.set(webhook, at + GAP_MS);
  if (wait <= 0) return undefined;
  const slept = await new Promise<boolean>((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, wait);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  if (slept) return undefined;
  return { outcome: "retry", reason: `webhook rate limit wait ${describeError(signal.reason, signal)}` };
}

/** After a 429 (or any retry with a delay), no message goes to that webhook before the delay is over. */
export function noteRetryAfter(webhook: string, result: SendResult, now = Date.now()): void {
  if (result.outcome !== "retry" || result.retryAfterMs === undefined) return;
  const until = now + result.retryAfterMs;
  if (until > (nextSlot.get(webhook) ?? 0)) nextSlot.set(webhook, until);
}

/** Lowest level that produces an alert: `debug`, `info`, `log`, `warn` or `error`. Default `error`. */
export const minLevelOption = v.optional(v.picklist(ALERT_LEVELS), "error");

/** One message per batch: large batches mean fewer messages in a burst. */
export const ALERT_BATCH: BatchLimits = { maxRecords: 1000, maxBytes: 1024 * 1024 };

/** How one chat service takes an alert. */
export interface AlertChannel {
  style: AlertStyle;
  /** The message body for the rendered text (Slack's `text`, Discord's `content`, with their flags). */
  message: (text: string) => object;
  /** Posts a body to the webhook and classifies the answer. Never throws. */
  post: (webhook: string, body: string, signal: AbortSignal) => Promise<SendResult>;
}

/**
 * The sink of a chat webhook: one message per batch about its records at or
 * above `minLevel`, paced to about one message per second per webhook.
 */
export function alertSink(o: { webhook: string; minLevel: Level }, channel: AlertChannel): Sink<WebhookPayload> {
  return {
    encode(batch): WebhookPayload {
      const alerts = selectAlerts(batch, o.minLevel);
      if (alerts.length === 0) return { body: null, alerts: 0 };
      const text = renderAlerts(alerts, channel.style);
      return { body: JSON.stringify(channel.message(text)), alerts: alerts.length };
    },
    async send(payload, signal) {
      if (payload.body === null) return { outcome: "ok" };
      const slot = await waitForSlot(o.webhook, signal);
      if (slot) return slot;
      const result = await channel.post(o.webhook, payload.body, signal);
      noteRetryAfter(o.webhook, result);
      return result;
    },
  };
}
