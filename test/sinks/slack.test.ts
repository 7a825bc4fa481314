import { describe, expect, it } from "vitest";
import {
  alertTime,
  renderAlerts,
  SLACK_STYLE,
  SLACK_TEXT_LIMIT,
  selectAlerts,
  type WebhookPayload,
  waitForSlot,
} from "../../sinks/alerts";
import { slackSink } from "../../sinks/slack";
import { sinkContract } from "./contract";
import { makeSink, must, received, receiverUrl, serialized, T0, traceItem, uid } from "./helpers";
import { validateSlack } from "./wire/slack";

const base = receiverUrl();

/** One invocation with an error log and an uncaught exception. */
function errorRecords(script = "shop-api", message = "x is undefined") {
  return serialized([
    traceItem({
      script,
      outcome: "exception",
      logs: [
        { level: "info", message: ["fine"] },
        { level: "error", message: ["payment failed", { code: 402 }] },
      ],
      exceptions: [{ name: "TypeError", message }],
    }),
  ]);
}
const textOf = (p: WebhookPayload) => (JSON.parse(must(p.body)) as { text: string }).text;

sinkContract({
  def: slackSink,
  valid: { webhook: `${base}/ok/slack-contract` },
  resolved: { webhook: `${base}/ok/slack-contract`, minLevel: "error" },
  invalid: [
    { name: "a relative webhook", options: { webhook: "/services/T/B/x" }, path: "webhook" },
    { name: "a webhook of the wrong type", options: { webhook: 1 }, path: "webhook" },
    { name: "an unknown level", options: { webhook: `${base}/ok/x`, minLevel: "fatal" }, path: "minLevel" },
  ],
  rejecting: [
    {
      name: "the webhook refuses connections",
      options: { webhook: "http://127.0.0.1:1/hook" },
      records: () => errorRecords(),
    },
    {
      name: "the webhook answers 500",
      options: { webhook: `${base}/status/500/slack-contract-reject` },
      records: () => errorRecords(),
    },
  ],
  abortOptions: { webhook: `${base}/hang/slack-contract-abort` },
  // The contract's abort test sends info records, which alert nobody: nothing goes out. See below.
  abortIsHonoured: false,
});

describe("slack sink: which records alert", () => {
  it("by default errors only; an invocation already covered by its exception or log is not repeated", () => {
    const alerts = selectAlerts(errorRecords(), "error");
    expect(alerts.map((r) => r.type)).toEqual(["log", "exception"]);
  });

  it("a 5xx without exception or error log alerts through its invocation record", () => {
    const records = serialized([traceItem({ status: 503, logs: [{ level: "info", message: ["upstream down"] }] })]);
    const alerts = selectAlerts(records, "error");
    expect(alerts.map((r) => r.type)).toEqual(["invocation"]);
  });

  it("minLevel warn takes warnings too", () => {
    const records = serialized([traceItem({ logs: [{ level: "warn", message: ["slow"] }] })]);
    expect(selectAlerts(records, "error")).toEqual([]);
    expect(selectAlerts(records, "warn").map((r) => r.message)).toEqual(["slow"]);
  });

  it("no alerts → no body, send is ok without a request", async () => {
    const label = uid("slack-none");
    const { sink } = makeSink<WebhookPayload>(slackSink, { webhook: `${base}/ok/${label}` });
    const payload = sink.encode(serialized([traceItem()]));
    expect(payload).toEqual({ body: null, alerts: 0 });
    expect(await sink.send(payload, AbortSignal.timeout(5_000))).toEqual({ outcome: "ok" });
    expect(await received(label)).toHaveLength(0);
  });
});

