import { describe, expect, it } from "vitest";
import { renderAlerts, selectAlerts, type WebhookPayload } from "../../sinks/alerts";
import {
  DISCORD_CONTENT_LIMIT,
  DISCORD_STYLE,
  discordResult,
  discordSink,
  retryAfterFromBody,
} from "../../sinks/discord";
import { sinkContract } from "./contract";
import { makeSink, must, received, receiverUrl, serialized, traceItem, uid } from "./helpers";
import { validateDiscord } from "./wire/discord";

const base = receiverUrl();

function errorRecords(script = "shop-api", message = "x is undefined") {
  return serialized([
    traceItem({
      script,
      outcome: "exception",
      logs: [{ level: "error", message: ["payment failed"] }],
      exceptions: [{ name: "TypeError", message }],
    }),
  ]);
}
type Body = { content: string; allowed_mentions: unknown; flags: number };
const bodyOf = (p: WebhookPayload) => JSON.parse(must(p.body)) as Body;

sinkContract({
  def: discordSink,
  valid: { webhook: `${base}/ok/discord-contract` },
  resolved: { webhook: `${base}/ok/discord-contract`, minLevel: "error" },
  invalid: [
    { name: "a relative webhook", options: { webhook: "/api/webhooks/1/x" }, path: "webhook" },
    { name: "a webhook of the wrong type", options: { webhook: null }, path: "webhook" },
    { name: "an unknown level", options: { webhook: `${base}/ok/x`, minLevel: "critical" }, path: "minLevel" },
  ],
  rejecting: [
    {
      name: "the webhook refuses connections",
      options: { webhook: "http://127.0.0.1:1/hook" },
      records: () => errorRecords(),
    },
    {
      name: "the webhook answers 500",
      options: { webhook: `${base}/status/500/discord-contract-reject` },
      records: () => errorRecords(),
    },
  ],
  abortOptions: { webhook: `${base}/hang/discord-contract-abort` },
  // The contract's abort test sends info records, which alert nobody: nothing goes out. See below.
  abortIsHonoured: false,
});

describe("discord sink: messages", () => {
  it("content, no pings, no link embeds", () => {
    const { sink } = makeSink<WebhookPayload>(discordSink, { webhook: `${base}/ok/x` });
    const body = bodyOf(sink.encode(errorRecords()));
    expect(body.allowed_mentions).toEqual({ parse: [] });
    expect(body.flags).toBe(4);
    expect(body.content.split("\n")[0]).toBe("🔴 **2 errors in shop-api**");
    expect(body.content).toContain("TypeError: x is undefined");
    expect(body.content).toContain("`GET https://shop.example.com/cart`");
    expect(body.content).toContain("outcome exception");
    expect(body.content).toMatch(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC/);
  });

  it("escapes markdown in user text", () => {
    const records = serialized([
      traceItem({
        outcome: "exception",
        exceptions: [{ name: "Error", message: "**bold** _it_ `code` [x](https://evil) @everyone" }],
      }),
    ]);
    const content = renderAlerts(selectAlerts(records, "error"), DISCORD_STYLE);
    expect(content).toContain("\\*\\*bold\\*\\* \\_it\\_ \\`code\\` \\[x\\](https://evil) @everyone");
  });

  it("a burst lists the first five and stays within 2000 characters", () => {
    const items = Array.from({ length: 40 }, (_, i) =>
      traceItem({
        script: "api",
        outcome: "exception",
        path: `/p/${i}`,
        exceptions: [{ name: "Error", message: `boom ${"z".repeat(400)} ${i}` }],
      }),
    );
    const { sink } = makeSink<WebhookPayload>(discordSink, { webhook: `${base}/ok/x` });
    const payload = sink.encode(serialized(items));
    expect(payload.alerts).toBe(40);
    const { content } = bodyOf(payload);
    expect(content.length).toBeLessThanOrEqual(DISCORD_CONTENT_LIMIT);
    expect(content.split("\n")[0]).toBe("🔴 **40 errors in api**");
    expect(content).toMatch(/\nand \d+ more$/);
    expect(validateDiscord(must(payload.body))).toEqual([]);
  });

  it("minLevel warn alerts on warnings; by default they are skipped", () => {
    const records = serialized([traceItem({ logs: [{ level: "warn", message: ["slow"] }] })]);
    expect(makeSink<WebhookPayload>(discordSink, { webhook: `${base}/ok/x` }).sink.encode(records).body).toBeNull();
    const warn = makeSink<WebhookPayload>(discordSink, { webhook: `${base}/ok/x`, minLevel: "warn" }).sink;
    expect(bodyOf(warn.encode(records)).content).toBe(
      `🟠 **shop-api**: slow\noutcome ok · \`GET https://shop.example.com/cart\` · 2025-03-14 15:09:26 UTC`,
    );
  });

  it("reads DISCORD_WEBHOOK_URL by default", () => {
    expect(discordSink.defaultSecrets).toEqual({ webhook: "DISCORD_WEBHOOK_URL" });
  });
});

