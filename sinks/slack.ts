/**
 * Slack incoming webhook: one readable alert message per batch, for the
 * records at or above `minLevel` (error by default); the alert helpers it
 * shares with the discord sink are in alerts.ts.
 *
 * Incoming webhooks: https://api.slack.com/messaging/webhooks
 * Formatting (escape &, <, >): https://api.slack.com/reference/surfaces/formatting#escaping
 * Limits: `text` is truncated above 40,000 characters (https://api.slack.com/methods/chat.postMessage,
 * "Truncating content"); a section block's text holds at most 3,000. We keep the whole message
 * within 3,000 so it also fits a section if blocks are ever added.
 * Rate limit: about one message per second per webhook, 429 with Retry-After above that
 * (https://api.slack.com/apis/rate-limits).
 */
import * as v from "valibot";
import { type AlertPoster, renderEvent, ruleBindings, ruleSink, rulesSchema } from "./alert-rules";
import { ALERT_BATCH, alerting, alertSink, minLevelOption, SLACK_STYLE, selectAlerts } from "./alerts";
import { postPayload, urlOption } from "./shared";
import { defineSink, type Sink } from "./types";

const slackMessage = (text: string) => ({ text, unfurl_links: false, unfurl_media: false });
const postSlack = (url: string, body: string, signal: AbortSignal) =>
  postPayload({ url, body, contentType: "application/json" }, signal);

/** How the alert rules' object posts to Slack. */
export const slackPoster: AlertPoster = {
  body: (e) => JSON.stringify(slackMessage(renderEvent(e, SLACK_STYLE))),
  post: (target, body, signal) => postSlack(target.url, body, signal),
};

export const slackSink = defineSink({
  type: "slack",
  description:
    "Posts readable alerts of error records to a Slack incoming webhook: one per batch, or grouped by alert rules.",
  options: v.strictObject({
    /** The incoming webhook URL (`https://hooks.slack.com/services/...`); it holds the secret. Default: the secret `SLACK_WEBHOOK_URL`. */
    webhook: urlOption("the incoming webhook URL"),
    minLevel: minLevelOption,
    /** Alert rules: group by fingerprint, first occurrence at once, then a count per window (docs/sinks.md). Default none: one message per batch. */
    rules: v.optional(rulesSchema),
  }),
  batch: () => ALERT_BATCH,
  takes: (records, o) => alerting(records, o.minLevel),
  defaultSecrets: { webhook: "SLACK_WEBHOOK_URL" },
  bindings: (o) => ruleBindings(o.rules),
  create: (o, ctx): Sink<unknown> =>
    o.rules
      ? ruleSink(o.rules, { type: "slack", url: o.webhook }, ctx, (batch) => selectAlerts(batch, o.minLevel))
      : alertSink(o, { style: SLACK_STYLE, message: slackMessage, post: postSlack }),
});
