import * as v from "valibot";
import type { Level, LogRecord } from "../src/record";
import { VERSION } from "../src/version";
import { type KeyValue, otlpPost, resourceAttributes, unixNano } from "./otlp";
import { endpointOption, gzipOption, headersOption, postPayload } from "./shared";
import { type Aggregate, defineSink, type SendResult } from "./types";

/**
 * OTLP/HTTP metrics in the JSON encoding (opentelemetry-proto
 * `ExportMetricsServiceRequest`): invocation, exception and log line counts
 * and CPU and wall time histograms, per script and per set of attributes
 * (event type, outcome, status class), all with delta temporality. Records
 * are folded into a `MetricsAggregate` on arrival; only the sums are kept.
 */

/** OpenTelemetry `AggregationTemporality`: DELTA 1 (each request counts only its own window). */
export const DELTA = 1;

/**
 * Upper bounds of the CPU and wall time buckets, ms; sent in seconds as the
 * histograms' `explicitBounds`. A bucket counts the values above the bound
 * before it and up to its own (OTLP's rule); one more bucket holds the rest.
 */
export const DURATION_BOUNDS_MS: readonly number[] = [
  1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
];
const BOUNDS_S = DURATION_BOUNDS_MS.map((ms) => ms / 1000);

/** The records the sink folds in; the others say nothing it counts. */
export const COUNTED_TYPES: ReadonlySet<LogRecord["type"]> = new Set(["invocation", "exception", "log"]);

/** `faas.trigger` by event type, as the logs sink names it. */
const FAAS_TRIGGER: Readonly<Record<string, string>> = {
  fetch: "http",
  scheduled: "timer",
  alarm: "timer",
  queue: "pubsub",
};

/** `2xx` for 200 to 299 (and so on from 1xx to 5xx); `none` without an HTTP status. */
export function statusClass(status: number | undefined): string {
  if (status === undefined || !Number.isInteger(status) || status < 100 || status > 599) return "none";
  return `${Math.floor(status / 100)}xx`;
}

interface Histogram {
  count: number;
  sumMs: number;
  minMs: number;
  maxMs: number;
  buckets: number[];
}

const newHistogram = (): Histogram => ({
  count: 0,
  sumMs: 0,
  minMs: Number.POSITIVE_INFINITY,
  maxMs: Number.NEGATIVE_INFINITY,
  buckets: new Array<number>(DURATION_BOUNDS_MS.length + 1).fill(0),
});

function observe(h: Histogram, ms: number): void {
  const value = Number.isFinite(ms) && ms > 0 ? ms : 0;
  let i = 0;
  while (i < DURATION_BOUNDS_MS.length && value > (DURATION_BOUNDS_MS[i] as number)) i++;
  h.buckets[i] = (h.buckets[i] as number) + 1;
  h.count++;
  h.sumMs += value;
  if (value < h.minMs) h.minMs = value;
  if (value > h.maxMs) h.maxMs = value;
}

/** The sums of one attribute set of one script. */
interface Series {
  attributes: KeyValue[];
  invocations: number;
  exceptions: number;
  logs: Map<Level, number>;
  cpu: Histogram;
  wall: Histogram;
}

export interface NumberDataPoint {
  attributes: KeyValue[];
  startTimeUnixNano: string;
  timeUnixNano: string;
  asInt: string;
}

export interface HistogramDataPoint {
  attributes: KeyValue[];
  startTimeUnixNano: string;
  timeUnixNano: string;
  count: string;
  sum: number;
  bucketCounts: string[];
  explicitBounds: number[];
  min: number;
  max: number;
}

export type OtlpMetric = { name: string; description: string; unit: string } & (
  | { sum: { aggregationTemporality: number; isMonotonic: true; dataPoints: NumberDataPoint[] } }
  | { histogram: { aggregationTemporality: number; dataPoints: HistogramDataPoint[] } }
);

export interface OtlpMetricsRequest {
  resourceMetrics: {
    resource: { attributes: KeyValue[] };
    scopeMetrics: { scope: { name: string; version: string }; metrics: OtlpMetric[] }[];
  }[];
}