describe("discord sink: answers", () => {
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

  it("204 → ok", async () => {
    expect(await discordResult(new Response(null, { status: 204 }))).toEqual({ outcome: "ok", status: 204 });
  });

  it("429 → retry after the body's retry_after seconds (fractional)", async () => {
    const r = await discordResult(
      json(429, { message: "You are being rate limited.", retry_after: 0.478, global: false }),
    );
    expect(r).toMatchObject({ outcome: "retry", status: 429, retryAfterMs: 478 });
  });

  it("429: the body wins over a rounded Retry-After header", async () => {
    const r = await discordResult(json(429, { retry_after: 1.5 }, { "retry-after": "2" }));
    expect(r).toMatchObject({ outcome: "retry", retryAfterMs: 1500 });
  });

  it("429 with a millisecond retry_after (older API versions) next to a seconds header", () => {
    expect(retryAfterFromBody(JSON.stringify({ retry_after: 1500 }), "2")).toBe(1500);
    expect(retryAfterFromBody(JSON.stringify({ retry_after: 30 }), "30")).toBe(30_000);
  });

  it("429 with an unreadable body falls back to Retry-After", async () => {
    const r = await discordResult(new Response("slow down", { status: 429, headers: { "retry-after": "3" } }));
    expect(r).toMatchObject({ outcome: "retry", retryAfterMs: 3000 });
    expect(retryAfterFromBody("null", null)).toBeUndefined();
    expect(retryAfterFromBody(JSON.stringify({ retry_after: -1 }), null)).toBeUndefined();
  });

  it("400 (e.g. content too long) → fail with the body's snippet", async () => {
    const r = await discordResult(json(400, { code: 50035, message: "Invalid Form Body" }));
    expect(r.outcome).toBe("fail");
    if (r.outcome === "fail") expect(r.reason).toContain("Invalid Form Body");
  });
});

