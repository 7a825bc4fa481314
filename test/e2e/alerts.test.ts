/**
 * Alert rules end to end: a real producer throws, tailfan tails it, its
 * slack and webhook sinks with rules reach the real TailfanAlerts object,
 * which posts to the local receiver. A stream of one error (its order
 * numbers masked) and a few of another are two groups: one message each,
 * whatever the number of requests, and every record counted `sent`. The
 * windows, thresholds and resolved messages are tested in workerd
 * (test/sinks/alert-rules.test.ts), where the object's clock can be moved.
 */
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateSlack } from "../sinks/wire/slack";
import { validateWebhook } from "../sinks/wire/webhook";
import { type Receiver, startReceiver } from "../support/receiver";
import { type Bundle, bundleTailfan, sleep, until } from "./helpers";

const ADMIN_TOKEN = "alerts-admin-7c1d";
const PRODUCER = `export default {
  fetch(request) {
    const url = new URL(request.url);
    const n = url.searchParams.get("n");
    if (url.pathname === "/type") throw new TypeError("order " + n + " is undefined");
    if (url.pathname === "/range") throw new RangeError("limit 5 exceeded");
    return new Response("ok");
  },
};`;

let mf: Miniflare;
let receiver: Receiver;
let bundle: Bundle;

beforeAll(async () => {
  receiver = await startReceiver();
  bundle = await bundleTailfan();
  const sinks = [
    { name: "chat", type: "slack", webhook: `${receiver.url}/ok/e2e-slack`, rules: {} },
    { name: "hook", type: "webhook", url: `${receiver.url}/ok/e2e-hook` },
  ];
  mf = new Miniflare(
    convertV4MiniflareOptions({
      workers: [
        { name: "producer", modules: true, script: PRODUCER, compatibilityDate: "2025-11-01", tails: ["tailfan"] },
        {
          name: "tailfan",
          modules: true,
          scriptPath: bundle.script,
          modulesRoot: bundle.dir,
          compatibilityDate: "2025-11-01",
          bindings: {
            SINKS: JSON.stringify(sinks),
            DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", statsFlushMs: 0, statsShards: 1 }),
            ADMIN_TOKEN,
          },
          durableObjects: {
            TAILFAN_STATS: { className: "TailfanStats", useSQLite: true },
            TAILFAN_ALERTS: { className: "TailfanAlerts", useSQLite: true },
          },
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

const at = (label: string) => receiver.received.filter((r) => r.label === label);

interface SinkStatus {
  sink: string;
  totals: Record<string, number>;
  unaccounted: number;
}

async function status(): Promise<Map<string, SinkStatus>> {
  const worker = await mf.getWorker("tailfan");
  const res = (await worker.fetch("http://tailfan/status", {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  })) as unknown as Response;
  const body = (await res.json()) as { sinks: SinkStatus[] };
  return new Map(body.sinks.map((s) => [s.sink, s]));
}

describe("alert rules through a real producer", () => {
  it("120 TypeErrors with different order numbers and 20 RangeErrors: two groups, one message each, every record sent", async () => {
    const paths = [
      ...Array.from({ length: 120 }, (_, i) => `/type?n=${1000 + i * 7}`),
      ...Array.from({ length: 20 }, (_, i) => `/range?n=${i}`),
    ];
    for (let i = 0; i < paths.length; i += 10) {
      await Promise.all(
        paths.slice(i, i + 10).map(async (p) => {
          const res = await mf.dispatchFetch(`http://localhost${p}`);
          await res.arrayBuffer();
        }),
      );
    }
    const counted = await until(
      "every exception counted for both sinks",
      status,
      (s) => s.get("chat")?.totals.sent === 140 && s.get("hook")?.totals.sent === 140,
      30_000,
      (s) => JSON.stringify([...s.values()]),
    );
    for (const name of ["chat", "hook"]) {
      // Each invocation's own record is covered by its exception: the sink does not take it.
      expect(counted.get(name)).toMatchObject({ totals: { sent: 140, droppedFilter: 140 }, unaccounted: 0 });
    }
    await until(
      "both groups posted",
      () => at("e2e-slack").length + at("e2e-hook").length,
      (n) => n >= 4,
      15_000,
    );
    await sleep(1500);

    const slack = at("e2e-slack");
    expect(slack).toHaveLength(2);
    for (const r of slack) expect(validateSlack(r.body, r.headers)).toEqual([]);
    const texts = slack.map((r) => (JSON.parse(r.body) as { text: string }).text).sort();
    // (Miniflare's TraceItems carry no script name: the group's script is "unknown script".)
    expect(texts[0]).toMatch(/^🔴 \*[^*]+\*: RangeError: limit 5 exceeded\nnew · first seen /);
    expect(texts[1]).toMatch(/^🔴 \*[^*]+\*: TypeError: order \d+ is undefined\nnew · first seen /);

    const hook = at("e2e-hook");
    expect(hook).toHaveLength(2);
    for (const r of hook) expect(validateWebhook(r.body, r.headers)).toEqual([]);
    const events = hook.map((r) => JSON.parse(r.body) as { event: string; group: Record<string, string> });
    expect(events.map((e) => [e.event, e.group.message]).sort()).toEqual([
      ["new", "limit # exceeded"],
      ["new", "order # is undefined"],
    ]);
  }, 120_000);
});
