import * as v from "valibot";
import { describe, expect, it } from "vitest";
import {
  batchFromOptions,
  batchOptions,
  belowBytes,
  endpointOption,
  gzip,
  headersOption,
  itemResults,
} from "../../sinks/shared";

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

describe("gzip", () => {
  const gunzip = async (bytes: Uint8Array) =>
    new Uint8Array(
      await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer(),
    );

  it("round-trips an empty body, text with non-ASCII characters, bytes, and a body of several MiB", async () => {
    let big = "";
    for (let i = 0; big.length < 5 * 1024 * 1024; i++) big += `{"i":${i},"m":"line ${(i * 7919) % 100_003} é 🎉"}\n`;
    const enc = new TextEncoder();
    for (const body of ["", "héllo wörld 🎉", big]) {
      const zipped = await gzip(body);
      expect([zipped[0], zipped[1]]).toEqual([0x1f, 0x8b]);
      expect(new TextDecoder().decode(await gunzip(zipped))).toBe(body);
    }
    const bytes = enc.encode("raw bytes");
    expect(await gunzip(await gzip(bytes))).toEqual(bytes);
    expect((await gzip(big)).byteLength).toBeLessThan(big.length / 3);
  });

  it("the same text gzipped twice, at once or one after the other, gives equal bytes in separate buffers", async () => {
    const body = '{"id":"a","message":"same NDJSON for two sinks"}\n'.repeat(50);
    const [a, b] = await Promise.all([gzip(body), gzip(body)]);
    const c = await gzip(body);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    expect(new Set([a.buffer, b.buffer, c.buffer]).size).toBe(3);
    // A caller that reuses its buffer does not change what the next one gets.
    a.fill(0);
    expect(new TextDecoder().decode(await gunzip(await gzip(body)))).toBe(body);
    // A different text is compressed anew.
    const other = `${body}one more line\n`;
    expect(new TextDecoder().decode(await gunzip(await gzip(other)))).toBe(other);
    expect(new TextDecoder().decode(await gunzip(await gzip(body)))).toBe(body);
  });
});

describe("belowBytes", () => {
  it("counts UTF-8 bytes, not characters; no threshold (undefined or 0) is never below", () => {
    expect(belowBytes("abc", 4)).toBe(true);
    expect(belowBytes("abcd", 4)).toBe(false);
    // Two characters, six bytes.
    expect(belowBytes("€€", 6)).toBe(false);
    expect(belowBytes("€€", 7)).toBe(true);
    expect(belowBytes("", undefined)).toBe(false);
    expect(belowBytes("", 0)).toBe(false);
  });
});
