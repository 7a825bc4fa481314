/**
 * `where` and sampling rules end to end: a producer Worker tailed by tailfan
 * (bundled from src/) on the real runtime, Datadog played by the local
 * receiver (its wire format checked), R2 archives, and GET /status.
 *
 * - only `/api` 5xx reach Datadog (a route's `where` beside `status`), tagged env=prod by the sink's `add`;
 * - sinks sampling at the same rate, one as a rule (`{ "2xx" = 0.5 }`), one
 *   as a plain rate, keep the same whole invocations; the rule keeps every 5xx;
 * - what sampling dropped is counted per sink as `droppedSample`, apart from
 *   `droppedFilter`, and outside the `received` invariant.
 */
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogRecord } from "../../src/record";
import { validateDatadog } from "../sinks/wire/datadog";
import { type Receiver, startReceiver } from "../support/receiver";
import { type Bundle, bundleTailfan, readNdjsonObjects, until } from "./helpers";

const ADMIN_TOKEN = "where-admin-token";
const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

interface Totals {
  received: number;
  sent: number;
  droppedFilter: number;
  droppedSample: number;
  droppedLimit: number;
  deadLettered: number;
  failed: number;
  pending: number;
}

/** Answers with the status of `?status=`, logging one line: two records per invocation. */
const PRODUCER = `export default {
  async fetch(request) {
    const url = new URL(request.url);
    console.log("served", url.pathname);
    return new Response("x", { status: Number(url.searchParams.get("status") ?? 200) });
  },
};`;

const apiErrors = { key: "url", operator: "contains", value: "/api/" };

let receiver: Receiver;
let bundle: Bundle;
let mf: Miniflare;

const r2 = (name: string, extra: object = {}) => ({ name, type: "r2", binding: "LOGS_R2", prefix: name, ...extra });

beforeAll(async () => {
  receiver = await startReceiver();
  bundle = await bundleTailfan();
  const sinks = [
    {
      name: "datadog",
      type: "datadog",
      apiKey: "dd-key",
      endpoint: `${receiver.url}/ok/where-dd`,
      gzip: false,
      add: { env: "prod" },
    },
    r2("archive"),
    r2("rule", { sample: { "2xx": 0.5 } }),
    r2("plain", { sample: 0.5 }),
  ];
  const routes = [{ sinks: "datadog", status: "5xx", where: apiErrors }, { sinks: ["archive", "rule", "plain"] }];
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
            ROUTES: JSON.stringify(routes),
            DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS" }),
            ADMIN_TOKEN,
          },
          r2Buckets: ["LOGS_R2"],
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

async function hit(path: string): Promise<number> {
  const res = await mf.dispatchFetch(`http://localhost${path}`);
  await res.arrayBuffer();
  return res.status;
}

async function stored(prefix: string): Promise<LogRecord[]> {
  return readNdjsonObjects<LogRecord>(await mf.getR2Bucket("LOGS_R2", "tailfan"), `${prefix}/`);
}

async function status(): Promise<Map<string, Totals>> {
  const worker = await mf.getWorker("tailfan");
  const res = (await worker.fetch("http://tailfan/status", { headers: auth })) as unknown as Response;
  const body = (await res.json()) as { sinks: { sink: string; totals: Totals }[] | null };
  return new Map((body.sinks ?? []).map((s) => [s.sink, s.totals]));
}

const invocationsOf = (rs: LogRecord[]) => {
  const m = new Map<string, LogRecord[]>();
  for (const r of rs) m.set(r.invocationId, [...(m.get(r.invocationId) ?? []), r]);
  return m;
};

describe("where and sampling rules: producer → tailfan → Datadog and R2", () => {
  // path, status, invocations
  const traffic: [string, number, number][] = [
    ["/api/cart", 200, 24],
    ["/api/cart", 503, 4],
    ["/web/home", 503, 3],
    ["/api/cart", 404, 2],
  ];
  const invocations = traffic.reduce((n, [, , k]) => n + k, 0);
  let all: LogRecord[] = [];
  let totals: Map<string, Totals>;

  beforeAll(async () => {
    for (const [path, code, n] of traffic)
      for (let i = 0; i < n; i++) expect(await hit(`${path}?status=${code}&i=${i}`)).toBe(code);
    all = await until(
      "every record in the archive",
      () => stored("archive"),
      (rs) => rs.length >= invocations * 2,
    );
    totals = await until(
      "the counters",
      status,
      (s) => s.get("archive")?.received === all.length && s.get("plain")?.received !== undefined,
    );
  }, 60_000);

  it("sends Datadog only the /api 5xx records, in Datadog's wire format", () => {
    expect(all).toHaveLength(invocations * 2);
    const requests = receiver.received.filter((r) => r.label === "where-dd");
    expect(requests.length).toBeGreaterThan(0);
    for (const r of requests) expect(validateDatadog(r.body, r.headers)).toEqual([]);
    const got = requests.flatMap((r) => (JSON.parse(r.body) as { worker: LogRecord }[]).map((e) => e.worker));
    const want = all.filter((r) => r.status !== undefined && r.status >= 500 && (r.url ?? "").includes("/api/"));
    expect(want).toHaveLength(4 * 2);
    expect(got.map((r) => r.id).sort()).toEqual(want.map((r) => r.id).sort());
    // The sink's shaping tags each of them env=prod (docs/configuration.md's worked example).
    for (const r of got) expect((r as LogRecord & { env?: string }).env).toBe("prod");
    expect(totals.get("datadog")).toMatchObject({
      received: 8,
      sent: 8,
      droppedFilter: all.length - 8,
      droppedSample: 0,
    });
  });

  it("samples whole invocations; a rule and a plain rate keep the same 2xx invocations; the rule keeps every 5xx", async () => {
    const rule = invocationsOf(await stored("rule"));
    const plain = invocationsOf(await stored("plain"));
    for (const rs of [...rule.values(), ...plain.values()]) expect(rs).toHaveLength(2);
    const byId = invocationsOf(all);
    const ok = (ids: Iterable<string>) => [...ids].filter((id) => byId.get(id)?.[0]?.status === 200).sort();
    expect(ok(rule.keys())).toEqual(ok(plain.keys()));
    expect(ok(rule.keys()).length).toBeGreaterThan(0);
    expect(ok(rule.keys()).length).toBeLessThan(24);
    // Every non-2xx invocation is in the rule's sink: only 2xx is sampled there.
    const notOk = [...byId.keys()].filter((id) => byId.get(id)?.[0]?.status !== 200).sort();
    expect([...rule.keys()].filter((id) => !ok([id]).length).sort()).toEqual(notOk);
  });

  it("counts what sampling dropped per sink as droppedSample, outside received and droppedFilter", async () => {
    for (const name of ["rule", "plain"]) {
      const kept = (await stored(name)).length;
      const t = totals.get(name) as Totals;
      expect(t).toMatchObject({ received: kept, sent: kept, droppedSample: all.length - kept, droppedFilter: 0 });
      expect(t.received).toBe(t.sent + t.droppedLimit + t.deadLettered + t.failed + t.pending);
    }
    expect(totals.get("archive")).toMatchObject({ received: all.length, droppedSample: 0, droppedFilter: 0 });
  });
});
