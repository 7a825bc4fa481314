/**
 * The otlp_metrics sink: the shared contract, the mapping of records to
 * counts and histograms, and the aggregation on the real runtime: many
 * tail() calls of one isolate folded into one request (direct mode), a
 * queue() batch summed into one request (buffered mode), counters exact on
 * 2xx, 5xx and 429, the local receiver standing in for the collector and the
 * real counters object behind them.
 */
import { createMessageBatch } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import type { KeyValue } from "../../sinks/otlp";
import {
  DURATION_BOUNDS_MS,
  type HistogramDataPoint,
  type NumberDataPoint,
  type OtlpMetricsPayload,
  type OtlpMetricsRequest,
  otlpMetricsRequest,
  otlpMetricsSink,
  statusClass,
} from "../../sinks/otlp-metrics";
import { DEFAULT_DELIVERY, DEFAULT_DELIVERY_CONFIG } from "../../src/config";
import type { DeliveryOptions, SinkTarget } from "../../src/delivery/deliver";
import { toMessages } from "../../src/delivery/durable";
import { aggregateAndSettle, openWindowCount, STALE_MS } from "../../src/pipeline/aggregate";
import { handleQueue } from "../../src/queue";
import type { LogRecord, SerializedRecord } from "../../src/record";
import { type SinkStats, StatsBatch } from "../../src/stats";
import { handleTail } from "../../src/tail";
import { sinkContract } from "./contract";
import { makeSink, received, receiverUrl, serialized, T0, type TraceSpec, traceItem, uid } from "./helpers";

const base = receiverUrl();
const vars = env as unknown as Record<string, unknown>;

sinkContract({
  def: otlpMetricsSink,
  valid: { endpoint: `${base}/ok/contract-metrics` },
  resolved: { endpoint: `${base}/ok/contract-metrics`, headers: {}, gzip: true, flushMs: 10_000 },
  invalid: [
    { name: "a relative endpoint", options: { endpoint: "/otlp" }, path: "endpoint" },
    { name: "gzip as a string", options: { endpoint: `${base}/ok/x`, gzip: "yes" }, path: "gzip" },
    {
      name: "flushMs past the waitUntil bound",
      options: { endpoint: `${base}/ok/x`, flushMs: 20_000 },
      path: "flushMs",
    },
    { name: "a negative flushMs", options: { endpoint: `${base}/ok/x`, flushMs: -1 }, path: "flushMs" },
    { name: "an empty serviceName", options: { endpoint: `${base}/ok/x`, serviceName: "" }, path: "serviceName" },
  ],
  rejecting: [
    { name: "the endpoint refuses connections", options: { endpoint: "http://127.0.0.1:1" } },
    { name: "the endpoint answers 503", options: { endpoint: `${base}/status/503/contract-metrics` } },
    { name: "the endpoint answers 400", options: { endpoint: `${base}/status/400/contract-metrics` } },
  ],
  abortOptions: { endpoint: `${base}/hang/contract-metrics-abort` },
  abortIsHonoured: true,
});

/** A TraceItem with its CPU and wall time. */
const item = (spec: TraceSpec, cpuTime: number, wallTime: number) => ({ ...traceItem(spec), cpuTime, wallTime });

const scheduledItem = (script: string, cpuTime: number, wallTime: number) => ({
  ...traceItem({ script, logs: [{ level: "info", message: ["cron fired"] }] }),
  event: { cron: "*/5 * * * *", scheduledTime: T0 },
  cpuTime,
  wallTime,
});

const flat = (attributes: KeyValue[]) =>
  Object.fromEntries(attributes.map((a) => [a.key, Object.values(a.value)[0] as unknown]));

interface Point<P> {
  resource: Record<string, unknown>;
  attributes: Record<string, unknown>;
  point: P;
  unit: string;
}

/** Every data point of one metric, with its resource and attributes flattened. */
function pointsOf<P = NumberDataPoint>(request: OtlpMetricsRequest | null, name: string): Point<P>[] {
  const out: Point<P>[] = [];
  for (const rm of request?.resourceMetrics ?? []) {
    for (const metric of rm.scopeMetrics[0]?.metrics ?? []) {
      if (metric.name !== name) continue;
      const points = ("sum" in metric ? metric.sum.dataPoints : metric.histogram.dataPoints) as unknown as P[];
      for (const point of points) {
        out.push({
          resource: flat(rm.resource.attributes),
          attributes: flat((point as { attributes: KeyValue[] }).attributes),
          point,
          unit: metric.unit,
        });
      }
    }
  }
  return out;
}

