/**
 * The otlp_metrics sink on the wire and end to end. Its JSON, from records
 * the real normalizer makes of every captured and synthetic TraceItem
 * fixture, is decoded through the official `ExportMetricsServiceRequest`
 * protobuf type. Then a real producer Worker in Miniflare is hit 50 times,
 * tailed by tailfan in direct mode: the invocations of tailfan's isolate
 * share a window, so the local receiver gets one request (or very few) whose
 * decoded counts are exactly those of the 50 invocations, and GET /status
 * counts every record sent.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SerializedRecord } from "../../src/record";
import { type Receiver, startReceiver } from "../support/receiver";
import { type Bundle, bundleTailfan, until } from "./helpers";
import { type DecodedMetrics, decodeMetrics, metricsProblems, pointsOf } from "./metrics-wire";

/** Loaded at run time, as in otlp-wire.test.ts: a static import would type-check sinks/shared.ts against the DOM lib. */
const load = async <T>(path: string) => (await import(/* @vite-ignore */ path)) as T;
const { otlpMetricsSink, DURATION_BOUNDS_MS } = await load<{
  otlpMetricsSink: {
    options: v.GenericSchema;
    create(
      o: unknown,
      ctx: { name: string; env: Record<string, unknown> },
    ): {
      encode(batch: readonly SerializedRecord[]): { body: string | null };
    };
  };
  DURATION_BOUNDS_MS: number[];
}>("../../sinks/otlp-metrics");
const { normalizeTraceItems } = await load<{ normalizeTraceItems(items: unknown[]): unknown[] }>("../../src/normalize");
const { serializeRecord } = await load<{ serializeRecord(r: unknown): SerializedRecord }>("../../src/json");

function fixtureItems(file: string): unknown[] {
  const json = JSON.parse(readFileSync(join(import.meta.dirname, "../fixtures", file), "utf8")) as Record<
    string,
    unknown
  >;
  return Object.entries(json)
    .filter(([k]) => !k.startsWith("_"))
    .map(([, item]) => item);
}

const records = normalizeTraceItems([
  ...fixtureItems("trace-items.json"),
  ...fixtureItems("trace-items.synthetic.json"),
]).map(serializeRecord);

function encode(batch: readonly SerializedRecord[], raw: Record<string, unknown> = {}): string {
  const options = v.parse(otlpMetricsSink.options, { endpoint: "http://127.0.0.1:1", ...raw });
  return otlpMetricsSink.create(options, { name: "wire", env: {} }).encode(batch).body ?? "";
}

const total = (m: DecodedMetrics, name: string, where: Record<string, unknown> = {}) =>
  pointsOf(m, name)
    .filter((p) => Object.entries(where).every(([k, x]) => p.attrs[k] === x))
    .reduce((n, p) => n + Number(p.asInt ?? p.count), 0);

describe("otlp_metrics: wire format against the official protobuf types", () => {
  it("the metrics of every fixture record decode as an ExportMetricsServiceRequest with every field kept", () => {
    const body = encode(records);
    expect(metricsProblems(body)).toEqual([]);
    expect(metricsProblems(encode(records, { serviceName: "shop" }))).toEqual([]);
    for (const r of records) {
      if (["invocation", "log", "exception"].includes(r.record.type)) expect(metricsProblems(encode([r]))).toEqual([]);
    }
  });

  it("decoded, the counts are the records': invocations, exceptions, log lines, histogram counts", () => {
    const m = decodeMetrics(encode(records));
    const of = (type: string) => records.filter((r) => r.record.type === type).length;
    expect(total(m, "faas.invocations")).toBe(of("invocation"));
    expect(total(m, "cloudflare.exceptions")).toBe(of("exception"));
    expect(total(m, "cloudflare.log_lines")).toBe(of("log"));
    expect(total(m, "faas.cpu_usage")).toBe(of("invocation"));
    expect(total(m, "faas.invoke_duration")).toBe(of("invocation"));
    const cpuMs = records.reduce((n, r) => n + (r.record.type === "invocation" ? r.record.cpuTime : 0), 0);
    expect(pointsOf(m, "faas.cpu_usage").reduce((n, p) => n + (p.sum ?? 0), 0)).toBeCloseTo(cpuMs / 1000, 9);
    for (const p of pointsOf(m, "faas.invoke_duration")) {
      expect(p.metric.histogram?.aggregationTemporality).toBe("AGGREGATION_TEMPORALITY_DELTA");
      expect(p.explicitBounds).toEqual(DURATION_BOUNDS_MS.map((ms) => ms / 1000));
      expect(p.bucketCounts?.reduce((n, c) => n + Number(c), 0)).toBe(Number(p.count));
      expect(p.metric.unit).toBe("s");
    }
    for (const p of pointsOf(m, "faas.invocations")) {
      expect(p.metric.sum).toMatchObject({
        aggregationTemporality: "AGGREGATION_TEMPORALITY_DELTA",
        isMonotonic: true,
      });
      expect(Object.keys(p.attrs)).toEqual([
        "faas.trigger",
        "cloudflare.event_type",
        "cloudflare.outcome",
        "cloudflare.status_class",
      ]);
      expect(BigInt(p.timeUnixNano)).toBeGreaterThanOrEqual(BigInt(p.startTimeUnixNano));
    }
  });

  it("the validator refuses a body with a field protobuf does not know, and a count that is not an integer", () => {
    const good = JSON.parse(encode(records.slice(0, 6))) as {
      resourceMetrics: { scopeMetrics: { metrics: Record<string, { dataPoints: Record<string, unknown>[] }>[] }[] }[];
    };
    const metric = good.resourceMetrics[0]?.scopeMetrics[0]?.metrics[0] as Record<string, unknown>;
    const renamed = structuredClone(good);
    const m = renamed.resourceMetrics[0]?.scopeMetrics[0]?.metrics[0] as Record<string, unknown>;
    m.gauge_points = m.sum;
    delete m.sum;
    expect(metricsProblems(JSON.stringify(renamed)).join("\n")).toMatch(/gauge_points|sum/);
    expect(metric).toHaveProperty("sum");
    const fractional = structuredClone(good);
    const point = fractional.resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]?.sum?.dataPoints[0] as Record<
      string,
      unknown
    >;
    point.asInt = "1.5";
    expect(metricsProblems(JSON.stringify(fractional))).not.toEqual([]);
  });
});