describe("slack sink: messages", () => {
  it("one alert: script, message, outcome, URL and time", () => {
    const records = serialized([
      traceItem({ outcome: "exception", exceptions: [{ name: "TypeError", message: "x is undefined" }] }),
    ]);
    const text = renderAlerts(selectAlerts(records, "error"), SLACK_STYLE);
    expect(text).toBe(
      `🔴 *shop-api*: TypeError: x is undefined\noutcome exception · \`GET https://shop.example.com/cart\` · ${alertTime(T0 + 50)}`,
    );
    expect(alertTime(T0)).toBe("2025-03-14 15:09:26 UTC");
  });

  it("a burst: one message with the count, the first ten and 'and N more'", () => {
    const items = Array.from({ length: 12 }, (_, i) =>
      traceItem({
        outcome: "exception",
        path: `/p/${i}`,
        eventTimestamp: T0 + i,
        exceptions: [{ name: "Error", message: `boom ${i}` }],
      }),
    );
    const { sink } = makeSink<WebhookPayload>(slackSink, { webhook: `${base}/ok/x` });
    const payload = sink.encode(serialized(items));
    expect(payload.alerts).toBe(12);
    const text = textOf(payload);
    const lines = text.split("\n");
    expect(lines[0]).toBe("🔴 *12 errors in shop-api*");
    expect(lines.filter((l) => l.startsWith("• "))).toHaveLength(10);
    expect(lines[1]).toContain("Error: boom 0");
    expect(lines[1]).toContain("`GET https://shop.example.com/p/0`");
    expect(lines.at(-1)).toBe("and 2 more");
    expect(validateSlack(must(payload.body))).toEqual([]);
  });

  it("several scripts and levels: counted per level, each line names its script", () => {
    const records = serialized([
      traceItem({ script: "api", logs: [{ level: "error", message: ["db down"] }] }),
      traceItem({ script: "billing", logs: [{ level: "warn", message: ["retrying"] }] }),
    ]);
    const text = renderAlerts(selectAlerts(records, "warn"), SLACK_STYLE);
    expect(text.split("\n")[0]).toBe("🔴 *1 error, 1 warning in api, billing*");
    expect(text).toContain("• api: db down");
    expect(text).toContain("• billing: retrying");
  });

  it("escapes &, < and > in user text; no mention or link can be smuggled in", () => {
    const records = errorRecords("shop-api", "<!channel> see <https://evil.example|here> & more");
    const { sink } = makeSink<WebhookPayload>(slackSink, { webhook: `${base}/ok/x` });
    const text = textOf(sink.encode(records));
    expect(text).toContain("&lt;!channel&gt; see &lt;https://evil.example|here&gt; &amp; more");
    expect(validateSlack(JSON.stringify({ text }))).toEqual([]);
  });

  it("huge messages and bursts stay within the text limit", () => {
    const items = Array.from({ length: 50 }, (_, i) =>
      traceItem({
        script: `s${i % 7}`,
        outcome: "exception",
        exceptions: [{ name: "Error", message: "é".repeat(5000) }],
      }),
    );
    const { sink } = makeSink<WebhookPayload>(slackSink, { webhook: `${base}/ok/x` });
    const text = textOf(sink.encode(serialized(items)));
    expect(text.length).toBeLessThanOrEqual(SLACK_TEXT_LIMIT);
    expect(text).toMatch(/and \d+ more$/);
    expect(validateSlack(JSON.stringify({ text }), undefined, SLACK_TEXT_LIMIT)).toEqual([]);
    const single = textOf(sink.encode(errorRecords("a", "💥".repeat(5000)).slice(2, 3)));
    expect(single.length).toBeLessThanOrEqual(SLACK_TEXT_LIMIT);
  });
});