describe("discord sink: against the receiver", () => {
  it("round trip: JSON body valid for Discord", async () => {
    const label = uid("discord-rt");
    const { sink } = makeSink<WebhookPayload>(discordSink, { webhook: `${base}/ok/${label}` });
    const result = await sink.send(sink.encode(errorRecords("discord-rt")), AbortSignal.timeout(5_000));
    expect(result).toEqual({ outcome: "ok", status: 200 });
    const req = must((await received(label))[0]);
    expect(req.method).toBe("POST");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(validateDiscord(req.body, req.headers)).toEqual([]);
    expect((JSON.parse(req.body) as Body).content).toContain("discord-rt");
  });

  it.each([
    [404, "fail"],
    [500, "retry"],
    [503, "retry"],
  ] as const)("%i → %s", async (status, outcome) => {
    const label = uid(`discord-${status}`);
    const { sink } = makeSink<WebhookPayload>(discordSink, { webhook: `${base}/status/${status}/${label}` });
    const result = await sink.send(sink.encode(errorRecords()), AbortSignal.timeout(5_000));
    expect(result.outcome).toBe(outcome);
    expect(result.status).toBe(status);
  });

  it("429 with Retry-After header only → retry with it", async () => {
    const label = uid("discord-429");
    const { sink } = makeSink<WebhookPayload>(discordSink, { webhook: `${base}/status/429/${label}?retryAfter=4` });
    expect(await sink.send(sink.encode(errorRecords()), AbortSignal.timeout(5_000))).toMatchObject({
      outcome: "retry",
      retryAfterMs: 4000,
    });
  });

  it("network error → retry", async () => {
    const { sink } = makeSink<WebhookPayload>(discordSink, { webhook: "http://127.0.0.1:1/hook" });
    const result = await sink.send(sink.encode(errorRecords()), AbortSignal.timeout(5_000));
    expect(result.outcome).toBe("retry");
    if (result.outcome === "retry") expect(result.reason).toMatch(/network error/);
  });

  it("a hanging webhook with an aborting signal → retry naming the abort", async () => {
    const label = uid("discord-hang");
    const { sink } = makeSink<WebhookPayload>(discordSink, { webhook: `${base}/hang/${label}` });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new DOMException("test aborted", "AbortError")), 100);
    const result = await sink.send(sink.encode(errorRecords()), controller.signal);
    expect(result.outcome).toBe("retry");
    if (result.outcome === "retry") expect(result.reason).toMatch(/abort/i);
  });

  it("paces two messages to one webhook about a second apart", async () => {
    const label = uid("discord-pace");
    const { sink } = makeSink<WebhookPayload>(discordSink, { webhook: `${base}/ok/${label}` });
    const payload = sink.encode(errorRecords());
    await sink.send(payload, AbortSignal.timeout(5_000));
    await sink.send(payload, AbortSignal.timeout(5_000));
    const got = await received(label);
    expect(got).toHaveLength(2);
    expect(must(got[1]).at - must(got[0]).at).toBeGreaterThanOrEqual(900);
  });
});

describe("discord wire validator", () => {
  const good = JSON.stringify({ content: "🔴 **1 error**", allowed_mentions: { parse: [] }, flags: 4 });
  it("accepts good messages, with content or with embeds", () => {
    expect(validateDiscord(good, { "content-type": "application/json" })).toEqual([]);
    expect(
      validateDiscord(
        JSON.stringify({ embeds: [{ title: "t", description: "d", fields: [{ name: "a", value: "b" }] }] }),
      ),
    ).toEqual([]);
  });
  it.each([
    ["not JSON", "content=hi", /not JSON/],
    ["neither content nor embeds", JSON.stringify({ flags: 4 }), /content or embeds is required/],
    ["content over 2000", JSON.stringify({ content: "a".repeat(2001) }), /at most 2000/],
    ["content of the wrong type", JSON.stringify({ content: 5 }), /must be a string/],
    ["11 embeds", JSON.stringify({ embeds: Array.from({ length: 11 }, () => ({ title: "t" })) }), /at most 10/],
    ["an embed title over 256", JSON.stringify({ embeds: [{ title: "a".repeat(257) }] }), /title.*at most 256/],
    [
      "embeds over 6000 in all",
      JSON.stringify({ embeds: [{ description: "a".repeat(4000) }, { description: "b".repeat(2500) }] }),
      /6000/,
    ],
    [
      "26 fields",
      JSON.stringify({ embeds: [{ fields: Array.from({ length: 26 }, () => ({ name: "n", value: "v" })) }] }),
      /at most 25/,
    ],
    [
      "a bad allowed_mentions",
      JSON.stringify({ content: "x", allowed_mentions: { parse: ["channels"] } }),
      /allowed_mentions/,
    ],
    ["a flag that cannot be set", JSON.stringify({ content: "x", flags: 64 }), /flags/],
  ])("rejects %s", (_, body, problem) => {
    expect(validateDiscord(body).join("\n")).toMatch(problem);
  });
});