const sumOf = (points: Point<NumberDataPoint>[]) => points.reduce((n, p) => n + Number(p.point.asInt), 0);

/** The data point of `name` whose attributes include `where`. */
function pointWhere<P = NumberDataPoint>(
  request: OtlpMetricsRequest | null,
  name: string,
  script: string,
  where: Record<string, unknown>,
) {
  return pointsOf<P>(request, name).filter(
    (p) => p.resource["faas.name"] === script && Object.entries(where).every(([k, v]) => p.attributes[k] === v),
  );
}

describe("otlp_metrics: mapping", () => {
  const records = serialized([
    item(
      {
        script: "shop-api",
        logs: [
          { level: "info", message: ["a"] },
          { level: "warn", message: ["b"] },
        ],
      },
      1,
      2,
    ),
    item({ script: "shop-api", eventTimestamp: T0 + 5_000, logs: [{ level: "info", message: ["c"] }] }, 3, 40),
    item(
      {
        script: "shop-api",
        status: 500,
        outcome: "exception",
        logs: [{ level: "error", message: ["db down"] }],
        exceptions: [{ name: "Error", message: "boom" }],
      },
      7,
      300,
    ),
    item({ script: "billing", status: 404, logs: [] }, 0, 70_000),
    scheduledItem("billing", 12, 12),
  ]);
  const request = otlpMetricsRequest(records);

  it("counts invocations per script, event type, outcome and status class", () => {
    expect(pointWhere(request, "faas.invocations", "shop-api", {}).map((p) => [p.attributes, p.point.asInt])).toEqual([
      [
        {
          "faas.trigger": "http",
          "cloudflare.event_type": "fetch",
          "cloudflare.outcome": "ok",
          "cloudflare.status_class": "2xx",
        },
        "2",
      ],
      [
        {
          "faas.trigger": "http",
          "cloudflare.event_type": "fetch",
          "cloudflare.outcome": "exception",
          "cloudflare.status_class": "5xx",
        },
        "1",
      ],
    ]);
    const billing = pointWhere(request, "faas.invocations", "billing", {}).map((p) => p.attributes);
    expect(billing).toEqual([
      expect.objectContaining({ "faas.trigger": "http", "cloudflare.status_class": "4xx" }),
      expect.objectContaining({
        "faas.trigger": "timer",
        "cloudflare.event_type": "scheduled",
        "cloudflare.status_class": "none",
      }),
    ]);
    expect(sumOf(pointsOf(request, "faas.invocations"))).toBe(5);
  });

  it("counts exceptions, and log lines by level", () => {
    expect(pointsOf(request, "cloudflare.exceptions").map((p) => [p.resource["faas.name"], p.point.asInt])).toEqual([
      ["shop-api", "1"],
    ]);
    const lines = pointsOf(request, "cloudflare.log_lines").map((p) => [
      p.resource["faas.name"],
      p.attributes["cloudflare.status_class"],
      p.attributes["cloudflare.log_level"],
      p.point.asInt,
    ]);
    expect(lines).toEqual([
      ["shop-api", "2xx", "info", "2"],
      ["shop-api", "2xx", "warn", "1"],
      ["shop-api", "5xx", "error", "1"],
      ["billing", "none", "info", "1"],
    ]);
  });

  it("CPU and wall time are histograms in seconds with the documented bounds, bucket counts, sums, min and max", () => {
    const bounds = DURATION_BOUNDS_MS.map((ms) => ms / 1000);
    const [cpu] = pointWhere<HistogramDataPoint>(request, "faas.cpu_usage", "shop-api", {
      "cloudflare.outcome": "ok",
    });
    const [wall] = pointWhere<HistogramDataPoint>(request, "faas.invoke_duration", "shop-api", {
      "cloudflare.outcome": "ok",
    });
    const buckets = (...indices: number[]) => {
      const out = new Array<string>(DURATION_BOUNDS_MS.length + 1).fill("0");
      for (const i of indices) out[i] = String(Number(out[i]) + 1);
      return out;
    };
    // cpu 1 ms and 3 ms: the first is in (0, 1], the second in (2, 5]; wall 2 ms in (1, 2], 40 ms in (25, 50].
    expect(cpu?.point).toMatchObject({ count: "2", sum: 0.004, min: 0.001, max: 0.003, explicitBounds: bounds });
    expect(cpu?.point.bucketCounts).toEqual(buckets(0, 2));
    expect(wall?.point).toMatchObject({ count: "2", sum: 0.042, min: 0.002, max: 0.04 });
    expect(wall?.point.bucketCounts).toEqual(buckets(1, 5));
    expect(cpu?.unit).toBe("s");
    // 70 s is past the last bound: the overflow bucket; 0 ms is in the first.
    const [slow] = pointWhere<HistogramDataPoint>(request, "faas.invoke_duration", "billing", {
      "cloudflare.status_class": "4xx",
    });
    expect(slow?.point.bucketCounts).toEqual(buckets(DURATION_BOUNDS_MS.length));
    const [idle] = pointWhere<HistogramDataPoint>(request, "faas.cpu_usage", "billing", {
      "cloudflare.status_class": "4xx",
    });
    expect(idle?.point).toMatchObject({ count: "1", sum: 0, min: 0, max: 0, bucketCounts: buckets(0) });
  });

  it("delta temporality, monotonic sums, the window from the first record's time to the last's, the logs sink's resource", () => {
    const rm = request?.resourceMetrics ?? [];
    expect(rm.map((r) => flat(r.resource.attributes))).toEqual([
      {
        "service.name": "shop-api",
        "cloud.provider": "cloudflare",
        "cloud.platform": "cloudflare.workers",
        "faas.name": "shop-api",
      },
      {
        "service.name": "billing",
        "cloud.provider": "cloudflare",
        "cloud.platform": "cloudflare.workers",
        "faas.name": "billing",
      },
    ]);
    const times = records.map((r) => r.record.timestamp);
    const first = String(BigInt(Math.min(...times)) * 1_000_000n);
    const last = String(BigInt(Math.max(...times)) * 1_000_000n);
    for (const r of rm) {
      expect(r.scopeMetrics[0]?.scope.name).toBe("tailfan");
      for (const m of r.scopeMetrics[0]?.metrics ?? []) {
        const data = "sum" in m ? m.sum : m.histogram;
        expect(data.aggregationTemporality).toBe(1);
        if ("sum" in m) expect(m.sum.isMonotonic).toBe(true);
        for (const p of data.dataPoints) expect([p.startTimeUnixNano, p.timeUnixNano]).toEqual([first, last]);
      }
    }
    expect(flat(otlpMetricsRequest(records, "shop")?.resourceMetrics[0]?.resource.attributes ?? [])).toMatchObject({
      "service.name": "shop",
      "faas.name": "shop-api",
    });
  });

  it("status classes, and records counted in no metric are not taken (droppedFilter)", () => {
    expect([101, 200, 299, 302, 404, 503, undefined, 0, 600].map(statusClass)).toEqual([
      "1xx",
      "2xx",
      "2xx",
      "3xx",
      "4xx",
      "5xx",
      "none",
      "none",
      "none",
    ]);
    const takes = otlpMetricsSink.takes?.([], {} as never);
    const kinds = ["invocation", "log", "exception", "diagnostic", "span"].map((type) =>
      takes?.({ ...(records[0] as SerializedRecord).record, type } as LogRecord),
    );
    expect(kinds).toEqual([true, true, true, false, false]);
    expect(otlpMetricsRequest([])).toBeNull();
  });

  it("a batch is one request to /v1/metrics, JSON, gzip by default", async () => {
    const label = uid("metrics-send");
    const { sink } = makeSink<OtlpMetricsPayload>(otlpMetricsSink, { endpoint: `${base}/ok/${label}` });
    const payload = sink.encode(records);
    expect(payload.records).toBe(records.length);
    expect(await sink.send(payload, new AbortController().signal)).toMatchObject({ outcome: "ok", status: 200 });
    const [req, more] = await received(label);
    expect(more).toBeUndefined();
    expect(req?.path).toBe(`/ok/${label}/v1/metrics`);
    expect(req?.headers["content-type"]).toBe("application/json");
    expect(req?.headers["content-encoding"]).toBe("gzip");
    expect(JSON.parse(req?.body ?? "{}")).toEqual(request);
  });
});