describe("slack sink: against the receiver", () => {
  it("round trip: JSON text message, unfurling off, valid for Slack", async () => {
    const label = uid("slack-rt");
    const { sink } = makeSink<WebhookPayload>(slackSink, { webhook: `${base}/ok/${label}` });
    const result = await sink.send(sink.encode(errorRecords("slack-rt")), AbortSignal.timeout(5_000));
    expect(result).toEqual({ outcome: "ok", status: 200 });
    const got = await received(label);
    expect(got).toHaveLength(1);
    const req = must(got[0]);
    expect(req.method).toBe("POST");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(req.headers["content-encoding"]).toBeUndefined();
    expect(validateSlack(req.body, req.headers, SLACK_TEXT_LIMIT)).toEqual([]);
    const body = JSON.parse(req.body) as Record<string, unknown>;
    expect(body).toMatchObject({ unfurl_links: false, unfurl_media: false });
    expect(body.text).toMatch(/^🔴 \*2 errors in slack-rt\*/);
  });

  it("429 with Retry-After → retry with the delay; the next message to that webhook waits without a request", async () => {
    const label = uid("slack-429");
    const webhook = `${base}/status/429/${label}?retryAfter=9`;
    const { sink } = makeSink<WebhookPayload>(slackSink, { webhook });
    const payload = sink.encode(errorRecords());
    expect(await sink.send(payload, AbortSignal.timeout(5_000))).toMatchObject({
      outcome: "retry",
      status: 429,
      retryAfterMs: 9000,
    });
    const next = await sink.send(payload, AbortSignal.timeout(5_000));
    expect(next.outcome).toBe("retry");
    if (next.outcome === "retry") expect(next.retryAfterMs).toBeGreaterThan(8000);
    expect(await received(label)).toHaveLength(1);
  });

  it.each([
    [400, "fail"],
    [403, "fail"],
    [404, "fail"],
    [500, "retry"],
  ] as const)("%i → %s", async (status, outcome) => {
    const label = uid(`slack-${status}`);
    const { sink } = makeSink<WebhookPayload>(slackSink, { webhook: `${base}/status/${status}/${label}` });
    const result = await sink.send(sink.encode(errorRecords()), AbortSignal.timeout(5_000));
    expect(result.outcome).toBe(outcome);
    if (result.outcome !== "ok") expect(result.reason).not.toContain(label); // the webhook URL stays out of reasons
  });

  it("paces messages to one webhook about one per second", async () => {
    const label = uid("slack-pace");
    const { sink } = makeSink<WebhookPayload>(slackSink, { webhook: `${base}/ok/${label}` });
    const payload = sink.encode(errorRecords());
    const [a, b] = await Promise.all([
      sink.send(payload, AbortSignal.timeout(5_000)),
      sink.send(payload, AbortSignal.timeout(5_000)),
    ]);
    expect([a.outcome, b.outcome]).toEqual(["ok", "ok"]);
    const got = await received(label);
    expect(got).toHaveLength(2);
    expect(Math.abs(must(got[1]).at - must(got[0]).at)).toBeGreaterThanOrEqual(900);
  });

  it("a wait for the slot cut short by the signal → retry naming the abort, no request", async () => {
    const label = uid("slack-pace-abort");
    const webhook = `${base}/ok/${label}`;
    expect(await waitForSlot(webhook, AbortSignal.timeout(5_000))).toBeUndefined(); // takes the slot
    const { sink } = makeSink<WebhookPayload>(slackSink, { webhook });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new DOMException("test aborted", "AbortError")), 50);
    const result = await sink.send(sink.encode(errorRecords()), controller.signal);
    expect(result.outcome).toBe("retry");
    if (result.outcome === "retry") expect(result.reason).toMatch(/abort/);
    expect(await received(label)).toHaveLength(0);
  });

  it("a hanging webhook with an aborting signal → retry naming the abort", async () => {
    const label = uid("slack-hang");
    const { sink } = makeSink<WebhookPayload>(slackSink, { webhook: `${base}/hang/${label}` });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new DOMException("test aborted", "AbortError")), 100);
    const result = await sink.send(sink.encode(errorRecords()), controller.signal);
    expect(result.outcome).toBe("retry");
    if (result.outcome === "retry") expect(result.reason).toMatch(/abort/i);
  });
});

describe("slack wire validator", () => {
  const good = JSON.stringify({ text: "🔴 *2 errors in api* &amp; <https://x.example|link> <@U123>" });
  it("accepts a good message", () => {
    expect(validateSlack(good, { "content-type": "application/json" })).toEqual([]);
  });
  it.each([
    ["not JSON", "text=hi", /not JSON/],
    ["an array", "[]", /JSON object/],
    ["no text", JSON.stringify({ unfurl_links: false }), /text is required/],
    ["empty text", JSON.stringify({ text: "  " }), /text is required/],
    ["text over 40,000 characters", JSON.stringify({ text: "a".repeat(40_001) }), /at most 40000/],
    ["an unescaped &", JSON.stringify({ text: "a & b" }), /unescaped &/],
    ["an unescaped <", JSON.stringify({ text: "a < b" }), /unescaped </],
    [
      "a section over 3,000",
      JSON.stringify({ text: "t", blocks: [{ type: "section", text: { type: "mrkdwn", text: "a".repeat(3001) } }] }),
      /at most 3000/,
    ],
    ["unfurl_links as a string", JSON.stringify({ text: "t", unfurl_links: "no" }), /boolean/],
  ])("rejects %s", (_, body, problem) => {
    expect(validateSlack(body).join("\n")).toMatch(problem);
  });
  it("rejects text over a tighter limit and a wrong content type", () => {
    expect(validateSlack(JSON.stringify({ text: "a".repeat(3001) }), undefined, 3000).join("\n")).toMatch(
      /at most 3000/,
    );
    expect(validateSlack(good, { "content-type": "text/plain" }).join("\n")).toMatch(/content-type/);
  });
});