/** The metrics, in the order they are sent. */
export const METRICS = {
  invocations: { name: "faas.invocations", unit: "{invocation}", description: "Invocations of the Worker." },
  exceptions: {
    name: "cloudflare.exceptions",
    unit: "{exception}",
    description: "Uncaught exceptions the runtime reported.",
  },
  logLines: { name: "cloudflare.log_lines", unit: "{line}", description: "console.* lines, by level." },
  cpu: { name: "faas.cpu_usage", unit: "s", description: "CPU time per invocation." },
  wall: { name: "faas.invoke_duration", unit: "s", description: "Wall time per invocation." },
} as const;

const str = (key: string, value: string): KeyValue => ({ key, value: { stringValue: value } });

/**
 * One window's (or one batch's) metrics: records are folded in as they
 * come and not kept, so its size depends on the number of scripts and
 * attribute sets, not of records.
 */
export class MetricsAggregate {
  private readonly scripts = new Map<string | null, Map<string, Series>>();
  private first = Number.POSITIVE_INFINITY;
  private last = Number.NEGATIVE_INFINITY;
  /** Records folded in that counted in a metric. */
  records = 0;

  constructor(private readonly serviceName?: string) {}

  add(record: LogRecord): void {
    if (!COUNTED_TYPES.has(record.type)) return;
    const series = this.seriesOf(record);
    if (record.type === "invocation") {
      series.invocations++;
      observe(series.cpu, record.cpuTime);
      observe(series.wall, record.wallTime);
    } else if (record.type === "exception") series.exceptions++;
    else series.logs.set(record.level, (series.logs.get(record.level) ?? 0) + 1);
    this.records++;
    if (Number.isFinite(record.timestamp)) {
      if (record.timestamp < this.first) this.first = record.timestamp;
      if (record.timestamp > this.last) this.last = record.timestamp;
    }
  }

  private seriesOf(record: LogRecord): Series {
    const script = record.scriptName ?? null;
    let byAttributes = this.scripts.get(script);
    if (!byAttributes) {
      byAttributes = new Map();
      this.scripts.set(script, byAttributes);
    }
    const eventType = String(record.eventType);
    const outcome = String(record.outcome);
    const status = statusClass(record.status);
    const key = `${eventType}\u0000${outcome}\u0000${status}`;
    let series = byAttributes.get(key);
    if (!series) {
      series = {
        attributes: [
          str("faas.trigger", FAAS_TRIGGER[eventType] ?? "other"),
          str("cloudflare.event_type", eventType),
          str("cloudflare.outcome", outcome),
          str("cloudflare.status_class", status),
        ],
        invocations: 0,
        exceptions: 0,
        logs: new Map(),
        cpu: newHistogram(),
        wall: newHistogram(),
      };
      byAttributes.set(key, series);
    }
    return series;
  }

  /**
   * The request: one resourceMetrics per script, in order of first
   * appearance, each metric with a data point per attribute set that has a
   * count. The window runs from the first record's time to the last's.
   * Null when nothing was counted.
   */
  request(): OtlpMetricsRequest | null {
    if (this.records === 0) return null;
    const start = unixNano(this.first);
    const time = unixNano(Math.max(this.last, this.first));
    const at = { startTimeUnixNano: start, timeUnixNano: time };
    const count = (list: Series[], name: keyof typeof METRICS, n: (s: Series) => number): OtlpMetric[] => {
      const dataPoints = list
        .filter((s) => n(s) > 0)
        .map((s) => ({ attributes: s.attributes, ...at, asInt: String(n(s)) }));
      if (dataPoints.length === 0) return [];
      return [{ ...METRICS[name], sum: { aggregationTemporality: DELTA, isMonotonic: true, dataPoints } }];
    };
    const histogram = (list: Series[], name: "cpu" | "wall"): OtlpMetric[] => {
      const dataPoints = list
        .filter((s) => s[name].count > 0)
        .map((s) => {
          const h = s[name];
          return {
            attributes: s.attributes,
            ...at,
            count: String(h.count),
            sum: h.sumMs / 1000,
            bucketCounts: h.buckets.map(String),
            explicitBounds: BOUNDS_S,
            min: h.minMs / 1000,
            max: h.maxMs / 1000,
          };
        });
      if (dataPoints.length === 0) return [];
      return [{ ...METRICS[name], histogram: { aggregationTemporality: DELTA, dataPoints } }];
    };
    const logLines = (list: Series[]): OtlpMetric[] => {
      const dataPoints: NumberDataPoint[] = [];
      for (const s of list) {
        for (const [level, n] of s.logs) {
          dataPoints.push({
            attributes: [...s.attributes, str("cloudflare.log_level", level)],
            ...at,
            asInt: String(n),
          });
        }
      }
      if (dataPoints.length === 0) return [];
      return [{ ...METRICS.logLines, sum: { aggregationTemporality: DELTA, isMonotonic: true, dataPoints } }];
    };
    return {
      resourceMetrics: [...this.scripts].map(([script, byAttributes]) => {
        const list = [...byAttributes.values()];
        return {
          resource: { attributes: resourceAttributes(script, this.serviceName) },
          scopeMetrics: [
            {
              scope: { name: "tailfan", version: VERSION },
              metrics: [
                ...count(list, "invocations", (s) => s.invocations),
                ...count(list, "exceptions", (s) => s.exceptions),
                ...logLines(list),
                ...histogram(list, "cpu"),
                ...histogram(list, "wall"),
              ],
            },
          ],
        };
      }),
    };
  }
}

