/**
 * A generic alert webhook: the alert rules' events (a new group, a window's
 * count, a threshold passed, a group resolved) as one JSON POST each, for an
 * incident tool or a handler of your own. Always grouped by alert rules (see
 * alert-rules.ts); the body is documented in docs/sinks.md, `webhook`.
 */
import * as v from "valibot";
import { type AlertPoster, ruleBindings, ruleSink, rulesSchema, webhookEvent } from "./alert-rules";
import { ALERT_BATCH, alerting, minLevelOption, selectAlerts } from "./alerts";
import { headersOption, postPayload, urlOption } from "./shared";
import { defineSink } from "./types";

/** How the alert rules' object posts to a generic webhook. */
export const webhookPoster: AlertPoster = {
  body: (e) => JSON.stringify(webhookEvent(e)),
  post: (target, body, signal) =>
    postPayload({ url: target.url, body, contentType: "application/json", headers: target.headers ?? {} }, signal),
};

export const webhookSink = defineSink({
  type: "webhook",
  description: "Posts each alert rule event (new group, count, threshold, resolved) as JSON to a URL of your choice.",
  options: v.strictObject({
    /** The URL the alerts are POSTed to. Required. */
    url: urlOption("the webhook URL"),
    headers: headersOption,
    minLevel: minLevelOption,
    /** The alert rules: how records are grouped and when a message goes out. Default `{}`: every rule option at its default. */
    rules: v.optional(rulesSchema, {}),
  }),
  batch: () => ALERT_BATCH,
  takes: (records, o) => alerting(records, o.minLevel),
  bindings: (o) => ruleBindings(o.rules),
  create: (o, ctx) =>
    ruleSink(o.rules, { type: "webhook", url: o.url, headers: o.headers }, ctx, (batch) =>
      selectAlerts(batch, o.minLevel),
    ),
});
