/**
 * Buffered mode across real requests: a producer Worker in Miniflare is hit
 * many times at once, so workerd runs many tail() calls in one tailfan
 * isolate, each in its own request context. tailfan is bundled behind
 * bench/requests-worker.ts, which only counts the calls to its bindings: the
 * queue messages are counted as they go to the real local queue. Every
 * record must reach the archive exactly once, with exact counters.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bundle, poll, readNdjsonObjects, root } from "./helpers";

const ADMIN_TOKEN = "coalesce-admin-token";
const INVOCATIONS = 150;
const CONCURRENCY = 30;

interface Counts {
  tailCalls: number;
  tailDone: number;
  queueCalls: number;
  queueDone: number;
  queueMessagesOut: number;
}
interface Totals {
  received: number;
  sent: number;
  pending: number;
}

let bundle: Bundle;
beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "tailfan-e2e-coalesce-"));
  const script = join(dir, "tailfan-counted.js");
  await build({
    entryPoints: [join(root, "bench/requests-worker.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    external: ["cloudflare:*"],
    outfile: script,
    logLevel: "error",
  });
  bundle = { dir, script, remove: () => rmSync(dir, { recursive: true, force: true }) };
});
afterAll(() => bundle?.remove());

/** Drives INVOCATIONS producer requests, CONCURRENCY at a time, and waits until every record is delivered. */
async function run(delivery: Record<string, unknown>) {
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      handleStructuredLogs: () => {},
      workers: [
        {
          name: "producer",
          modules: true,
          scriptPath: join(import.meta.dirname, "producer.js"),
          compatibilityDate: "2025-11-01",
          tails: ["tailfan"],
        },
        {
          name: "tailfan",
          modules: true,
          scriptPath: bundle.script,
          modulesRoot: bundle.dir,
          compatibilityDate: "2025-11-01",
          bindings: {
            SINKS: JSON.stringify([{ name: "archive", type: "r2", binding: "LOGS_R2", prefix: "co" }]),
            DELIVERY: JSON.stringify({ mode: "buffered", queue: "TAILFAN_QUEUE", stats: "TAILFAN_STATS", ...delivery }),
            ADMIN_TOKEN,
          },
          r2Buckets: ["LOGS_R2"],
          queueProducers: { TAILFAN_QUEUE: { queueName: "tailfan-work" } },
          queueConsumers: { "tailfan-work": { maxBatchSize: 100, maxBatchTimeout: 0.5 } },
          durableObjects: { TAILFAN_STATS: { className: "TailfanStats", useSQLite: true } },
        },
      ],
    }),
  );
  try {
    await mf.ready;
    const tailfan = await mf.getWorker("tailfan");
    const json = async <T>(path: string): Promise<T> =>
      (await (
        await tailfan.fetch(`http://tailfan${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
      ).json()) as T;
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < INVOCATIONS) {
          const i = next++;
          const res = await mf.dispatchFetch(`http://localhost/ok?n=${i}`);
          await res.arrayBuffer();
        }
      }),
    );
    const read = async () => ({
      counts: await json<Counts>("/__bench/counts"),
      archive: (await json<{ sinks: { sink: string; totals: Totals; unaccounted: number }[] }>("/status")).sinks?.find(
        (s) => s.sink === "archive",
      ),
    });
    const { value, done } = await poll(
      read,
      (v) =>
        v.counts.tailCalls >= INVOCATIONS &&
        v.counts.tailDone === v.counts.tailCalls &&
        v.counts.queueDone === v.counts.queueCalls &&
        v.archive !== undefined &&
        v.archive.totals.received >= INVOCATIONS * 2 &&
        v.archive.totals.sent === v.archive.totals.received &&
        v.archive.totals.pending === 0,
      30_000,
    );
    const ids = (await readNdjsonObjects<{ id: string }>(await mf.getR2Bucket("LOGS_R2", "tailfan"), "co/")).map(
      (r) => r.id,
    );
    return { ...value, done, ids };
  } finally {
    await mf.dispose();
  }
}

describe("buffered mode: tail() calls of many requests share queue messages", () => {
  let shared: Awaited<ReturnType<typeof run>>;
  let single: Awaited<ReturnType<typeof run>>;
  beforeAll(async () => {
    shared = await run({});
    single = await run({ bufferMs: 0 });
    console.log(
      `coalescing: ${INVOCATIONS} invocations, ${shared.counts.queueMessagesOut} queue message(s) with the default bufferMs, ${single.counts.queueMessagesOut} with bufferMs 0`,
    );
  });

  it("far fewer queue messages than invocations (one per invocation with bufferMs = 0)", () => {
    expect(single.counts.queueMessagesOut).toBe(INVOCATIONS);
    expect(shared.counts.queueMessagesOut).toBeLessThanOrEqual(INVOCATIONS / 5);
  });

  it("every record reaches the archive exactly once, and the counters add up", () => {
    for (const r of [shared, single]) {
      expect(r.done).toBe(true);
      expect(r.ids.length).toBe(r.archive?.totals.received);
      expect(new Set(r.ids).size).toBe(r.ids.length);
      expect(r.archive?.unaccounted).toBe(0);
    }
    expect(shared.ids.length).toBe(single.ids.length);
  });
});
