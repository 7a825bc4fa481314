/**
 * The local Analytics Engine binding (Miniflare's simulator) accepts
 * writeDataPoint and drops the point: nothing can be read back locally. So
 * these tests check encode's data points in detail against the documented
 * limits (wire/analytics-engine.ts), and that send calls the real local
 * binding without error.
 */
import { env } from "cloudflare:workers";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import {
  AE_BLOB_MAX_BYTES,
  AE_BLOBS,
  AE_DOUBLES,
  AE_MAX_INDEX_BYTES,
  AE_MAX_POINTS_PER_INVOCATION,
  type AeDataPoint,
  analyticsEngineSink,
  statusClass,
} from "../../sinks/analytics-engine";
import type { Sink } from "../../sinks/types";
import type { SerializedRecord } from "../../src/record";
import { sinkContract } from "./contract";
import { makeSink, must, serialized, someRecords, T0, traceItem, utf8 } from "./helpers";
import { validateAnalyticsEngine, validateDataPoint } from "./wire/analytics-engine";

sinkContract({
  def: analyticsEngineSink,
  valid: { binding: "LOGS_AE" },
  resolved: { binding: "LOGS_AE" },
  invalid: [
    { name: "a binding of the wrong type", options: { binding: 5 }, path: "binding" },
    { name: "a binding given as a list", options: { binding: ["LOGS_AE"] }, path: "binding" },
  ],
  rejecting: [
    { name: "the binding does not exist", options: { binding: "NO_SUCH_AE" } },
    { name: "the binding is not a dataset (a KV namespace)", options: { binding: "LOGS_KV" } },
  ],
  abortIsHonoured: false,
});

function sink(): Sink<AeDataPoint[]> {
  return makeSink<AeDataPoint[]>(analyticsEngineSink, { binding: "LOGS_AE" }).sink;
}

/** A sink over a fake dataset that keeps what it is given (or throws). */
function recordingSink(write: (p: AnalyticsEngineDataPoint) => void): Sink<AeDataPoint[]> {
  const options = v.parse(analyticsEngineSink.options, { binding: "FAKE_AE" });
  return analyticsEngineSink.create(options, { name: "fake", env: { FAKE_AE: { writeDataPoint: write } } });
}

const blob = (p: AeDataPoint, name: (typeof AE_BLOBS)[number]) => p.blobs[AE_BLOBS.indexOf(name)];
const double = (p: AeDataPoint, name: (typeof AE_DOUBLES)[number]) => p.doubles[AE_DOUBLES.indexOf(name)];

describe("analytics_engine sink: data points", () => {
  it("one point per invocation record, other record types skipped", () => {
    const records = serialized([
      traceItem({
        script: "shop-api",
        logs: [
          { level: "info", message: ["a"] },
          { level: "warn", message: ["b"] },
        ],
        exceptions: [{ name: "Error", message: "boom" }],
        outcome: "exception",
        status: 500,
      }),
      traceItem({ script: "shop-api", path: "/two" }),
    ]);
    expect(records.map((r) => r.record.type)).toEqual(["invocation", "log", "log", "exception", "invocation", "log"]);
    const points = sink().encode(records);
    expect(points).toHaveLength(2);
    expect(validateAnalyticsEngine(JSON.stringify(points))).toEqual([]);
  });

  it("puts every field at its documented position", () => {
    const records = serialized([
      traceItem({
        script: "shop-api",
        method: "POST",
        status: 503,
        outcome: "ok",
        logs: [
          { level: "log", message: ["x"] },
          { level: "error", message: ["y"] },
        ],
        exceptions: [{ name: "Error", message: "boom" }],
      }),
    ]);
    const inv = must(records[0]).record;
    expect(inv.type).toBe("invocation");
    const [point] = sink().encode(records);
    const p = must(point);
    expect(p).toEqual({
      blobs: ["shop-api", "ok", "fetch", "POST", "5xx", "DFW"],
      doubles: [1, 2, 2, 1, 503],
      indexes: ["shop-api"],
    });
    expect(blob(p, "statusClass")).toBe("5xx");
    expect(double(p, "cpuTime")).toBe(inv.cpuTime);
    expect(double(p, "wallTime")).toBe(inv.wallTime);
    expect(double(p, "logCount")).toBe(2);
    expect(double(p, "exceptionCount")).toBe(1);
    expect(double(p, "status")).toBe(503);
    expect(AE_BLOBS).toHaveLength(6);
    expect(AE_DOUBLES).toHaveLength(5);
  });

  it("absent values: empty blobs, 0 doubles (a scheduled event with no script name)", () => {
    const records = serialized([
      {
        ...traceItem({ logs: [] }),
        scriptName: null,
        event: { cron: "0 * * * *", scheduledTime: T0 },
      },
    ]);
    const [point] = sink().encode(records);
    expect(point).toEqual({ blobs: ["", "ok", "scheduled", "", "", ""], doubles: [1, 2, 0, 0, 0], indexes: [""] });
  });

  it.each([
    [200, "2xx"],
    [204, "2xx"],
    [301, "3xx"],
    [404, "4xx"],
    [599, "5xx"],
    [undefined, ""],
    [42, ""],
  ])("status %s → class %s", (status, cls) => {
    expect(statusClass(status)).toBe(cls);
  });

  it("a long multibyte script name is cut to 96 bytes in the index and 256 in the blob, never mid-character", () => {
    const script = `${"é".repeat(100)}🚀${"x".repeat(300)}`;
    const [point] = sink().encode(serialized([traceItem({ script })]));
    const p = must(point);
    const index = must(p.indexes[0]);
    expect(utf8(index)).toBeLessThanOrEqual(AE_MAX_INDEX_BYTES);
    expect(utf8(index)).toBeGreaterThanOrEqual(AE_MAX_INDEX_BYTES - 1);
    expect(script.startsWith(index)).toBe(true);
    expect(index).not.toMatch(/\uFFFD/);
    const b = must(p.blobs[0]);
    expect(utf8(b)).toBeLessThanOrEqual(AE_BLOB_MAX_BYTES);
    expect(script.startsWith(b)).toBe(true);
    // Cut between the surrogates of 🚀 would leave a lone high surrogate.
    expect(/[\uD800-\uDBFF]$/.test(b)).toBe(false);
    expect(validateDataPoint(p)).toEqual([]);
  });

  it("every point of a full batch is within the limits, and a batch never has more than 250 points", () => {
    const limits = analyticsEngineSink.batch(v.parse(analyticsEngineSink.options, { binding: "LOGS_AE" }));
    expect(limits.maxRecords).toBeLessThanOrEqual(AE_MAX_POINTS_PER_INVOCATION);
    const points = sink().encode(someRecords(limits.maxRecords, "x".repeat(1000)));
    expect(points.length).toBeLessThanOrEqual(AE_MAX_POINTS_PER_INVOCATION);
    expect(validateAnalyticsEngine(JSON.stringify(points))).toEqual([]);
  });
});

