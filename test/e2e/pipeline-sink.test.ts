/**
 * The pipeline sink end to end on the real runtime: a producer streams its
 * invocations to tailfan (`streamingTails`), which sends every record to
 * Miniflare's local Pipelines binding and, for comparison, to an R2 archive.
 * The local binding keeps nothing, so GET /status's counters tell what was
 * sent; a second pipeline sink names a binding that does not exist.
 */
import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogRecord } from "../../src/record";
import { type Receiver, startReceiver } from "../support/receiver";
import { type Bundle, bundleTailfan, readNdjsonObjects, until } from "./helpers";

const ADMIN_TOKEN = "pipeline-admin-token";
const SINKS = [
  { name: "archive", type: "r2", binding: "LOGS_R2", prefix: "lake" },
  { name: "lake", type: "pipeline", binding: "LOGS_PIPELINE", maxRecords: 3 },
  { name: "nowhere", type: "pipeline", binding: "NO_SUCH_PIPELINE" },
];
// Each invocation delivered on its own (`bufferMs: 0`), so the sends are counted per invocation.
const DELIVERY = { stats: "TAILFAN_STATS", timeoutMs: 2_000, attempts: 2, backoffMs: 10, budgetMs: 5_000, bufferMs: 0 };

interface Counts {
  received: number;
  sent: number;
  failed: number;
  pending: number;
  requests: number;
}
interface SinkStatus {
  sink: string;
  totals: Counts;
  lastError: { message: string } | null;
}

let mf: Miniflare;
let receiver: Receiver;
let bundle: Bundle;

beforeAll(async () => {
  receiver = await startReceiver();
  bundle = await bundleTailfan();
  mf = new Miniflare(
    convertV4MiniflareOptions({
      workers: [
        {
          name: "producer",
          modules: true,
          scriptPath: join(import.meta.dirname, "stream-producer.js"),
          compatibilityDate: "2025-11-01",
          bindings: { UPSTREAM: receiver.url },
          streamingTails: ["tailfan"],
        },
        {
          name: "tailfan",
          modules: true,
          scriptPath: bundle.script,
          modulesRoot: bundle.dir,
          compatibilityDate: "2025-11-01",
          bindings: { SINKS: JSON.stringify(SINKS), DELIVERY: JSON.stringify(DELIVERY), ADMIN_TOKEN },
          r2Buckets: ["LOGS_R2"],
          pipelines: { LOGS_PIPELINE: "tailfan-records" },
          durableObjects: { TAILFAN_STATS: { className: "TailfanStats", useSQLite: true } },
        },
      ],
    }),
  );
  await mf.ready;
});

afterAll(async () => {
  await mf?.dispose();
  await receiver?.close();
  bundle?.remove();
});

async function status(): Promise<Map<string, SinkStatus>> {
  const tailfan = await mf.getWorker("tailfan");
  const res = await tailfan.fetch("http://tailfan/status", { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  const body = (await res.json()) as { sinks: SinkStatus[] | null };
  return new Map((body.sinks ?? []).map((s) => [s.sink, s]));
}

describe("producer with streamingTails → tailfan → pipeline sink (Miniflare's local Pipelines binding)", () => {
  let archived: LogRecord[] = [];

  beforeAll(async () => {
    for (const path of ["/ok?n=1", "/throw?n=2", "/sub"]) {
      const res = await mf.dispatchFetch(`http://localhost${path}`);
      await res.arrayBuffer();
    }
    // tail()'s records of the three invocations (7) plus their spans (4).
    archived = await until(
      "the archive",
      async () => readNdjsonObjects<LogRecord>(await mf.getR2Bucket("LOGS_R2", "tailfan"), "lake/"),
      (rs) => rs.length >= 11,
    );
    await until(
      "the counters of both pipeline sinks",
      status,
      (s) =>
        (s.get("lake")?.totals.sent ?? 0) >= archived.length &&
        (s.get("nowhere")?.totals.failed ?? 0) >= archived.length,
      15_000,
      (s) => JSON.stringify([...s.values()]),
    );
  });

  it("sends every record, spans included, to the binding in send() calls of at most maxRecords", async () => {
    expect(archived).toHaveLength(11);
    expect(archived.filter((r) => r.type === "span")).toHaveLength(4);
    const lake = (await status()).get("lake");
    expect(lake?.totals).toMatchObject({ received: 11, sent: 11, failed: 0, pending: 0 });
    // Per invocation (3, 4 and 4 records): batches of at most 3, so 1 + 2 + 2 sends.
    expect(lake?.totals.requests).toBe(5);
    expect(lake?.lastError).toBeNull();
  });

  it("a binding that does not exist fails every record, counted, with a reason that names it", async () => {
    const nowhere = (await status()).get("nowhere");
    expect(nowhere?.totals).toMatchObject({ received: 11, sent: 0, failed: 11, pending: 0 });
    expect(nowhere?.lastError?.message).toContain("NO_SUCH_PIPELINE");
  });
});
