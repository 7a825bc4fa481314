import * as v from "valibot";
import { describeError, truncateUtf8 } from "./shared";
import { defineSink, type LogRecord } from "./types";

/**
 * Analytics Engine limits (https://developers.cloudflare.com/analytics/analytics-engine/limits/):
 * "up to twenty blobs, twenty doubles, and one index per call to writeDataPoint";
 * "The total size of all blobs ... must not exceed 16 KB" per data point;
 * "Each index must not be more than 96 bytes";
 * "a maximum of 250 data points per Worker invocation".
 */
export const AE_MAX_BLOBS = 20;
export const AE_MAX_DOUBLES = 20;
export const AE_MAX_INDEX_BYTES = 96;
export const AE_MAX_BLOB_BYTES_TOTAL = 16_000;
export const AE_MAX_POINTS_PER_INVOCATION = 250;
/**
 * Each blob is cut to this many UTF-8 bytes: 6 × 256 stays within the
 * documented 16 KB and also within the 5120 bytes (256 × 20) that workerd's
 * own check (`MAX_CUMULATIVE_BYTES_IN_BLOBS`) has enforced in some versions.
 */
export const AE_BLOB_MAX_BYTES = 256;

/** Blob positions: `blob1` is the script, ... (SQL API column names). */
export const AE_BLOBS = ["script", "outcome", "eventType", "method", "statusClass", "colo"] as const;
/** Double positions: `double1` is cpuTime, ... */
export const AE_DOUBLES = ["cpuTime", "wallTime", "logCount", "exceptionCount", "status"] as const;

/** One data point, as `writeDataPoint` takes it (strings only, so it is plain data). */
export interface AeDataPoint {
  blobs: string[];
  doubles: number[];
  indexes: [string];
}

function num(x: unknown): number {
  return typeof x === "number" && Number.isFinite(x) ? x : 0;
}

/** `"2xx"` for 204; `""` when there is no status. */
export function statusClass(status: unknown): string {
  return typeof status === "number" && status >= 100 && status <= 599 ? `${Math.floor(status / 100)}xx` : "";
}

/** The data point for one invocation record. */
export function toDataPoint(record: LogRecord & { type: "invocation" }): AeDataPoint {
  const script = record.scriptName ?? "";
  const blobs = [
    script,
    record.outcome,
    record.eventType,
    record.method ?? "",
    statusClass(record.status),
    record.colo ?? "",
  ].map((b) => truncateUtf8(b, AE_BLOB_MAX_BYTES));
  return {
    blobs,
    doubles: [
      num(record.cpuTime),
      num(record.wallTime),
      num(record.logCount),
      num(record.exceptionCount),
      num(record.status),
    ],
    indexes: [truncateUtf8(script, AE_MAX_INDEX_BYTES)],
  };
}

export const analyticsEngineSink = defineSink({
  type: "analytics_engine",
  description:
    "Writes one Workers Analytics Engine data point per invocation (script, outcome, status, CPU and wall time, counts).",
  options: v.strictObject({
    /** Name of the Analytics Engine dataset binding in wrangler.toml. Required. */
    binding: v.string(),
  }),
  // Only invocation records become points; at most 250 records per payload keeps a payload within
  // the 250 data points one Worker invocation may write.
  batch: () => ({ maxRecords: AE_MAX_POINTS_PER_INVOCATION, maxBytes: 8 * 1024 * 1024 }),
  bindings: (o) => [{ option: "binding", name: o.binding, kind: "analytics_engine" }],
  create(o, ctx) {
    const dataset = ctx.env[o.binding] as AnalyticsEngineDataset | undefined;
    return {
      encode(batch): AeDataPoint[] {
        const points: AeDataPoint[] = [];
        for (const { record } of batch) if (record.type === "invocation") points.push(toDataPoint(record));
        return points;
      },
      async send(points) {
        if (typeof dataset?.writeDataPoint !== "function") {
          return { outcome: "fail", reason: `binding "${o.binding}" is not an Analytics Engine dataset` };
        }
        try {
          // Fire and forget: the runtime queues the write; a throw means the point itself was refused.
          for (const point of points)
            dataset.writeDataPoint({ blobs: point.blobs, doubles: point.doubles, indexes: point.indexes });
          return { outcome: "ok" };
        } catch (err) {
          return { outcome: "fail", reason: `Analytics Engine writeDataPoint failed: ${describeError(err)}` };
        }
      },
    };
  },
});