describe("analytics_engine sink: send", () => {
  it("writes to the real local binding without error", async () => {
    expect(typeof (env as unknown as { LOGS_AE: AnalyticsEngineDataset }).LOGS_AE.writeDataPoint).toBe("function");
    const s = sink();
    expect(await s.send(s.encode(someRecords(3, "ae-real")), AbortSignal.timeout(5_000))).toEqual({ outcome: "ok" });
  });

  it("an empty payload (no invocation records) is ok", async () => {
    const s = sink();
    const logsOnly = someRecords(2, "ae-logs").filter((r) => r.record.type === "log");
    const payload = s.encode(logsOnly);
    expect(payload).toEqual([]);
    expect(await s.send(payload, AbortSignal.timeout(5_000))).toEqual({ outcome: "ok" });
  });

  it("hands writeDataPoint exactly the encoded points, in order", async () => {
    const written: AnalyticsEngineDataPoint[] = [];
    const s = recordingSink((p) => written.push(p));
    const records: SerializedRecord[] = someRecords(4, "ae-order");
    const points = s.encode(records);
    expect(await s.send(points, AbortSignal.timeout(5_000))).toEqual({ outcome: "ok" });
    expect(written).toEqual(points);
    expect(validateAnalyticsEngine(JSON.stringify(written))).toEqual([]);
  });

  it("a writeDataPoint that throws fails the send with the runtime's reason", async () => {
    const s = recordingSink(() => {
      throw new TypeError("writeDataPoint(): Maximum of 20 blobs supported.");
    });
    const result = await s.send(s.encode(someRecords(1, "ae-throw")), AbortSignal.timeout(5_000));
    expect(result.outcome).toBe("fail");
    if (result.outcome === "fail") expect(result.reason).toContain("Maximum of 20 blobs supported");
  });
});

describe("analytics_engine wire validator", () => {
  const good: AeDataPoint = {
    blobs: ["shop-api", "ok", "fetch", "GET", "2xx", "DFW"],
    doubles: [1, 2, 3, 0, 200],
    indexes: ["shop-api"],
  };

  it("accepts a good point, a list of points, nulls and omitted fields", () => {
    expect(validateAnalyticsEngine(JSON.stringify(good))).toEqual([]);
    expect(validateAnalyticsEngine(JSON.stringify([good, good]))).toEqual([]);
    expect(validateAnalyticsEngine(JSON.stringify([{ blobs: [null, "x"], indexes: [null] }, {}]))).toEqual([]);
    expect(validateDataPoint({ blobs: ["x".repeat(16_000)] })).toEqual([]);
    expect(validateDataPoint({ indexes: ["x".repeat(96)] })).toEqual([]);
  });

  it.each([
    ["not JSON", "{blobs:", /not JSON/],
    ["a point that is not an object", JSON.stringify(["x"]), /not an object/],
    ["21 blobs", JSON.stringify({ blobs: Array(21).fill("b") }), /21 blobs, at most 20/],
    ["21 doubles", JSON.stringify({ doubles: Array(21).fill(1) }), /21 doubles, at most 20/],
    ["two indexes", JSON.stringify({ indexes: ["a", "b"] }), /2 indexes, at most 1/],
    ["an index over 96 bytes", JSON.stringify({ indexes: ["é".repeat(49)] }), /98 bytes, at most 96/],
    [
      "blobs over 16 KB in all",
      JSON.stringify({ blobs: ["x".repeat(8_000), "y".repeat(8_001)] }),
      /16001 bytes in all, at most 16000/,
    ],
    ["a number as a blob", JSON.stringify({ blobs: ["a", 7] }), /blobs\[1\]: not a string/],
    ["a string as a double", JSON.stringify({ doubles: [1, "2"] }), /doubles\[1\]: not a finite number/],
    ["blobs that are not an array", JSON.stringify({ blobs: "a,b" }), /blobs: not an array/],
    ["an unknown field", JSON.stringify({ ...good, timestamp: 1 }), /timestamp: not a data point field/],
    ["251 points in one invocation", JSON.stringify(Array(251).fill(good)), /251 data points, at most 250/],
  ])("rejects %s", (_name, body, problem) => {
    const problems = validateAnalyticsEngine(body);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toMatch(problem);
  });
});
