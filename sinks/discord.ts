/**
 * Discord webhook: one readable alert message per batch, for the records at
 * or above `minLevel` (error by default). Same alerts and pacing as the slack
 * sink; Discord's own parts are the 2,000-character `content`, its markdown,
 * and the 429 answer whose delay is in the JSON body.
 *
 * Execute webhook: https://discord.com/developers/docs/resources/webhook#execute-webhook
 *   (`content` up to 2000 characters; `allowed_mentions`; `flags` may set SUPPRESS_EMBEDS = 1 << 2)
 * Rate limits: https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit
 *   (429 body `{ message, retry_after, global }`, retry_after in seconds, possibly fractional)
 */
import * as v from "valibot";
import { type AlertPoster, renderEvent, ruleBindings, ruleSink, rulesSchema } from "./alert-rules";
import { ALERT_BATCH, type AlertStyle, alerting, alertSink, minLevelOption, selectAlerts } from "./alerts";
import { classifyStatus, describeError, urlOption } from "./shared";
import { defineSink, type SendResult, type Sink } from "./types";

export const DISCORD_CONTENT_LIMIT = 2000;
const SUPPRESS_EMBEDS = 1 << 2;

export const DISCORD_STYLE: AlertStyle = {
  limit: DISCORD_CONTENT_LIMIT,
  listed: 5,
  // Markdown characters are backslash-escaped; mentions are disarmed by `allowed_mentions` instead.
  escape: (s) => s.replace(/[\\*_~`|>[\]]/g, (c) => `\\${c}`),
  bold: (s) => `**${s}**`,
  code: (s) => `\`${s.replace(/`/g, "'")}\``,
};

// No pings from user text (@everyone, <@id>), no link previews of producer URLs.
const discordMessage = (content: string) => ({ content, allowed_mentions: { parse: [] }, flags: SUPPRESS_EMBEDS });

/** How the alert rules' object posts to Discord. */
export const discordPoster: AlertPoster = {
  body: (e) => JSON.stringify(discordMessage(renderEvent(e, DISCORD_STYLE))),
  post: (target, body, signal) => postDiscord(target.url, body, signal),
};

export const discordSink = defineSink({
  type: "discord",
  description: "Posts readable alerts of error records to a Discord webhook: one per batch, or grouped by alert rules.",
  options: v.strictObject({
    /** The webhook URL (`https://discord.com/api/webhooks/<id>/<token>`); it holds the secret. Default: the secret `DISCORD_WEBHOOK_URL`. */
    webhook: urlOption("the webhook URL"),
    minLevel: minLevelOption,
    /** Alert rules: group by fingerprint, first occurrence at once, then a count per window (docs/sinks.md). Default none: one message per batch. */
    rules: v.optional(rulesSchema),
  }),
  batch: () => ALERT_BATCH,
  takes: (records, o) => alerting(records, o.minLevel),
  defaultSecrets: { webhook: "DISCORD_WEBHOOK_URL" },
  bindings: (o) => ruleBindings(o.rules),
  create: (o, ctx): Sink<unknown> =>
    o.rules
      ? ruleSink(o.rules, { type: "discord", url: o.webhook }, ctx, (batch) => selectAlerts(batch, o.minLevel))
      : alertSink(o, { style: DISCORD_STYLE, message: discordMessage, post: postDiscord }),
});

/**
 * POSTs a webhook body and classifies the answer like postPayload does, but
 * reads a 429's JSON body for `retry_after`. Never throws.
 */
export async function postDiscord(url: string, body: string, signal: AbortSignal): Promise<SendResult> {
  // workerd cannot catch the rejection of a fetch started with an aborted signal.
  if (signal.aborted) return { outcome: "retry", reason: `network error: ${describeError(signal.reason, signal)}` };
  let request: Request;
  try {
    request = new Request(url, { method: "POST", headers: { "content-type": "application/json" }, body });
  } catch (err) {
    return { outcome: "fail", reason: `could not build the request: ${describeError(err)}` };
  }
  let response: Response;
  try {
    response = await fetch(request, { signal });
  } catch (err) {
    return { outcome: "retry", reason: `network error: ${describeError(err, signal)}` };
  }
  return discordResult(response);
}

/** Classifies Discord's answer; a 429 takes its delay from the body's `retry_after`. */
export async function discordResult(response: Response): Promise<SendResult> {
  if (response.status >= 200 && response.status < 300) {
    await response.body?.cancel().catch(() => {});
    return { outcome: "ok", status: response.status };
  }
  let text = "";
  try {
    text = await response.text();
  } catch {
    text = "";
  }
  const retryAfterHeader = response.headers.get("retry-after");
  const result = classifyStatus(response.status, retryAfterHeader, text.slice(0, 200).replace(/\s+/g, " ").trim());
  if (response.status === 429 && result.outcome === "retry") {
    const fromBody = retryAfterFromBody(text, retryAfterHeader);
    if (fromBody !== undefined) result.retryAfterMs = fromBody;
  }
  return result;
}

/**
 * `retry_after` of a 429 body in milliseconds. The current API documents it
 * in seconds (fractional); unversioned webhook URLs have been seen answering
 * in milliseconds (discord-api-docs#4722), which shows as a value far above
 * the `Retry-After` header's seconds: then it is read as milliseconds.
 */
export function retryAfterFromBody(text: string, retryAfterHeader: string | null): number | undefined {
  let value: unknown;
  try {
    value = (JSON.parse(text) as { retry_after?: unknown } | null)?.retry_after;
  } catch {
    return undefined;
  }
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) return undefined;
  const header = retryAfterHeader === null ? Number.NaN : Number(retryAfterHeader.trim());
  if (Number.isFinite(header) && value > Math.max(header, 1) * 100) return Math.ceil(value);
  return Math.ceil(value * 1000);
}
