/**
 * Direct mode's shared deliveries, on the real local runtime (the stats
 * object, the retry queue, the HTTP receiver): the tail() calls of one
 * isolate that arrive within `DELIVERY.bufferMs` share one request per sink
 * batch, every record arrives once, each tail() resolves only once its own
 * records are delivered or settled, failures are settled once (not once per
 * invocation), and `bufferMs = 0` delivers each invocation on its own.
 */
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { DeliveryOptions } from "../../src/delivery/deliver";
import { openChunkCount } from "../../src/pipeline/coalesce";
import type { SinkStats } from "../../src/stats";
import { handleTail } from "../../src/tail";
import { parseNdjson, received, receiverUrl, traceItem, uid } from "../sinks/helpers";
import { STATS_AT_ONCE } from "../support/stats";

const vars = env as unknown as Record<string, unknown>;
const FAST: Partial<DeliveryOptions> = { timeoutMs: 5_000, maxAttempts: 1, backoffMs: 0, budgetMs: 10_000 };

function setup(delivery: Record<string, unknown>, path = "ok") {
  const sink = uid("dc");
  const archive = uid("dc-r2");
  return {
    sink,
    archive,
    env: {
      ...vars,
      SINKS: JSON.stringify([
        { name: sink, type: "http", url: `${receiverUrl()}/${path}/${sink}`, format: "ndjson" },
        { name: archive, type: "r2", binding: "LOGS_R2", prefix: archive },
      ]),
      DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", ...STATS_AT_ONCE, ...delivery }),
    } as Record<string, unknown>,
  };
}

/** `n` invocations of one script, each with two log lines: three records apiece. */
function invocations(n: number) {
  const script = uid("dc-script");
  return Array.from({ length: n }, (_, i) =>
    traceItem({
      script,
      path: `/d/${i}`,
      logs: [
        { level: "log", message: [`first ${i}`] },
        { level: "info", message: [`second ${i}`] },
      ],
    }),
  );
}

async function statsOf(sink: string): Promise<SinkStats | undefined> {
  const stub = env.TAILFAN_STATS.get(env.TAILFAN_STATS.idFromName("tailfan"));
  return ((await stub.snapshot()) as SinkStats[]).find((s) => s.sink === sink);
}

async function objectsUnder(prefix: string): Promise<number> {
  return (await env.LOGS_R2.list({ prefix: `${prefix}/` })).objects.length;
}

describe("direct mode: invocations of an isolate share deliveries", () => {
  it("60 concurrent tail() calls make one request and one R2 object; every record once, counters exact", async () => {
    // A window long enough for all 60 to join on a busy machine.
    const s = setup({ bufferMs: 1_000 });
    const items = invocations(60);
    await Promise.all(items.map((item) => handleTail([item], s.env, createExecutionContext(), FAST)));
    expect(openChunkCount()).toBe(0);
    // Before: one request and one object per invocation (60 each).
    const requests = await received(s.sink);
    expect(requests).toHaveLength(1);
    expect(await objectsUnder(s.archive)).toBe(1);
    const ids = requests.flatMap((r) => parseNdjson(r.body).map((x) => (x as { id: string }).id));
    expect(ids).toHaveLength(180);
    expect(new Set(ids).size).toBe(180);
    for (const name of [s.sink, s.archive]) {
      expect(await statsOf(name)).toMatchObject({
        totals: { received: 180, sent: 180, pending: 0, failed: 0, requests: 1 },
        unaccounted: 0,
      });
    }
  });

  it("a tail() resolves only once the shared request that carries its records has been answered", async () => {
    const s = setup({ bufferMs: 100 });
    const [a, b] = invocations(2);
    const done: string[] = [];
    const first = handleTail([a as object], s.env, createExecutionContext(), FAST).then(() => done.push("a"));
    await new Promise((r) => setTimeout(r, 20));
    const second = handleTail([b as object], s.env, createExecutionContext(), FAST).then(() => done.push("b"));
    // Inside the window: nothing sent yet, neither resolved.
    await new Promise((r) => setTimeout(r, 30));
    expect(await received(s.sink)).toHaveLength(0);
    expect(done).toEqual([]);
    await Promise.all([first, second]);
    expect(done.sort()).toEqual(["a", "b"]);
    const requests = await received(s.sink);
    expect(requests).toHaveLength(1);
    expect(parseNdjson(requests[0]?.body ?? "")).toHaveLength(6);
  });

  it("a failing sink is settled once for the shared request: its records counted failed once, the other sink unharmed", async () => {
    const s = setup({ bufferMs: 1_000 }, "status/500");
    const items = invocations(20);
    await Promise.all(items.map((item) => handleTail([item], s.env, createExecutionContext(), FAST)));
    // One attempt (FAST), no retry queue: 60 records failed, in one request, not 20.
    expect(await received(s.sink)).toHaveLength(1);
    expect(await statsOf(s.sink)).toMatchObject({
      totals: { received: 60, sent: 0, failed: 60, requests: 1 },
      unaccounted: 0,
    });
    expect(await statsOf(s.archive)).toMatchObject({ totals: { received: 60, sent: 60 }, unaccounted: 0 });
  });

  it("an invocation whose records fill more than one shared delivery gets one report per sink with all of them", async () => {
    const s = setup({ bufferMs: 100 });
    const script = uid("dc-big");
    // 100 TraceItems with a 15 KB line, to two sinks: about 3 MB, more than one shared delivery's 2 MiB.
    const items = Array.from({ length: 100 }, (_, i) =>
      traceItem({ script, path: `/big/${i}`, logs: [{ level: "log", message: [`${i} ${"y".repeat(15_000)}`] }] }),
    );
    const reports = await handleTail(items, s.env, createExecutionContext(), FAST);
    expect(reports.map((r) => r.sink).sort()).toEqual([s.sink, s.archive].sort());
    for (const r of reports) expect(r).toMatchObject({ records: 200, delivered: 200, failed: 0 });
    expect(await objectsUnder(s.archive)).toBeGreaterThan(1);
  });

  it("bufferMs = 0 delivers each invocation on its own", async () => {
    const s = setup({ bufferMs: 0 });
    const items = invocations(5);
    await Promise.all(items.map((item) => handleTail([item], s.env, createExecutionContext(), FAST)));
    expect(await received(s.sink)).toHaveLength(5);
    expect(await objectsUnder(s.archive)).toBe(5);
  });
});