export interface OtlpMetricsPayload {
  /** Null when nothing was counted: nothing is sent. */
  body: string | null;
  /** Records the request sums up. */
  records: number;
}

function payloadOf(aggregate: MetricsAggregate): OtlpMetricsPayload {
  const request = aggregate.request();
  return { body: request === null ? null : JSON.stringify(request), records: aggregate.records };
}

/** The request for a batch of records, as one window would send it (records it does not count are skipped). */
export function otlpMetricsRequest(
  records: readonly { record: LogRecord }[],
  serviceName?: string,
): OtlpMetricsRequest | null {
  const aggregate = new MetricsAggregate(serviceName);
  for (const { record } of records) aggregate.add(record);
  return aggregate.request();
}

/** The default window, and the longest: a flush and its retries must end inside the opener's waitUntil. */
export const FLUSH_MS = { default: 10_000, max: 15_000 } as const;

/** Batch limits of the queue() path: metrics do not grow with the records, so one batch is one request. */
const BATCH = { maxRecords: 100_000, maxBytes: 100 * 1024 * 1024 } as const;

export const otlpMetricsSink = defineSink({
  type: "otlp_metrics",
  description:
    "Sends invocation, exception and log line counts and CPU and wall time histograms as OTLP/HTTP JSON metrics, summed per isolate over a window.",
  options: v.strictObject({
    /** Base URL of the OTLP/HTTP receiver, e.g. `https://otel.example.com:4318`; `/v1/metrics` is appended. Required. */
    endpoint: endpointOption.required,
    /** Extra request headers (auth, tenant); values may reference secrets as `${NAME}`. Default none. */
    headers: headersOption,
    /** `service.name` of every resource. Default: the producer's script name, else `tailfan`. */
    serviceName: v.optional(v.pipe(v.string(), v.minLength(1, "must not be empty"))),
    gzip: gzipOption(true),
    /**
     * How long an isolate sums invocations before one request, ms; 0 sends
     * one per invocation. Default 10000, at most 15000 (the send and its
     * retries must fit in the waitUntil of the invocation that opened the window).
     */
    flushMs: v.optional(
      v.pipe(
        v.number(),
        v.integer("must be an integer"),
        v.minValue(0, "must be 0 or more ms"),
        v.maxValue(FLUSH_MS.max, `must be at most ${FLUSH_MS.max} ms (waitUntil ends about 30 s after the invocation)`),
      ),
      FLUSH_MS.default,
    ),
  }),
  batch: () => ({ ...BATCH }),
  // Spans and diagnostics channel events count in no metric: droppedFilter, not sent.
  takes: () => (record) => COUNTED_TYPES.has(record.type),
  create(o, ctx) {
    const post = otlpPost(ctx.name, "metrics", o);
    return {
      encode(batch): OtlpMetricsPayload {
        const aggregate = new MetricsAggregate(o.serviceName);
        for (const { record } of batch) aggregate.add(record);
        return payloadOf(aggregate);
      },
      async send(payload, signal): Promise<SendResult> {
        if (payload.body === null) return { outcome: "ok" };
        return postPayload({ ...post, body: payload.body }, signal);
      },
      aggregate: {
        key: JSON.stringify([o.endpoint, o.headers, o.serviceName ?? null, o.gzip, o.flushMs]),
        windowMs: o.flushMs,
        open(): Aggregate<OtlpMetricsPayload> {
          const aggregate = new MetricsAggregate(o.serviceName);
          return { add: (record) => aggregate.add(record), encode: () => payloadOf(aggregate) };
        },
      },
    };
  },
});
