import { describe, expect, it } from "vitest";
import { type R2Payload, r2Sink } from "../../sinks/r2";
import { ndjson } from "../../sinks/shared";
import { sinkContract } from "./contract";
import {
  asJson,
  bindings,
  gunzipText,
  makeSink,
  must,
  parseNdjson,
  serialized,
  someRecords,
  traceItem,
  uid,
} from "./helpers";

sinkContract({
  def: r2Sink,
  valid: { binding: "LOGS_R2" },
  resolved: {
    binding: "LOGS_R2",
    prefix: "logs",
    format: "ndjson",
    gzip: true,
    maxRecords: 100_000,
    maxBytes: 10 * 1024 * 1024,
  },
  invalid: [
    { name: "a binding of the wrong type", options: { binding: null }, path: "binding" },
    { name: "gzip as a string", options: { binding: "LOGS_R2", gzip: "true" }, path: "gzip" },
    { name: "a prefix with a backslash", options: { binding: "LOGS_R2", prefix: "logs\\x" }, path: "prefix" },
    { name: "maxBytes below 1024", options: { binding: "LOGS_R2", maxBytes: 10 }, path: "maxBytes" },
    { name: "fractional maxRecords", options: { binding: "LOGS_R2", maxRecords: 1.5 }, path: "maxRecords" },
  ],
  rejecting: [
    { name: "the binding does not exist", options: { binding: "NO_SUCH_BUCKET" } },
    { name: "the binding is not a bucket (a queue)", options: { binding: "LOGS_QUEUE" } },
    // The real local R2 refuses object names over 1024 bytes.
    { name: "real R2 rejects the object name", options: { binding: "LOGS_R2", prefix: "p".repeat(1100) } },
  ],
  abortIsHonoured: false,
});

// 2024-12-31 23:59:58.250 UTC: records of one batch straddle the new year.
const EVE = Date.UTC(2024, 11, 31, 23, 59, 58, 250);

/** Two invocations; the batch's first record is NOT its earliest. */
function straddlingBatch(script: string) {
  const later = serialized([
    traceItem({
      script,
      path: "/later",
      eventTimestamp: EVE + 5_000,
      logs: [{ level: "info", message: ["after midnight"] }],
    }),
  ]);
  const earlier = serialized([
    traceItem({
      script,
      path: "/earlier",
      eventTimestamp: EVE,
      logs: [
        { level: "warn", message: ["before midnight"], at: 10 },
        { level: "error", message: ["much later"], at: 9_000 },
      ],
    }),
  ]);
  const records = [...later, ...earlier];
  const start = EVE;
  const end = EVE + 9_000;
  return { records, start, end, firstId: must(later[0]).record.id };
}

describe("r2 sink: writes to the real local R2", () => {
  it("gzip (default): key from the earliest record's UTC hour, gzip NDJSON body, metadata", async () => {
    const prefix = uid("r2gz");
    const { records, start, end, firstId } = straddlingBatch("shop-api");
    const { sink } = makeSink<R2Payload>(r2Sink, { binding: "LOGS_R2", prefix });
    const result = await sink.send(sink.encode(records), AbortSignal.timeout(5_000));
    expect(result.outcome).toBe("ok");

    const listed = await bindings.LOGS_R2.list({ prefix: `${prefix}/` });
    const expectedKey = `${prefix}/2024/12/31/23/${start}_${end}_${firstId}.ndjson.gz`;
    expect(listed.objects.map((o) => o.key)).toEqual([expectedKey]);

    const obj = await bindings.LOGS_R2.get(expectedKey);
    expect(obj).not.toBeNull();
    expect(must(obj).httpMetadata?.contentEncoding).toBe("gzip");
    expect(must(obj).httpMetadata?.contentType).toBe("application/x-ndjson");
    expect(must(obj).customMetadata).toEqual({
      count: String(records.length),
      start: String(start),
      end: String(end),
      scripts: "shop-api",
    });
    const raw = new Uint8Array(await must(obj).arrayBuffer());
    // Really gzip: the magic bytes, not plain text with a gzip label.
    expect([raw[0], raw[1]]).toEqual([0x1f, 0x8b]);
    const text = await gunzipText(raw);
    expect(text).toBe(ndjson(records));
    expect(parseNdjson(text)).toEqual(asJson(records));
  });

  it("gzip=false: `.ndjson` key, plain NDJSON body, no Content-Encoding", async () => {
    const prefix = uid("r2plain");
    const { records, start, end, firstId } = straddlingBatch("shop-api");
    const { sink } = makeSink<R2Payload>(r2Sink, { binding: "LOGS_R2", prefix, gzip: false });
    expect((await sink.send(sink.encode(records), AbortSignal.timeout(5_000))).outcome).toBe("ok");
    const key = `${prefix}/2024/12/31/23/${start}_${end}_${firstId}.ndjson`;
    const obj = await bindings.LOGS_R2.get(key);
    expect(obj, `object ${key}`).not.toBeNull();
    expect(must(obj).httpMetadata?.contentEncoding).toBeUndefined();
    expect(must(obj).httpMetadata?.contentType).toBe("application/x-ndjson");
    const text = await must(obj).text();
    expect(text).toBe(ndjson(records));
    expect(parseNdjson(text)).toEqual(asJson(records));
  });

  it("key parts are zero-padded UTC, a trailing slash on the prefix is not doubled", () => {
    const records = serialized([traceItem({ eventTimestamp: Date.UTC(2026, 0, 2, 3, 4, 5, 6), logs: [] })]);
    const { sink } = makeSink<R2Payload>(r2Sink, { binding: "LOGS_R2", prefix: "archive/tail/" });
    const t = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
    expect(sink.encode(records).key).toBe(
      `archive/tail/2026/01/02/03/${t}_${t}_${must(records[0]).record.id}.ndjson.gz`,
    );
  });

  it("scripts metadata lists each script once, sorted, with slashes made safe", () => {
    const records = serialized([
      traceItem({ script: "zeta", path: "/1" }),
      traceItem({ script: "alpha/beta", path: "/2" }),
      traceItem({ script: "zeta", path: "/3" }),
    ]);
    const { sink } = makeSink<R2Payload>(r2Sink, { binding: "LOGS_R2" });
    expect(sink.encode(records).customMetadata.scripts).toBe("alpha_beta,zeta");
  });

  it("different batches get different keys (no overwrite)", async () => {
    const prefix = uid("r2multi");
    const records = someRecords(6, "shop-api");
    const { sink } = makeSink<R2Payload>(r2Sink, { binding: "LOGS_R2", prefix });
    for (const batch of [records.slice(0, 4), records.slice(4, 8), records.slice(8)]) {
      expect((await sink.send(sink.encode(batch), AbortSignal.timeout(5_000))).outcome).toBe("ok");
    }
    const listed = await bindings.LOGS_R2.list({ prefix: `${prefix}/`, include: ["customMetadata"] });
    expect(listed.objects).toHaveLength(3);
    const counts = listed.objects.map((o) => Number(o.customMetadata?.count)).sort();
    expect(counts).toEqual([4, 4, 4]);
  });
});