/** Delivery knobs for tests: generous timeouts (a busy machine is not a failure), short backoff. */
const FAST: Partial<DeliveryOptions> = { timeoutMs: 10_000, maxAttempts: 3, backoffMs: 10, budgetMs: 15_000 };

function setup(path: string, sink: Record<string, unknown> = {}, delivery: Record<string, unknown> = {}) {
  const name = uid("metrics");
  const label = uid("m");
  const environment: Record<string, unknown> = {
    ...vars,
    METRICS_TOKEN: "metrics-secret-0c9f2b7e41",
    SINKS: JSON.stringify([
      { name, type: "otlp_metrics", endpoint: `${base}/${path}/${label}`, gzip: false, flushMs: 600, ...sink },
    ]),
    DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", statsFlushMs: 0, statsShards: 1, ...delivery }),
  };
  return { name, label, env: environment };
}

/** `n` invocations of shop-api, each with one log line: two records apiece. */
const invocations = (n: number) =>
  Array.from({ length: n }, (_, i) =>
    item({ script: "shop-api", path: `/p/${i}`, logs: [{ level: "info", message: ["served", i] }] }, 1 + (i % 4), 10),
  );

async function statsOf(sink: string): Promise<SinkStats | undefined> {
  const stub = env.TAILFAN_STATS.get(env.TAILFAN_STATS.idFromName("tailfan"));
  return ((await stub.snapshot()) as SinkStats[]).find((s) => s.sink === sink);
}

