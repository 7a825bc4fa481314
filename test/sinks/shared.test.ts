import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { batchFromOptions, batchOptions, endpointOption, headersOption, itemResults } from "../../sinks/shared";

describe("itemResults", () => {
  const base = { count: 4, reason: "2 refused", status: 200 };

  it("nothing refused is ok, with the status", () => {
    expect(itemResults({ ...base, retry: [], fail: [] })).toStrictEqual({ outcome: "ok", status: 200 });
    expect(itemResults({ count: 1, retry: [], fail: [], reason: "" })).toStrictEqual({ outcome: "ok" });
  });

  it("every record to retry is retry, every one refused is fail", () => {
    expect(itemResults({ ...base, retry: [0, 1, 2, 3], fail: [] })).toStrictEqual({
      outcome: "retry",
      reason: "2 refused",
      status: 200,
    });
    expect(itemResults({ ...base, retry: [], fail: [0, 1, 2, 3] })).toStrictEqual({
      outcome: "fail",
      reason: "2 refused",
      status: 200,
    });
  });

  it("a whole answer given is returned as is", () => {
    const own = { outcome: "retry", reason: "HTTP 429", status: 429, retryAfterMs: 5000 } as const;
    expect(itemResults({ ...base, retry: [0, 1, 2, 3], fail: [], whole: { retry: own } })).toBe(own);
  });

  it("anything between is partial with the indices, and a delay only when given", () => {
    expect(itemResults({ ...base, retry: [1], fail: [3] })).toStrictEqual({
      outcome: "partial",
      retry: [1],
      fail: [3],
      reason: "2 refused",
      status: 200,
    });
    expect(itemResults({ ...base, retry: [1], fail: [], retryAfterMs: 2000 })).toMatchObject({
      outcome: "partial",
      retryAfterMs: 2000,
    });
  });
});

describe("shared option blocks", () => {
  const schema = v.strictObject({
    endpoint: endpointOption.withDefault("https://api.example.com"),
    headers: headersOption,
    ...batchOptions({ maxRecords: 500, maxBytes: 2048 }, { maxRecords: 1000 }),
  });

  it("give each sink its own defaults and bounds", () => {
    const o = v.parse(schema, {});
    expect(o).toEqual({ endpoint: "https://api.example.com", headers: {}, maxRecords: 500, maxBytes: 2048 });
    expect(v.safeParse(schema, { maxRecords: 1001 }).success).toBe(false);
    expect(v.safeParse(schema, { maxRecords: 1000 }).success).toBe(true);
    expect(v.safeParse(schema, { maxBytes: 1023 }).success).toBe(false);
    expect(batchFromOptions(4096)(o)).toEqual({ maxRecords: 500, maxBytes: 2048, maxRecordBytes: 4096 });
    expect(batchFromOptions()(o)).toStrictEqual({ maxRecords: 500, maxBytes: 2048 });
  });

  it("endpoint takes http(s) only; header names and values are checked", () => {
    expect(v.safeParse(schema, { endpoint: "ftp://example.com" }).success).toBe(false);
    expect(v.safeParse(schema, { headers: { "bad name": "x" } }).success).toBe(false);
    expect(v.safeParse(schema, { headers: { "x-ok": "a\r\nb" } }).success).toBe(false);
    expect(v.safeParse(schema, { headers: { "x-ok": "Bearer ${TOKEN}" } }).success).toBe(true);
  });
});
