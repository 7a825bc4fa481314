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
import { ALERT_BATCH, alerting, alertSink, minLevelOption, SLACK_STYLE } from "./alerts";
import { postPayload, urlOption } from "./shared";
import { defineSink } from "./types";

export const slackSink = defineSink({
  type: "slack",
  description: "Posts one readable alert per batch of error records to a Slack incoming webhook.",
  options: v.strictObject({
    /** The incoming webhook URL (`https://hooks.slack.com/services/...`); it holds the secret. Default: the secret `SLACK_WEBHOOK_URL`. */
    webhook: urlOption("the incoming webhook URL"),
    minLevel: minLevelOption,
  }),
  batch: () => ALERT_BATCH,
  takes: (records, o) => alerting(records, o.minLevel),
  defaultSecrets: { webhook: "SLACK_WEBHOOK_URL" },
  create: (o) =>
    alertSink(o, {
      style: SLACK_STYLE,
      message: (text) => ({ text, unfurl_links: false, unfurl_media: false }),
      post: (url, body, signal) => postPayload({ url, body, contentType: "application/json" }, signal),
    }),
});
