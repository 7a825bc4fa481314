/**
 * Alert rules on the real runtime: the rule sinks group and count in the
 * isolate, the TailfanAlerts object (the real local Durable Object, with its
 * alarm) decides and posts, and the local receiver checks the vendor's wire
 * format. A window's end is reached by moving the object's clock fields back
 * by a window and running its alarm, instead of waiting ten minutes.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ALERTS_TIMEOUT_MS, alertCallCost, formatCount, groupRecords, type RulePayload } from "../../sinks/alert-rules";
import { discordSink } from "../../sinks/discord";
import { slackSink } from "../../sinks/slack";
import { buildConfig, formatConfigErrors, summarizeConfig } from "../../src/config";
import { handleTail } from "../../src/tail";
import { makeSink, must, receiverUrl, serialized, T0, uid } from "./helpers";
import { deliver, later, settled, slackText, stubOf, thrown, vars, waitFor } from "./rules-helpers";
import { validateDiscord } from "./wire/discord";
import { validateSlack } from "./wire/slack";

const base = receiverUrl();

describe("alert rules: grouping", () => {
  // The exception records (each invocation's own record is left out by the sink's filter).
  const records = (items: Record<string, unknown>[]) =>
    serialized(items)
      .map((s) => s.record)
      .filter((r) => r.type === "exception");
  const defaults = ["exception.name", "message", "scriptName"] as const;

  it("numbers and ids are masked: one group; another message is another group", () => {
    const groups = groupRecords(
      records([
        thrown("order 1234 failed for user 550e8400-e29b-41d4-a716-446655440000"),
        thrown("order 98 failed for user 123e4567-e89b-12d3-a456-426614174000", { at: T0 + 5 }),
        thrown("session 3f2a9c1e4b5d6a7f expired"),
        thrown("payment declined"),
      ]),
      defaults,
    );
    expect(groups.map((g) => [g.key.message, g.count])).toEqual([
      ["order # failed for user #", 2],
      ["session # expired", 1],
      ["payment declined", 1],
    ]);
    // The messages show the first record's own text, unmasked.
    expect(groups[0]?.sample).toBe("TypeError: order 1234 failed for user 550e8400-e29b-41d4-a716-446655440000");
    expect(groups[0]?.lastSeen).toBe(T0 + 55);
  });

  it("the exception name and the script split groups; groupBy decides which fields count", () => {
    const items = [
      thrown("x is undefined"),
      thrown("x is undefined", { name: "RangeError" }),
      thrown("x is undefined", { script: "billing" }),
    ];
    expect(groupRecords(records(items), defaults)).toHaveLength(3);
    const byName = groupRecords(records(items), ["exception.name"]);
    expect(byName.map((g) => [g.key, g.count])).toEqual([
      [{ "exception.name": "TypeError" }, 2],
      [{ "exception.name": "RangeError" }, 1],
    ]);
    const byScript = groupRecords(records(items), ["scriptName"]);
    expect(byScript.map((g) => g.count)).toEqual([2, 1]);
    // Same fields, same fingerprint, in any batch.
    expect(groupRecords(records([items[0] as Record<string, unknown>]), defaults)[0]?.fingerprint).toBe(
      groupRecords(records(items), defaults)[0]?.fingerprint,
    );
  });

  it("counts are written with thousands separators", () => {
    expect([formatCount(7), formatCount(1284), formatCount(10_000), formatCount(1_234_567)]).toEqual([
      "7",
      "1,284",
      "10,000",
      "1,234,567",
    ]);
  });
});

describe("alert rules: a storm", () => {
  it("10,000 identical exceptions through tail(): a handful of messages with the right counts, every record sent", async () => {
    const rule = uid("storm");
    const label = uid("storm");
    const sinks = [{ name: rule, type: "slack", webhook: `${base}/ok/${label}`, rules: {} }];
    const items = Array.from({ length: 10_000 }, (_, i) => thrown("x is undefined", { at: T0 + i }));
    const calls = alertCallCost.calls;
    const rows = alertCallCost.rowsWritten;
    const ctx = createExecutionContext();
    const reports = await handleTail(items, { ...vars, SINKS: JSON.stringify(sinks), DELIVERY: "{}" }, ctx);
    await waitOnExecutionContext(ctx);
    expect(must(reports.find((r) => r.sink === rule))).toMatchObject({ delivered: 10_000, failed: 0 });
    // The 10 batches of 1,000 share the isolate's window: far fewer calls to the object than batches.
    const made = alertCallCost.calls - calls;
    expect(made).toBeGreaterThanOrEqual(1);
    expect(made).toBeLessThanOrEqual(3);
    // Rows written (as SQLite counts them, indexes included): a few per call, none per record.
    expect(alertCallCost.rowsWritten - rows).toBeLessThanOrEqual(4 * made + 4);

    // The first occurrence goes out at once, alone.
    const first = await settled(label);
    expect(first).toHaveLength(1);
    expect(slackText(must(first[0]))).toMatch(
      /^🔴 \*shop-api\*: TypeError: x is undefined\nnew · first seen 2025-03-14 15:09:26 UTC · [\d,]+ times so far$/,
    );
    const groups = await stubOf(rule).groups();
    expect(groups).toHaveLength(1);
    expect(groups[0]).toMatchObject({ total: 10_000, windowCount: 10_000, state: "open" });

    // At the end of the window: one update with the window's count.
    await later(rule, 10);
    const second = await waitFor(label, 2);
    expect(second).toHaveLength(2);
    expect(slackText(must(second[1]))).toBe(
      "🔴 TypeError: x is undefined — 10,000 times in shop-api in the last 10 min",
    );

    // A window without a record: resolved, and the group is forgotten.
    await later(rule, 10);
    const third = await waitFor(label, 3);
    expect(third).toHaveLength(3);
    expect(slackText(must(third[2]))).toBe(
      "✅ Resolved: TypeError: x is undefined in shop-api — quiet for 10 min, 10,000 times since 2025-03-14 15:09:26 UTC",
    );
    expect(await stubOf(rule).groups()).toEqual([]);
    for (const r of third) expect(validateSlack(r.body, r.headers)).toEqual([]);
    expect(await settled(label)).toHaveLength(3);
  }, 60_000);

  it("a new record after resolved is new again", async () => {
    const rule = uid("again");
    const label = uid("again");
    const { sink } = makeSink(slackSink, { webhook: `${base}/ok/${label}`, rules: { flushMs: 0 } }, rule);
    await deliver(sink, [thrown("db down")]);
    await waitFor(label, 1);
    await later(rule, 10);
    const resolved = await waitFor(label, 2);
    expect(slackText(must(resolved[1]))).toMatch(
      /^✅ Resolved: TypeError: db down in shop-api — quiet for 10 min, 1 time since/,
    );
    await deliver(sink, [thrown("db down")]);
    const again = await waitFor(label, 3);
    expect(slackText(must(again[2]))).toMatch(/^🔴 \*shop-api\*: TypeError: db down\nnew · first seen/);
  });
});

describe("alert rules: groups and windows", () => {
  it("two different errors are two groups: two new messages, each counted on its own", async () => {
    const rule = uid("two");
    const label = uid("two");
    const { sink } = makeSink(slackSink, { webhook: `${base}/ok/${label}`, rules: { flushMs: 0 } }, rule);
    expect(
      await deliver(sink, [thrown("x is undefined"), thrown("db down", { name: "Error" }), thrown("x is undefined")]),
    ).toEqual({
      outcome: "ok",
    });
    await waitFor(label, 2);
    const got = await settled(label);
    expect(got.map(slackText).sort()).toEqual([
      "🔴 *shop-api*: Error: db down\nnew · first seen 2025-03-14 15:09:26 UTC",
      "🔴 *shop-api*: TypeError: x is undefined\nnew · first seen 2025-03-14 15:09:26 UTC · 2 times so far",
    ]);
    // More of one of them inside the window: counted, not posted.
    await deliver(
      sink,
      Array.from({ length: 5 }, () => thrown("db down", { name: "Error" })),
    );
    expect(await settled(label)).toHaveLength(2);
    await later(rule, 10);
    const after = await waitFor(label, 4);
    expect(after.slice(2).map(slackText).sort()).toEqual([
      "✅ Resolved: TypeError: x is undefined in shop-api — quiet for 10 min, 2 times since 2025-03-14 15:09:26 UTC",
      "🔴 Error: db down — 6 times in shop-api in the last 10 min",
    ]);
  });

  it("windowMinutes sets the window: an update before it ends is held back", async () => {
    const rule = uid("win");
    const label = uid("win");
    const { sink } = makeSink(
      slackSink,
      { webhook: `${base}/ok/${label}`, rules: { flushMs: 0, windowMinutes: 30 } },
      rule,
    );
    await deliver(sink, [thrown("slow"), thrown("slow")]);
    await waitFor(label, 1);
    await deliver(sink, [thrown("slow")]);
    await later(rule, 20);
    expect(await settled(label)).toHaveLength(1);
    await later(rule, 10);
    const got = await waitFor(label, 2);
    expect(slackText(must(got[1]))).toBe("🔴 TypeError: slow — 3 times in shop-api in the last 30 min");
  });

  it("threshold form: nothing below N in M minutes, one message when it is passed, then resolved", async () => {
    const rule = uid("threshold");
    const label = uid("threshold");
    const rules = { flushMs: 0, groupBy: ["scriptName"], threshold: { count: 50, minutes: 5 } };
    const { sink } = makeSink(slackSink, { webhook: `${base}/ok/${label}`, rules }, rule);
    const burst = (n: number, tag: string) => Array.from({ length: n }, (_, i) => thrown(`boom ${i}`, { name: tag }));
    await deliver(sink, burst(30, "TypeError"));
    expect(await settled(label)).toHaveLength(0);
    expect((await stubOf(rule).groups())[0]).toMatchObject({ state: "watch", total: 30 });
    // 30 more, 6 minutes later: the first 30 are out of the 5 minutes, still below.
    await later(rule, 6);
    await deliver(sink, burst(30, "RangeError"));
    expect(await settled(label)).toHaveLength(0);
    // 30 more now: 60 in the last 5 minutes.
    await deliver(sink, burst(30, "Error"));
    const got = await waitFor(label, 1);
    expect(slackText(must(got[0]))).toBe(
      "🔴 *More than 50 errors in 5 min in shop-api*: 60 in the last 5 min\nTypeError: boom 0",
    );
    expect(validateSlack(must(got[0]).body)).toEqual([]);
    await deliver(sink, burst(10, "Error"));
    expect(await settled(label)).toHaveLength(1);
    await later(rule, 10);
    const update = await waitFor(label, 2);
    expect(slackText(must(update[1]))).toBe("🔴 TypeError: boom 0 — 10 times in shop-api in the last 10 min");
    await later(rule, 10);
    const resolved = await waitFor(label, 3);
    expect(slackText(must(resolved[2]))).toMatch(
      /^✅ Resolved: TypeError: boom 0 in shop-api — quiet for 10 min, 100 times since/,
    );
  });

  it("threshold form: a group that stays below is forgotten after a quiet window, without a message", async () => {
    const rule = uid("below");
    const label = uid("below");
    const rules = { flushMs: 0, threshold: { count: 5, minutes: 1 } };
    const { sink } = makeSink(slackSink, { webhook: `${base}/ok/${label}`, rules }, rule);
    await deliver(sink, [thrown("rare")]);
    expect(await stubOf(rule).groups()).toHaveLength(1);
    await later(rule, 10);
    expect(await stubOf(rule).groups()).toEqual([]);
    expect(await settled(label)).toHaveLength(0);
  });

  it("maxGroups: records of further groups are counted in one group of other errors", async () => {
    const rule = uid("many");
    const label = uid("many");
    const { sink } = makeSink(slackSink, { webhook: `${base}/ok/${label}`, rules: { flushMs: 0, maxGroups: 2 } }, rule);
    await deliver(sink, [thrown("a failed"), thrown("b failed"), thrown("c failed"), thrown("d failed")]);
    const got = await waitFor(label, 3);
    expect(got.map(slackText)).toEqual([
      "🔴 *shop-api*: TypeError: a failed\nnew · first seen 2025-03-14 15:09:26 UTC",
      "🔴 *shop-api*: TypeError: b failed\nnew · first seen 2025-03-14 15:09:26 UTC",
      "🔴 *shop-api*: other errors (more than 2 groups)\nnew · first seen 2025-03-14 15:09:26 UTC",
    ]);
    // One message per second at most.
    expect(must(got[2]).at - must(got[1]).at).toBeGreaterThanOrEqual(900);
    await deliver(sink, [thrown("e failed")]);
    expect((await stubOf(rule).groups()).map((g) => g.total).sort()).toEqual([1, 1, 3]);
  });

  it("an isolate sums its sends for flushMs: 20 concurrent sends, one call to the object", async () => {
    const rule = uid("window");
    const label = uid("window");
    const { sink } = makeSink<RulePayload>(
      slackSink,
      { webhook: `${base}/ok/${label}`, rules: { flushMs: 300 } },
      rule,
    );
    const calls = alertCallCost.calls;
    const payloads = Array.from({ length: 20 }, (_, i) => sink.encode(serialized([thrown(`item ${i} missing`)])));
    const results = await Promise.all(payloads.map((p) => sink.send(p, AbortSignal.timeout(10_000))));
    expect(results).toEqual(Array.from({ length: 20 }, () => ({ outcome: "ok" })));
    expect(alertCallCost.calls - calls).toBe(1);
    expect((await stubOf(rule).groups()).map((g) => g.total)).toEqual([20]);
    // Sending the same payload again after it landed (a retry after the core's timeout) does not count it twice.
    expect(await sink.send(must(payloads[0]), AbortSignal.timeout(10_000))).toEqual({ outcome: "ok" });
    expect((await stubOf(rule).groups()).map((g) => g.total)).toEqual([20]);
    expect(await waitFor(label, 1)).toHaveLength(1);
  });

  it("the object posts again after a 429, honouring Retry-After", async () => {
    const rule = uid("busy");
    const label = uid("busy");
    await fetch(`${base}/__behave?label=${label}&mode=429&retryAfter=1&for=1`, { method: "POST" });
    const { sink } = makeSink(slackSink, { webhook: `${base}/ctl/${label}`, rules: { flushMs: 0 } }, rule);
    await deliver(sink, [thrown("x is undefined")]);
    const got = await waitFor(label, 2, 10_000);
    expect(got.map((r) => r.answer)).toEqual([429, 200]);
    expect(must(got[1]).at - must(got[0]).at).toBeGreaterThanOrEqual(1000);
    expect(must(got[1]).body).toBe(must(got[0]).body);
  });

  it("no object binding: the send fails with the binding's name, and nothing is posted", async () => {
    const label = uid("nobind");
    const { sink } = makeSink(slackSink, { webhook: `${base}/ok/${label}`, rules: { flushMs: 0, binding: "NOPE" } });
    expect(await deliver(sink, [thrown("x")])).toEqual({
      outcome: "fail",
      reason: 'no Durable Object binding "NOPE" for the alert rules',
    });
    expect(ALERTS_TIMEOUT_MS).toBeLessThan(5000);
  });
});

describe("alert rules: discord", () => {
  it("discord: the object's messages are valid Discord webhook bodies with the counts", async () => {
    const rule = uid("discord");
    const label = uid("discord");
    const { sink } = makeSink(discordSink, { webhook: `${base}/ok/${label}`, rules: { flushMs: 0 } }, rule);
    await deliver(sink, [thrown("x_is *undefined*"), thrown("x_is *undefined*")]);
    await waitFor(label, 1);
    await deliver(sink, [thrown("x_is *undefined*")]);
    await later(rule, 10);
    const got = await waitFor(label, 2);
    for (const r of got) expect(validateDiscord(r.body, r.headers)).toEqual([]);
    const contents = got.map((r) => (JSON.parse(r.body) as { content: string }).content);
    expect(contents[0]).toMatch(
      /^🔴 \*\*shop-api\*\*: TypeError: x\\_is \\\*undefined\\\*\nnew · first seen .* · 2 times so far$/,
    );
    expect(contents[1]).toBe("🔴 TypeError: x\\_is \\*undefined\\* — 3 times in shop-api in the last 10 min");
  });
});

describe("alert rules: config", () => {
  const withVars = (sinks: unknown[]) => ({ ...vars, SINKS: sinks });

  it("a missing object binding is named with the option's path and the wrangler.toml lines", () => {
    const result = buildConfig(
      withVars([{ name: "s", type: "slack", webhook: "https://hooks.example.com/x", rules: { binding: "NOPE" } }]),
    );
    expect(result.ok).toBe(false);
    if (!result.ok)
      expect(formatConfigErrors(result.errors)).toBe(
        'SINKS[0].rules.binding: no binding named "NOPE"; add [[durable_objects.bindings]] name = "NOPE", class_name = "TailfanAlerts" to wrangler.toml',
      );
  });

  it("bad rule options are refused with their path", () => {
    const result = buildConfig(
      withVars([
        {
          name: "s",
          type: "slack",
          webhook: "https://hooks.example.com/x",
          rules: { groupBy: ["stack"], windowMinutes: 0, threshold: { count: 50 } },
        },
      ]),
    );
    expect(result.ok).toBe(false);
    const text = result.ok ? "" : formatConfigErrors(result.errors);
    expect(text).toContain("SINKS[0].rules.groupBy[0]");
    expect(text).toContain("SINKS[0].rules.windowMinutes");
    expect(text).toContain("SINKS[0].rules.threshold.minutes");
  });

  it("without rules slack keeps one message per batch and needs no object", () => {
    const result = buildConfig({ SINKS: [{ name: "s", type: "slack", webhook: "https://hooks.example.com/x" }] });
    expect(result.ok).toBe(true);
  });

  it("the rules are shown as written where the config is shown (/config/check, /status, the dashboard); the webhook is not", () => {
    const rules = { windowMinutes: 5, threshold: { count: 50, minutes: 5 } };
    const result = buildConfig({
      ...vars,
      SLACK_WEBHOOK_URL: "https://hooks.slack.com/services/T0/B0/very-secret",
      SINKS: [{ name: "s", type: "slack", rules }],
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const shown = summarizeConfig(result.config);
    expect(shown.sinks[0]?.options.rules).toEqual(rules);
    expect(JSON.stringify(shown)).not.toContain("very-secret");
  });
});
