/**
 * TraceItems kept while the config does not load, against the real local R2:
 * they are kept whole, but what the default detectors find is masked first,
 * since SCRUB may be the variable that is broken.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { keepUnconfigured, UNCONFIGURED_PREFIX } from "../../src/delivery/unconfigured";
import { gunzipText } from "../sinks/helpers";

const TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLXBhcnQtaGVyZQ";
const CARD = "4111 1111 1111 1111";

function itemWithSecrets(i: number) {
  return {
    scriptName: "shop-api",
    outcome: "ok",
    eventTimestamp: 1763715600000 + i,
    event: {
      request: {
        url: "https://shop.example.com/checkout?page=2",
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "user-agent": "curl/8" },
      },
    },
    logs: [{ level: "log", timestamp: 1763715600001 + i, message: [`charging card ${CARD} for order ${i}`] }],
    exceptions: [],
  };
}

describe("keepUnconfigured", () => {
  it("masks secrets in the kept TraceItems and keeps everything else", async () => {
    const broken = { DELIVERY: JSON.stringify({ deadLetter: "LOGS_R2" }), LOGS_R2: env.LOGS_R2, SINKS: "[" };
    const items = [itemWithSecrets(0), itemWithSecrets(1)];
    const said = await keepUnconfigured(items, broken, Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(said).toMatch(/^2 TraceItem\(s\) kept in LOGS_R2 at unconfigured\/2026\/01\/02\//);
    const key = /at (\S+);/.exec(said)?.[1] as string;
    expect(key.startsWith(`${UNCONFIGURED_PREFIX}/`)).toBe(true);
    const object = await env.LOGS_R2.get(key);
    const text = await gunzipText(await (object as R2ObjectBody).arrayBuffer());
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(CARD);
    const lines = text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0].scriptName).toBe("shop-api");
    expect(lines[1].eventTimestamp).toBe(1763715600001);
    expect(lines[0].event.request.url).toBe("https://shop.example.com/checkout?page=2");
    expect(lines[0].event.request.headers["user-agent"]).toBe("curl/8");
    expect(lines[0].event.request.headers.authorization).toMatch(/REDACTED/);
    expect(lines[0].logs[0].message[0]).toMatch(/^charging card \[REDACTED[^\]]*\] for order 0$/);
  });
});
