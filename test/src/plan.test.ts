/** planDelivery: each routed record is serialized once, and sinks of the same view share those bytes. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { buildConfig } from "../../src/config";
import { normalizeTraceItems } from "../../src/normalize";
import { planDelivery, prepareRecords } from "../../src/pipeline";
import { StatsBatch } from "../../src/stats";
import captured from "../fixtures/trace-items.json";

const vars = env as unknown as Record<string, unknown>;

function configWith(sinks: Record<string, unknown>[]) {
  const built = buildConfig({ ...vars, SINKS: JSON.stringify(sinks) });
  if (!built.ok) throw new Error(JSON.stringify(built.errors));
  return built.config;
}

describe("planDelivery", () => {
  it("serializes a record once: every sink it goes to holds the same line object", () => {
    const config = configWith([
      { name: "a", type: "r2", binding: "LOGS_R2" },
      { name: "b", type: "http", url: "https://logs.example.com/in" },
      { name: "c", type: "kv", binding: "LOGS_KV", level: "warn" },
    ]);
    const records = normalizeTraceItems([captured["fetch-console-error"]]);
    const stats = new StatsBatch();
    const [a, b, c] = planDelivery(records, config, vars, stats);
    expect(a?.items).toHaveLength(records.length);
    expect(b?.items).toHaveLength(records.length);
    a?.items.forEach((item, i) => {
      expect(b?.items[i]).toBe(item);
    });
    // The warn-and-above sink holds the very same objects for the records it takes.
    expect(c?.items.length).toBeGreaterThan(0);
    for (const item of c?.items ?? []) expect(a?.items).toContain(item);
    const counts = Object.fromEntries(stats.list().map((d) => [d.sink, d.counts]));
    expect(counts.c).toMatchObject({
      received: c?.items.length,
      droppedFilter: records.length - (c?.items.length ?? 0),
    });
  });

  it("a sink with its own view (unredacted or its own scrub) gets its own lines; the others keep sharing", async () => {
    const config = configWith([
      { name: "a", type: "r2", binding: "LOGS_R2" },
      { name: "b", type: "http", url: "https://logs.example.com/in" },
      { name: "raw", type: "http", url: "https://raw.example.com/in", scrub: false },
    ]);
    const item = {
      ...captured["fetch-ok"],
      logs: [
        {
          level: "log",
          message: ["token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXZhbHVl"],
          timestamp: 1_795_000_000_000,
        },
      ],
    };
    const { records, views } = await prepareRecords(normalizeTraceItems([item]), config);
    const [a, b, raw] = planDelivery(records, config, vars, undefined, views);
    a?.items.forEach((it, i) => {
      expect(b?.items[i]).toBe(it);
    });
    expect(raw?.items[1]).not.toBe(a?.items[1]);
    expect(a?.items[1]?.line).toContain("[REDACTED:jwt]");
    expect(raw?.items[1]?.line).toContain("eyJhbGciOiJIUzI1NiJ9");
  });
});
