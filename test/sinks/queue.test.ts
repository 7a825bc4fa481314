import { describe, expect, it } from "vitest";
import {
  QUEUE_MAX_BATCH_BYTES,
  QUEUE_MAX_BATCH_MESSAGES,
  QUEUE_MAX_MESSAGE_BYTES,
  type QueuePayload,
  queueSink,
} from "../../sinks/queue";
import { splitBatches } from "../../src/delivery/batch";
import type { SerializedRecord } from "../../src/record";
import { sinkContract } from "./contract";
import { asJson, bigRecords, makeSink, must, someRecords, utf8 } from "./helpers";

sinkContract({
  def: queueSink,
  valid: { binding: "LOGS_QUEUE" },
  resolved: { binding: "LOGS_QUEUE", delaySeconds: 0 },
  invalid: [
    { name: "a binding of the wrong type", options: { binding: ["LOGS_QUEUE"] }, path: "binding" },
    { name: "delaySeconds as a string", options: { binding: "LOGS_QUEUE", delaySeconds: "5" }, path: "delaySeconds" },
    { name: "negative delaySeconds", options: { binding: "LOGS_QUEUE", delaySeconds: -1 }, path: "delaySeconds" },
    { name: "delaySeconds over 12 h", options: { binding: "LOGS_QUEUE", delaySeconds: 43_201 }, path: "delaySeconds" },
  ],
  rejecting: [
    { name: "the binding does not exist", options: { binding: "NO_SUCH_QUEUE" } },
    { name: "the binding is not a queue (a KV namespace)", options: { binding: "LOGS_KV" } },
  ],
  abortIsHonoured: false,
});

/** What the runtime counts for one message: its JSON body. */
const messageBytes = (m: MessageSendRequest<unknown>) => utf8(JSON.stringify(m.body));

/** Asserts every sendBatch call is within the Queue limits and the chunks carry exactly the records, in order. */
function expectWithinLimits(chunks: QueuePayload, records: readonly SerializedRecord[]) {
  for (const chunk of chunks) {
    expect(chunk.length).toBeGreaterThan(0);
    expect(chunk.length).toBeLessThanOrEqual(QUEUE_MAX_BATCH_MESSAGES);
    const bytes = chunk.reduce((n, m) => n + messageBytes(m), 0);
    expect(bytes).toBeLessThanOrEqual(QUEUE_MAX_BATCH_BYTES);
    for (const m of chunk) {
      expect(messageBytes(m)).toBeLessThanOrEqual(QUEUE_MAX_MESSAGE_BYTES);
      expect(m.contentType).toBe("json");
    }
  }
  const bodies = chunks.flat().map((m) => m.body);
  expect(JSON.parse(JSON.stringify(bodies))).toEqual(asJson(records));
}

describe("queue sink: sendBatch chunks within the Queue limits", () => {
  it("250 small records → chunks of 100, 100, 50, sent to the real queue", async () => {
    const records = someRecords(125, "queue-many"); // 250 records
    expect(records).toHaveLength(250);
    const { sink, limits } = makeSink<QueuePayload>(queueSink, { binding: "LOGS_QUEUE" });
    const { batches, oversized } = splitBatches(records, limits);
    expect(oversized).toEqual([]);
    expect(batches).toHaveLength(1);
    const chunks = sink.encode(must(batches[0]));
    expect(chunks.map((c) => c.length)).toEqual([100, 100, 50]);
    expectWithinLimits(chunks, records);
    for (const m of chunks.flat()) expect(m.delaySeconds).toBeUndefined();
    expect(await sink.send(chunks, AbortSignal.timeout(10_000))).toEqual({ outcome: "ok" });
  });

  it("records of ~60 KB → at most 4 per chunk (256 KB), sent to the real queue", async () => {
    const records = bigRecords(10, 60_000, "queue-big");
    for (const r of records) expect(r.bytes).toBeGreaterThan(59_000);
    const { sink, limits } = makeSink<QueuePayload>(queueSink, { binding: "LOGS_QUEUE" });
    const { batches, oversized } = splitBatches(records, limits);
    expect(oversized).toEqual([]);
    const chunks = batches.flatMap((b) => sink.encode(b));
    expect(chunks.map((c) => c.length)).toEqual([4, 4, 2]);
    expectWithinLimits(chunks, records);
    for (const batch of batches) {
      expect(await sink.send(sink.encode(batch), AbortSignal.timeout(10_000))).toEqual({ outcome: "ok" });
    }
  });

  it("a mix of sizes never exceeds either limit", () => {
    const small = someRecords(60, "queue-mix");
    const big = bigRecords(12, 45_000, "queue-mix");
    const mixed: SerializedRecord[] = [];
    for (let i = 0; i < small.length; i++) {
      mixed.push(must(small[i]));
      if (i % 10 === 0 && big.length > 0) mixed.push(must(big.shift()));
    }
    const { sink } = makeSink<QueuePayload>(queueSink, { binding: "LOGS_QUEUE" });
    const chunks = sink.encode(mixed);
    expect(chunks.length).toBeGreaterThan(1);
    expectWithinLimits(chunks, mixed);
  });

  it("delaySeconds is set on every message", () => {
    const records = someRecords(3, "queue-delay");
    const { sink } = makeSink<QueuePayload>(queueSink, { binding: "LOGS_QUEUE", delaySeconds: 30 });
    const messages = sink.encode(records).flat();
    expect(messages).toHaveLength(records.length);
    for (const m of messages) expect(m.delaySeconds).toBe(30);
  });

  it("a record over maxRecordBytes is set aside by splitBatches as oversized; the rest still batch", () => {
    const { limits } = makeSink<QueuePayload>(queueSink, { binding: "LOGS_QUEUE" });
    expect(limits.maxRecordBytes).toBeDefined();
    expect(must(limits.maxRecordBytes)).toBeLessThanOrEqual(QUEUE_MAX_MESSAGE_BYTES);
    const [huge] = bigRecords(1, must(limits.maxRecordBytes) + 500, "queue-huge");
    const [fits] = bigRecords(1, must(limits.maxRecordBytes) - 500, "queue-fits");
    const small = someRecords(2, "queue-huge");
    const items = [must(small[0]), must(huge), must(small[1]), must(fits), must(small[2]), must(small[3])];
    const { batches, oversized } = splitBatches(items, limits);
    expect(oversized).toEqual([huge]);
    expect(batches.flat()).toEqual([small[0], small[1], fits, small[2], small[3]]);
  });
});
