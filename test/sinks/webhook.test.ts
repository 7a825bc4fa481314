/**
 * The webhook alert sink: always grouped by alert rules, one JSON POST per
 * event from the rule's object, in the format docs/sinks.md documents (and
 * test/sinks/wire/webhook.ts checks).
 */
import { describe, expect, it } from "vitest";
import { webhookSink } from "../../sinks/webhook";
import { sinkContract } from "./contract";
import { makeSink, must, received, receiverUrl, serialized, T0, uid } from "./helpers";
import { deliver, later, thrown, waitFor } from "./rules-helpers";
import { validateWebhook } from "./wire/webhook";

const base = receiverUrl();

describe("webhook sink", () => {
  it("threshold form: the event says threshold, with its count, minutes and the threshold", async () => {
    const rule = uid("hook-threshold");
    const label = uid("hook-threshold");
    const rules = { flushMs: 0, groupBy: ["scriptName"], threshold: { count: 3, minutes: 2 } };
    const { sink } = makeSink(webhookSink, { url: `${base}/ok/${label}`, rules }, rule);
    await deliver(sink, [thrown("a"), thrown("b"), thrown("c")]);
    await deliver(sink, [thrown("d", { name: "RangeError" })]);
    const got = await waitFor(label, 1);
    expect(got).toHaveLength(1);
    expect(validateWebhook(must(got[0]).body, must(got[0]).headers)).toEqual([]);
    expect(JSON.parse(must(got[0]).body)).toMatchObject({
      event: "threshold",
      group: { scriptName: "shop-api" },
      count: 4,
      windowMinutes: 2,
      total: 4,
      threshold: { count: 3, minutes: 2 },
    });
  });

  it("a refused message (400) is dropped after one attempt, not retried", async () => {
    const rule = uid("hook-400");
    const label = uid("hook-400");
    const { sink } = makeSink(webhookSink, { url: `${base}/status/400/${label}`, rules: { flushMs: 0 } }, rule);
    expect(await deliver(sink, [thrown("x")])).toEqual({ outcome: "ok" });
    await waitFor(label, 1);
    await new Promise((r) => setTimeout(r, 2500));
    expect(await received(label)).toHaveLength(1);
  });

  it("webhook: one JSON POST per event, with its headers, group, fingerprint, counts and times", async () => {
    const rule = uid("hook");
    const label = uid("hook");
    const { sink } = makeSink(
      webhookSink,
      { url: `${base}/ok/${label}`, headers: { authorization: "Bearer hook-token" }, rules: { flushMs: 0 } },
      rule,
    );
    await deliver(sink, [thrown("cart 42 is empty", { at: T0 }), thrown("cart 7 is empty", { at: T0 + 1000 })]);
    await waitFor(label, 1);
    await later(rule, 10);
    const got = await waitFor(label, 2);
    for (const r of got) expect(validateWebhook(r.body, r.headers)).toEqual([]);
    expect(must(got[0]).headers.authorization).toBe("Bearer hook-token");
    const [created, resolved] = got.map((r) => JSON.parse(r.body) as Record<string, unknown>);
    expect(created).toMatchObject({
      type: "tailfan.alert",
      event: "new",
      rule,
      group: { "exception.name": "TypeError", message: "cart # is empty", scriptName: "shop-api" },
      message: "TypeError: cart 42 is empty",
      script: "shop-api",
      level: "error",
      count: 2,
      windowMinutes: 0,
      total: 2,
      firstSeen: new Date(T0 + 50).toISOString(),
      lastSeen: new Date(T0 + 1050).toISOString(),
    });
    expect(created?.fingerprint).toMatch(/^[0-9a-f]{14}$/);
    expect(resolved).toMatchObject({
      event: "resolved",
      count: 2,
      windowMinutes: 10,
      fingerprint: created?.fingerprint,
    });
  });

  it("the webhook validator refuses malformed bodies", () => {
    expect(validateWebhook("nope")).toEqual(["body is not JSON"]);
    const good = {
      type: "tailfan.alert",
      event: "new",
      rule: "r",
      fingerprint: "0123456789abcd",
      group: { scriptName: "a" },
      message: "m",
      script: "a",
      level: "error",
      count: 1,
      windowMinutes: 0,
      total: 1,
      firstSeen: "2025-03-14T15:09:26.535Z",
      lastSeen: "2025-03-14T15:09:26.535Z",
    };
    expect(validateWebhook(JSON.stringify(good), { "content-type": "application/json" })).toEqual([]);
    expect(validateWebhook(JSON.stringify({ ...good, event: "fired", count: -1, extra: 1 }))).toEqual([
      "unknown field extra",
      "event must be one of new, update, threshold, resolved",
      "count must be a non-negative integer",
    ]);
  });
});

sinkContract({
  def: webhookSink,
  valid: { url: `${base}/ok/webhook-contract` },
  resolved: {
    url: `${base}/ok/webhook-contract`,
    headers: {},
    minLevel: "error",
    rules: {
      groupBy: ["exception.name", "message", "scriptName"],
      windowMinutes: 10,
      binding: "TAILFAN_ALERTS",
      maxGroups: 100,
      flushMs: 1000,
    },
  },
  invalid: [
    { name: "a relative URL", options: { url: "/alerts" }, path: "url" },
    { name: "no URL", options: {}, path: "url" },
    {
      name: "a threshold without a count",
      options: { url: `${base}/ok/x`, rules: { threshold: { minutes: 5 } } },
      path: "rules.threshold.count",
    },
    { name: "flushMs above 2000", options: { url: `${base}/ok/x`, rules: { flushMs: 5000 } }, path: "rules.flushMs" },
  ],
  rejecting: [
    {
      name: "the object binding is missing",
      options: { url: `${base}/ok/webhook-contract`, rules: { binding: "NOPE", flushMs: 0 } },
      records: () => serialized([thrown("x is undefined")]),
    },
  ],
  // A send reaches the object, not the webhook: the object posts from its alarm.
  abortIsHonoured: false,
});
