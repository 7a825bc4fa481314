/** planDelivery: each routed record is serialized once, and sinks of the same view share those bytes. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { buildConfig } from "../../src/config";
import { normalizeTraceItems } from "../../src/normalize";
import { planDelivery, prepareRecords } from "../../src/pipeline";
import { addSampled, sampledField } from "../../src/pipeline/plan";
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

  it("counts what sampling dropped per sink apart from what the filters dropped, keeping invocations whole", () => {
    const config = configWith([
      { name: "all", type: "r2", binding: "LOGS_R2" },
      // Half the invocations, warn and above: what the level drops is droppedFilter, what the rate drops droppedSample.
      { name: "half", type: "kv", binding: "LOGS_KV", level: "warn", sample: { default: 0.5 } },
      { name: "same", type: "http", url: "https://logs.example.com/in", sample: 0.5 },
    ]);
    const invocations = Array.from({ length: 60 }, (_, i) =>
      normalizeTraceItems([{ ...captured["fetch-console-error"], eventTimestamp: 1_795_000_000_000 + i }]),
    );
    const records = invocations.flat();
    const loud = (rs: typeof records) => rs.filter((r) => r.level === "warn" || r.level === "error").length;
    const stats = new StatsBatch();
    const [all, half, same] = planDelivery(records, config, vars, stats);
    expect(all?.items).toHaveLength(records.length);
    const kept = invocations.filter((rs) => same?.items.some((x) => x.record.invocationId === rs[0]?.invocationId));
    expect(kept.length).toBeGreaterThan(15);
    expect(kept.length).toBeLessThan(45);
    // Whole invocations, and the same ones for every sink with the same rate.
    expect(same?.items).toHaveLength(kept.flat().length);
    expect(half?.items.map((x) => x.record.id)).toEqual(
      kept
        .flat()
        .filter((r) => r.level === "warn" || r.level === "error")
        .map((r) => r.id),
    );
    const counts = Object.fromEntries(stats.list().map((d) => [d.sink, d.counts]));
    const of = (sink: string) => ({
      received: counts[sink]?.received ?? 0,
      droppedFilter: counts[sink]?.droppedFilter ?? 0,
      droppedSample: counts[sink]?.droppedSample ?? 0,
    });
    expect(of("all")).toEqual({ received: records.length, droppedFilter: 0, droppedSample: 0 });
    expect(of("same")).toEqual({
      received: kept.flat().length,
      droppedFilter: 0,
      droppedSample: records.length - kept.flat().length,
    });
    expect(of("half")).toEqual({
      received: loud(kept.flat()),
      droppedSample: loud(records) - loud(kept.flat()),
      droppedFilter: records.length - loud(records),
    });
  });

  it("sampled counts ride in a work message header only while they fit, and only counts are read back", () => {
    expect(sampledField({ a: 2, b: 1 })).toEqual({ sampled: { a: 2, b: 1 } });
    const many = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`a-rather-long-sink-name-${i}`, 1]));
    expect(sampledField(many)).toEqual({});
    expect(sampledField(undefined)).toEqual({});
    expect(addSampled({ a: 1 }, { a: 2, b: "3", c: -1, d: 1.5 } as never)).toEqual({ a: 3 });
    expect(addSampled(undefined, "x" as never)).toBeUndefined();
  });
});