/** Runs one tail() per TraceItem, all at once, as the runtime does for concurrent invocations; returns the order they finished in. */
async function tailAll(items: Record<string, unknown>[], e: Record<string, unknown>, options = FAST) {
  const order: number[] = [];
  const ctx = { waitUntil: () => {} };
  await Promise.all(items.map((it, i) => handleTail([it], e, ctx, options).then(() => order.push(i))));
  return order;
}

const bodiesOf = async (label: string) => (await received(label)).map((r) => JSON.parse(r.body) as OtlpMetricsRequest);

let errors: MockInstance<typeof console.error>;
beforeEach(() => {
  errors = vi.spyOn(console, "error").mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

describe("otlp_metrics: aggregated per isolate in direct mode", () => {
  it("40 invocations make one request with all their counts; the counters add up", async () => {
    const s = setup("ok");
    const order = await tailAll(invocations(40), s.env);
    const bodies = await bodiesOf(s.label);
    expect(bodies).toHaveLength(1);
    const [body] = bodies;
    expect(sumOf(pointsOf(body ?? null, "faas.invocations"))).toBe(40);
    expect(sumOf(pointsOf(body ?? null, "cloudflare.log_lines"))).toBe(40);
    const [cpu] = pointsOf<HistogramDataPoint>(body ?? null, "faas.cpu_usage");
    // cpu 1, 2, 3, 4 ms ten times each: (0,1], (1,2], (2,5], (2,5].
    expect(cpu?.point.bucketCounts.slice(0, 4)).toEqual(["10", "10", "20", "0"]);
    expect(cpu?.point.sum).toBeCloseTo(0.1, 10);
    // The opener (the first) sends the window on its own timer; the others return at once, awaiting nothing of it.
    expect(order[order.length - 1]).toBe(0);
    expect(openWindowCount()).toBe(0);
    const stats = await statsOf(s.name);
    expect(stats?.totals).toMatchObject({ received: 80, sent: 80, pending: 0, failed: 0, requests: 1 });
    expect(stats?.totals.bytes).toBeGreaterThan(0);
    expect(errors).not.toHaveBeenCalled();
  });

  it("while the window is open its records are pending in the joiners' counters; the opener's send settles them all", async () => {
    const s = setup("ok", { flushMs: 1_500 });
    const ctx = { waitUntil: () => {} };
    const [first, ...rest] = invocations(8);
    const opener = handleTail([first], s.env, ctx, FAST);
    await Promise.all(rest.map((it) => handleTail([it], s.env, ctx, FAST)));
    expect(openWindowCount()).toBeGreaterThan(0);
    expect(await received(s.label)).toEqual([]);
    expect((await statsOf(s.name))?.totals).toMatchObject({ received: 14, pending: 14, sent: 0 });
    const [report] = await opener;
    expect(report).toMatchObject({ records: 2, delivered: 2, failed: 0, requests: 1 });
    expect((await statsOf(s.name))?.totals).toMatchObject({ received: 16, pending: 0, sent: 16 });
    expect(await received(s.label)).toHaveLength(1);
  });

  it("invocations after the window's send open the next window", async () => {
    const s = setup("ok", { flushMs: 200 });
    await tailAll(invocations(5), s.env);
    await tailAll(invocations(7), s.env);
    const bodies = await bodiesOf(s.label);
    expect(bodies.map((b) => sumOf(pointsOf(b, "faas.invocations")))).toEqual([5, 7]);
    expect((await statsOf(s.name))?.totals).toMatchObject({ received: 24, sent: 24, pending: 0, requests: 2 });
  });

  it("flushMs 0: a request per invocation", async () => {
    const s = setup("ok", { flushMs: 0 });
    for (const it of invocations(3)) await tailAll([it], s.env);
    expect(await bodiesOf(s.label)).toHaveLength(3);
    expect((await statsOf(s.name))?.totals).toMatchObject({ received: 6, sent: 6, pending: 0 });
  });

  it("a 5xx is retried per DELIVERY, then every summed record is counted failed with the reason", async () => {
    const s = setup("status/503");
    await tailAll(invocations(10), s.env);
    expect(await received(s.label)).toHaveLength(3);
    const stats = await statsOf(s.name);
    expect(stats?.totals).toMatchObject({ received: 20, sent: 0, failed: 20, pending: 0, requests: 3 });
    expect(stats?.lastError?.message).toMatch(/gave up after 3 attempt\(s\): HTTP 503/);
    expect(errors).toHaveBeenCalledWith(expect.stringMatching(/sink ".*" lost 20 summed record\(s\) after 3 attempt/));
  });

  it("a 429 with Retry-After is waited for and retried, then sent: counted sent once", async () => {
    const s = setup("ctl");
    await fetch(`${base}/__behave?label=${s.label}&mode=429&retryAfter=1&for=1`, { method: "POST" });
    await tailAll(invocations(6), s.env);
    const reqs = await received(s.label);
    expect(reqs.map((r) => r.answer)).toEqual([429, 200]);
    expect((reqs[1]?.at ?? 0) - (reqs[0]?.at ?? 0)).toBeGreaterThanOrEqual(900);
    expect((await statsOf(s.name))?.totals).toMatchObject({
      received: 12,
      sent: 12,
      failed: 0,
      pending: 0,
      requests: 2,
    });
  });

  it("a 4xx fails at once; a reason quoting the credentials is redacted everywhere", async () => {
    const s = setup("tattle/401", { headers: { authorization: "Bearer ${METRICS_TOKEN}" } });
    await tailAll(invocations(4), s.env);
    const reqs = await received(s.label);
    expect(reqs.map((r) => r.headers.authorization)).toEqual(["Bearer metrics-secret-0c9f2b7e41"]);
    const stats = await statsOf(s.name);
    expect(stats?.totals).toMatchObject({ received: 8, failed: 8, pending: 0, requests: 1 });
    // The backend's answer quoted the token; what tailfan keeps of it does not.
    expect(stats?.lastError?.message).toMatch(/HTTP 401: invalid credentials/);
    expect(JSON.stringify(stats)).not.toContain("metrics-secret-0c9f2b7e41");
    expect(JSON.stringify(errors.mock.calls)).not.toContain("metrics-secret-0c9f2b7e41");
    expect(JSON.stringify(errors.mock.calls)).toMatch(/lost 8 summed record/);
  });

  it("records of other kinds are droppedFilter, and a sink beside it is delivered as usual", async () => {
    const s = setup("ok");
    const name = uid("logs");
    const e = {
      ...s.env,
      SINKS: JSON.stringify([
        ...(JSON.parse(s.env.SINKS as string) as unknown[]),
        { name, type: "otlp", endpoint: `${base}/ok/${s.label}-logs`, gzip: false },
      ]),
    };
    const diag = {
      ...invocations(1)[0],
      diagnosticsChannelEvents: [{ channel: "db", message: { q: 1 }, timestamp: T0 + 3 }],
    };
    await tailAll([diag], e);
    expect((await statsOf(s.name))?.totals).toMatchObject({ received: 2, sent: 2, droppedFilter: 1 });
    expect((await statsOf(name))?.totals).toMatchObject({ received: 3, sent: 3 });
    expect(await received(`${s.label}-logs`)).toHaveLength(1);
  });
});

describe("otlp_metrics: buffered mode sums each queue() batch", () => {
  it("a batch of messages of many invocations is one request, counted exactly", async () => {
    const s = setup("ok", {}, { mode: "buffered", queue: "TAILFAN_QUEUE" });
    const items = serialized(invocations(30));
    const half = items.length / 2;
    const bodies = [items.slice(0, half), items.slice(half)].flatMap(
      (part) => toMessages({ v: 1, kind: "records", at: Date.now() }, part).bodies,
    );
    const batch = createMessageBatch(
      "tailfan-work",
      bodies.map((body, i) => ({ id: `m-${s.label}-${i}`, timestamp: new Date(), attempts: 1, body })),
    );
    await handleQueue(batch, s.env, FAST);
    const sent = await bodiesOf(s.label);
    expect(sent).toHaveLength(1);
    expect(sumOf(pointsOf(sent[0] ?? null, "faas.invocations"))).toBe(30);
    expect((await statsOf(s.name))?.totals).toMatchObject({ received: 60, sent: 60, pending: 0, requests: 1 });
  });
});

describe("otlp_metrics: a window whose opener's context ended", () => {
  afterEach(() => vi.useRealTimers());

  it("is taken over after STALE_MS by the next invocation, which sends it on its own timer; counts stay exact", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "Date"] });
    const label = uid("m-stale");
    const name = uid("metrics-stale");
    const { sink, limits } = makeSink(
      otlpMetricsSink,
      { endpoint: `${base}/ok/${label}`, gzip: false, flushMs: 1_000 },
      name,
    );
    const aggregation = sink.aggregate;
    if (aggregation === undefined) throw new Error("otlp_metrics sinks aggregate");
    const run = (n: number, stats: StatsBatch) => {
      const target: SinkTarget = { name, sink, batch: limits, items: serialized(invocations(n)) };
      const sc = { env: vars, delivery: DEFAULT_DELIVERY_CONFIG, stats, fromQueue: false, queueAttempts: 0 };
      return aggregateAndSettle(target, aggregation, sc, DEFAULT_DELIVERY);
    };
    // The opener's context ends before its timer fires: its counters (with its records) are never written.
    const [lost, joiner, taker] = [new StatsBatch(), new StatsBatch(), new StatsBatch()];
    let openerDone = false;
    const opener = run(3, lost).then((r) => {
      openerDone = true;
      return r;
    });
    expect(await run(2, joiner)).toMatchObject({ records: 4, pending: 4, delivered: 0 });
    vi.setSystemTime(Date.now() + STALE_MS + 1);
    const takeover = run(1, taker);
    await vi.advanceTimersByTimeAsync(1_000);
    vi.useRealTimers();
    const report = await takeover;
    expect(report).toMatchObject({ records: 2, delivered: 2 });
    expect(openerDone).toBe(true);
    expect(await opener).toMatchObject({ delivered: 0, pending: 6 });
    const [body, more] = await bodiesOf(label);
    expect(more).toBeUndefined();
    // The sums hold every invocation folded in, the lost opener's too.
    expect(sumOf(pointsOf(body ?? null, "faas.invocations"))).toBe(6);
    // What was written (joiner and taker) adds up: the taker settles the joiner's records and its own.
    const totals = (b: StatsBatch) => b.list().find((d) => d.sink === name)?.counts ?? {};
    const written = [joiner, taker].map(totals);
    const sum = (k: string) => written.reduce((n, t) => n + ((t as Record<string, number>)[k] ?? 0), 0);
    expect({ pending: sum("pending"), sent: sum("sent") }).toEqual({ pending: 0, sent: 6 });
    expect(openWindowCount()).toBe(0);
  });
});