const ADMIN_TOKEN = "metrics-e2e-admin-token";
const INVOCATIONS = { "/ok": 30, "/404": 10, "/500": 5, "/throw": 5 } as const;

describe("otlp_metrics end to end: 50 invocations of a real producer", () => {
  let mf: Miniflare;
  let receiver: Receiver;
  let bundle: Bundle;

  beforeAll(async () => {
    receiver = await startReceiver();
    bundle = await bundleTailfan();
    mf = new Miniflare(
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
              SINKS: JSON.stringify([
                { name: "metrics", type: "otlp_metrics", endpoint: `${receiver.url}/ok/metrics`, flushMs: 5_000 },
              ]),
              DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", statsFlushMs: 0, statsShards: 1 }),
              ADMIN_TOKEN,
            },
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

  it("one request (or very few) carries exactly the counts of the 50 invocations, and every record is counted sent", async () => {
    const paths = Object.entries(INVOCATIONS).flatMap(([path, n]) => Array.from({ length: n }, () => path));
    let next = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (next < paths.length) {
          const i = next++;
          const res = await mf.dispatchFetch(`http://localhost${paths[i]}?n=${i}`);
          await res.arrayBuffer();
        }
      }),
    );
    const decoded = () =>
      receiver.received.filter((r) => r.label === "metrics" && r.answer === 200).map((r) => decodeMetrics(r.body));
    const all = await until(
      "the metrics of 50 invocations",
      decoded,
      (ms) => ms.reduce((n, m) => n + total(m, "faas.invocations"), 0) >= 50,
      30_000,
    );
    const sum = (name: string, where: Record<string, unknown> = {}) =>
      all.reduce((n, m) => n + total(m, name, where), 0);
    console.log(`otlp_metrics: 50 invocations gave ${all.length} metrics request(s)`);
    expect(all.length).toBeLessThanOrEqual(3);
    for (const r of receiver.received) expect(r.path).toBe("/ok/metrics/v1/metrics");
    expect(sum("faas.invocations")).toBe(50);
    expect(sum("faas.invocations", { "cloudflare.outcome": "ok", "cloudflare.status_class": "2xx" })).toBe(30);
    expect(sum("faas.invocations", { "cloudflare.status_class": "4xx" })).toBe(10);
    expect(sum("faas.invocations", { "cloudflare.outcome": "ok", "cloudflare.status_class": "5xx" })).toBe(5);
    expect(sum("faas.invocations", { "cloudflare.outcome": "exception" })).toBe(5);
    expect(sum("cloudflare.exceptions")).toBe(5);
    // /ok and /throw log one console.log line each, /500 one console.error; /404 none.
    expect(sum("cloudflare.log_lines", { "cloudflare.log_level": "log" })).toBe(35);
    expect(sum("cloudflare.log_lines", { "cloudflare.log_level": "error" })).toBe(5);
    expect(sum("faas.invoke_duration")).toBe(50);
    expect(sum("faas.cpu_usage")).toBe(50);
    // One producer, one resource, named as the logs sink names it (local workerd may give no script name).
    for (const m of all) {
      const resources = m.resourceMetrics.map((rm) =>
        Object.fromEntries(rm.resource.attributes.map((a) => [a.key, a.value.stringValue])),
      );
      expect(resources).toHaveLength(1);
      expect(resources[0]).toMatchObject({ "cloud.provider": "cloudflare", "cloud.platform": "cloudflare.workers" });
      expect(resources[0]?.["service.name"]).toMatch(/^(producer|tailfan)$/);
    }
    const tailfan = await mf.getWorker("tailfan");
    const status = await until(
      "every record counted",
      async () =>
        (await (
          await tailfan.fetch("http://tailfan/status", { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
        ).json()) as { sinks: { sink: string; totals: Record<string, number>; unaccounted: number }[] },
      (s) => {
        const t = s.sinks?.find((x) => x.sink === "metrics")?.totals;
        return t !== undefined && t.received === 95 && t.pending === 0;
      },
      15_000,
      (s) => JSON.stringify(s.sinks),
    );
    const metrics = status.sinks.find((s) => s.sink === "metrics");
    expect(metrics?.totals).toMatchObject({ received: 95, sent: 95, failed: 0, pending: 0, requests: all.length });
    expect(metrics?.unaccounted).toBe(0);
  });
});
