/**
 * The durable path's building blocks against the real local Queue and R2:
 * work messages (toMessages / fromMessage), sendBatch chunking, retry delays
 * and dead-letter objects.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import {
  MESSAGE_OVERHEAD,
  QUEUE_MAX_BATCH_BYTES,
  QUEUE_MAX_BATCH_MESSAGES,
  QUEUE_MAX_MESSAGE_BYTES,
} from "../../sinks/queue";
import { DEFAULT_DELIVERY_CONFIG, type DeliveryConfig } from "../../src/config";
import type { FailedBatch, SinkReport } from "../../src/delivery/deliver";
import {
  fromMessage,
  MESSAGE_BYTES,
  PACK_FROM_BYTES,
  packBodies,
  retryDelay,
  sendMessages,
  toMessages,
  unpackBody,
  type WorkHeader,
  writeDeadLetter,
} from "../../src/delivery/durable";
import { queuedRetryDelay, type SettleContext, settleAll, settleReport } from "../../src/delivery/settle";
import { serializeRecord } from "../../src/json";
import type { LogRecord, SerializedRecord } from "../../src/record";
import { type Counter, StatsBatch } from "../../src/stats";
import { asJson, bigRecords, gunzipText, must, parseNdjson, someRecords, uid, utf8 } from "../sinks/helpers";

/** A work message's body leaves room for the runtime's per-message overhead. */
const MESSAGE_LIMIT = QUEUE_MAX_MESSAGE_BYTES - MESSAGE_OVERHEAD;

/** A retry header for a sink nobody configures: if the local consumer ever sees it, it is only dead-lettered. */
function retryHeader(sink = uid("durable-nowhere"), extra: Partial<WorkHeader> = {}): WorkHeader {
  return {
    v: 1,
    kind: "retry",
    sink,
    attempt: 2,
    tries: 5,
    status: 503,
    reason: "HTTP 503: upstream is down",
    since: 1_700_000_000_000,
    ...extra,
  } as WorkHeader;
}

/** Records whose message is `chars` copies of `ch` (a multi-byte character makes UTF-8 much longer than the string). */
function wideRecords(n: number, chars: number, ch = "€"): SerializedRecord[] {
  return bigRecords(n, 200, uid("wide")).map((r) =>
    serializeRecord({ ...r.record, message: ch.repeat(chars) } as LogRecord),
  );
}

/** A Queue binding that records every sendBatch call and forwards it to the real binding. */
function countingQueue(real: Queue) {
  const calls: { messages: MessageSendRequest[]; options: QueueSendBatchOptions | undefined }[] = [];
  const queue = {
    send: (body: unknown, options?: QueueSendOptions) => real.send(body, options),
    sendBatch: (messages: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) => {
      const list = [...messages];
      calls.push({ messages: list, options });
      return real.sendBatch(list, options);
    },
    metrics: () => real.metrics(),
  } as unknown as Queue;
  return { queue, calls };
}

const ids = (items: readonly SerializedRecord[]) => items.map((i) => i.record.id);
const lines = (items: readonly SerializedRecord[]) => items.map((i) => i.line);

describe("toMessages", () => {
  it("splits many records across messages, each within the message limit, keeping every record in order", () => {
    const records = someRecords(600, uid("many")); // 1200 records
    const header: WorkHeader = { v: 1, kind: "records", at: Date.now() };
    const { bodies, oversized } = toMessages(header, records);
    expect(oversized).toEqual([]);
    expect(bodies.length).toBeGreaterThan(1);
    for (const body of bodies) expect(utf8(body)).toBeLessThanOrEqual(MESSAGE_LIMIT);
    // Messages are filled, not one record each: all but the last hold more than half the limit.
    for (const body of bodies.slice(0, -1)) expect(utf8(body)).toBeGreaterThan(MESSAGE_LIMIT / 2);
    const back = bodies.flatMap((b) => fromMessage(b).items);
    expect(lines(back)).toEqual(lines(records));
  });

  it("counts UTF-8 bytes, not characters: multi-byte records and a non-ASCII header stay within the message limit", () => {
    // 15,000 × "€" is 15,000 characters but 45,000 bytes: by length three would fit in a message, by bytes only two.
    const records = wideRecords(7, 15_000);
    const header = retryHeader("wide-sink", { reason: "HTTP 503: ölçü ✗ 服务不可用 ".repeat(5) });
    const { bodies, oversized } = toMessages(header, records);
    expect(oversized).toEqual([]);
    for (const body of bodies) expect(utf8(body)).toBeLessThanOrEqual(MESSAGE_LIMIT);
    expect(bodies.map((b) => fromMessage(b).items.length)).toEqual([2, 2, 2, 1]);
    expect(ids(bodies.flatMap((b) => fromMessage(b).items))).toEqual(ids(records));
  });

  it("returns records too large for any message as oversized and keeps the rest, in order", () => {
    const header = retryHeader();
    const [small1, small2] = someRecords(1, uid("around"));
    const [large] = bigRecords(1, 100_000, uid("large"));
    const [tooBig] = bigRecords(1, 130_000, uid("too-big")); // over the limit by length
    const [tooWide] = wideRecords(1, 45_000); // 45,000 characters, 135,000 bytes: over the limit only in UTF-8
    const items = [must(small1), must(large), must(tooBig), must(tooWide), must(small2)];
    const { bodies, oversized } = toMessages(header, items);
    expect(ids(oversized)).toEqual(ids([must(tooBig), must(tooWide)]));
    for (const body of bodies) expect(utf8(body)).toBeLessThanOrEqual(MESSAGE_LIMIT);
    expect(bodies.flatMap((b) => ids(fromMessage(b).items))).toEqual(ids([must(small1), must(large), must(small2)]));
  });

  it("at the boundary: a record that fills a whole message travels alone, one byte more is oversized", () => {
    const header = retryHeader();
    // The header line (counted at 3 bytes per character) and the newline after it come off the message's room.
    const room = MESSAGE_LIMIT - JSON.stringify(header).length * 3 - 1;
    const [fits] = bigRecords(1, room, uid("fits"));
    const [over] = bigRecords(1, room + 1, uid("over"));
    expect(must(fits).bytes).toBe(room);
    expect(must(over).bytes).toBe(room + 1);
    const [small] = someRecords(1, uid("beside"));
    const { bodies, oversized } = toMessages(header, [must(small), must(fits), must(over)]);
    expect(ids(oversized)).toEqual([must(over).record.id]);
    expect(bodies.map((b) => ids(fromMessage(b).items))).toEqual([[must(small).record.id], [must(fits).record.id]]);
    for (const body of bodies) expect(utf8(body)).toBeLessThanOrEqual(MESSAGE_LIMIT);
  });

  it("gives no message for no records", () => {
    expect(toMessages({ v: 1, kind: "records", at: 1 }, [])).toEqual({ bodies: [], oversized: [] });
  });
});

describe("fromMessage", () => {
  it("round-trips a retry header and its records: ids, lines and sizes identical", () => {
    const records = [...someRecords(3, uid("rt")), ...wideRecords(2, 100, "😀")];
    const header = retryHeader("rt-sink");
    const { bodies } = toMessages(header, records);
    expect(bodies).toHaveLength(1);
    const back = fromMessage(bodies[0]);
    expect(back.header).toEqual(header);
    expect(ids(back.items)).toEqual(ids(records));
    expect(lines(back.items)).toEqual(lines(records));
    expect(back.items.map((i) => i.bytes)).toEqual(records.map((r) => utf8(r.line)));
    expect(back.items.map((i) => i.record)).toEqual(asJson(records));
  });

  it("round-trips a records header, and a retry header without a status", () => {
    const records = someRecords(2, uid("rt2"));
    const plain: WorkHeader = { v: 1, kind: "records", at: 1_234 };
    expect(fromMessage(must(toMessages(plain, records).bodies[0])).header).toEqual(plain);
    const noStatus: WorkHeader = {
      v: 1,
      kind: "retry",
      sink: "s",
      attempt: 1,
      tries: 3,
      reason: "timed out",
      since: 9,
    };
    const back = fromMessage(must(toMessages(noStatus, records).bodies[0]));
    expect(back.header).toEqual(noStatus);
    expect("status" in back.header).toBe(false);
  });

  it("rejects bodies that are not tailfan's, with a reason", () => {
    expect(() => fromMessage(42)).toThrow("expected a text message, got number");
    expect(() => fromMessage({ v: 1, kind: "records" })).toThrow("expected a text message, got object");
    expect(() => fromMessage(new Uint8Array([1, 2]))).toThrow("expected a text message, got object");
    expect(() => fromMessage("hello there")).toThrow(SyntaxError);
    expect(() => fromMessage("")).toThrow(SyntaxError);
    expect(() => fromMessage("null")).toThrow("not a tailfan work message");
    expect(() => fromMessage('{"v":2,"kind":"records","at":1}')).toThrow("not a tailfan work message");
    expect(() => fromMessage('{"v":1,"kind":"other"}\n{"id":"x"}')).toThrow("not a tailfan work message");
    // A queue sink's message (one record per message, as JSON) is not a work message either.
    expect(() => fromMessage(must(someRecords(1)[0]).line)).toThrow("not a tailfan work message");
  });
});

describe("packBodies / unpackBody", () => {
  const noise = (n: number) =>
    Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b.toString(16).padStart(2, "0")).join("");

  it("leaves a small body as text, gzips a larger one, and reads both back as they were", async () => {
    const small = `${JSON.stringify({ v: 1, kind: "records", at: 1 })}\n{"id":"a"}`;
    const large = `${JSON.stringify({ v: 1, kind: "records", at: 1 })}\n${Array.from({ length: 200 }, (_, i) => JSON.stringify({ id: `r${i}`, message: "x".repeat(100) })).join("\n")}`;
    expect(large.length).toBeGreaterThan(PACK_FROM_BYTES);
    const [a, b] = await packBodies([small, large]);
    expect(a).toBe(small);
    expect(b).toBeInstanceOf(Uint8Array);
    expect((b as Uint8Array).byteLength).toBeLessThan(large.length / 10);
    expect(await unpackBody(a)).toBe(small);
    expect(await unpackBody(b)).toBe(large);
  });

  it("cuts a body that does not gzip under the message limit at record lines; its counts stay with the first part", async () => {
    const header = { v: 1, kind: "records", at: 1, unrouted: 5, sampled: { s: 2 } };
    const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify({ id: `n${i}`, message: noise(500) }));
    const body = [JSON.stringify(header), ...lines].join("\n");
    const packed = await packBodies([body]);
    expect(packed.length).toBeGreaterThan(1);
    const parts = await Promise.all(packed.map(async (p) => String(await unpackBody(p))));
    for (const p of packed) expect(typeof p === "string" ? utf8(p) : p.byteLength).toBeLessThanOrEqual(MESSAGE_BYTES);
    const heads = parts.map((p) => JSON.parse(p.slice(0, p.indexOf("\n"))));
    expect(heads[0]).toEqual(header);
    for (const h of heads.slice(1)) expect(h).toEqual({ v: 1, kind: "records", at: 1 });
    expect(parts.flatMap((p) => p.split("\n").slice(1))).toEqual(lines);
  });
});

describe("sendMessages to the real TAILFAN_QUEUE", () => {
  const real = env.TAILFAN_QUEUE;
  // Delayed far past the end of the run, so the local consumer never picks them up.
  const LATER = 3_600;

  function expectWithinLimits(calls: ReturnType<typeof countingQueue>["calls"], bodies: readonly string[]) {
    for (const { messages } of calls) {
      expect(messages.length).toBeGreaterThan(0);
      expect(messages.length).toBeLessThanOrEqual(QUEUE_MAX_BATCH_MESSAGES);
      // What the Queue counts per sendBatch call: each body plus the per-message overhead.
      const bytes = messages.reduce((n, m) => n + utf8(m.body as string) + MESSAGE_OVERHEAD, 0);
      expect(bytes).toBeLessThanOrEqual(QUEUE_MAX_BATCH_BYTES);
      for (const m of messages) expect(m.contentType).toBe("text");
    }
    expect(calls.flatMap((c) => c.messages.map((m) => m.body))).toEqual(bodies);
  }

  it("250 small messages go as sendBatch calls of 100, 100 and 50", async () => {
    // Header-only work messages: small enough that the 100-message limit, not the bytes, cuts the calls.
    const many = Array.from({ length: 250 }, () => JSON.stringify(retryHeader()));
    const { queue, calls } = countingQueue(real);
    await expect(sendMessages(queue, many, LATER)).resolves.toBeUndefined();
    expect(calls.map((c) => c.messages.length)).toEqual([100, 100, 50]);
    expectWithinLimits(calls, many);
  });

  it("large messages are chunked within 256 KB per call", async () => {
    const { bodies, oversized } = toMessages(retryHeader(), bigRecords(9, 100_000, uid("chunky")));
    expect(oversized).toEqual([]);
    expect(bodies).toHaveLength(9);
    const { queue, calls } = countingQueue(real);
    await sendMessages(queue, bodies, LATER);
    expect(calls.map((c) => c.messages.length)).toEqual([2, 2, 2, 2, 1]);
    expectWithinLimits(calls, bodies);
  });

  it("multi-byte messages are chunked by their UTF-8 size", async () => {
    // Each message is about 36,000 characters but 108 KB of UTF-8: only two fit in a call.
    const { bodies } = toMessages(retryHeader(), wideRecords(5, 36_000));
    expect(bodies).toHaveLength(5);
    const { queue, calls } = countingQueue(real);
    await sendMessages(queue, bodies, LATER);
    expect(calls.map((c) => c.messages.length)).toEqual([2, 2, 1]);
    expectWithinLimits(calls, bodies);
  });

  it("sets delaySeconds on every message when given, and leaves it out otherwise", async () => {
    const { bodies } = toMessages(retryHeader(), someRecords(2, uid("delay")));
    const delayed = countingQueue(real);
    await sendMessages(delayed.queue, bodies, LATER);
    expect(delayed.calls.flatMap((c) => c.messages.map((m) => m.delaySeconds))).toEqual(bodies.map(() => LATER));
    const now = countingQueue(real);
    await sendMessages(now.queue, bodies);
    for (const m of now.calls.flatMap((c) => c.messages)) expect("delaySeconds" in m).toBe(false);
  });

  it("makes no call for no messages", async () => {
    const { queue, calls } = countingQueue(real);
    await sendMessages(queue, []);
    expect(calls).toEqual([]);
  });

  it("rejects when the queue refuses (a message over the Queue's own limit)", async () => {
    const { queue, calls } = countingQueue(real);
    await expect(sendMessages(queue, ["x".repeat(130_000)], LATER)).rejects.toThrow();
    expect(calls).toHaveLength(1);
  });
});

describe("queuedRetryDelay", () => {
  it("takes the backend's Retry-After when it is longer than the schedule, at most the Queue's 12 hours", () => {
    expect(queuedRetryDelay(1, 1)).toBe(1);
    expect(queuedRetryDelay(1, 1, 20_000)).toBe(20);
    expect(queuedRetryDelay(1, 1, 1_500)).toBe(2);
    expect(queuedRetryDelay(30, 3, 20_000)).toBe(120);
    expect(queuedRetryDelay(30, 1, 10 * 86_400_000)).toBe(43_200);
  });
});

describe("retryDelay", () => {
  it("starts at the base, doubles per attempt and stops at 12 hours", () => {
    expect([1, 2, 3, 4, 5].map((a) => retryDelay(30, a))).toEqual([30, 60, 120, 240, 480]);
    expect(retryDelay(30, 11)).toBe(30_720);
    expect(retryDelay(30, 12)).toBe(43_200);
    expect(retryDelay(30, 100)).toBe(43_200);
    expect(retryDelay(43_200, 1)).toBe(43_200);
    expect(retryDelay(50_000, 1)).toBe(43_200);
  });

  it("treats attempt 0 like the first, and a base of 0 as no delay", () => {
    expect(retryDelay(30, 0)).toBe(30);
    expect(retryDelay(0, 7)).toBe(0);
  });
});

describe("writeDeadLetter to the real LOGS_R2", () => {
  const bucket = env.LOGS_R2;

  async function objectsUnder(prefix: string) {
    const { objects } = await bucket.list({ prefix, include: ["httpMetadata", "customMetadata"] });
    return objects;
  }

  it("writes one gzip NDJSON object whose lines carry sink, status, reason, attempts, deadLetteredAt and the record", async () => {
    const prefix = uid("dl");
    const records = [...someRecords(2, uid("dead")), ...wideRecords(1, 50, "ü")];
    const now = Date.UTC(2025, 5, 7, 8, 9, 10, 11);
    const info = { sink: "collector", status: 503, reason: "HTTP 503: down", attempts: 7 };
    await writeDeadLetter(bucket, `${prefix}/`, info, records, now);

    const objects = await objectsUnder(`${prefix}/`);
    expect(objects.map((o) => o.key)).toEqual([
      `${prefix}/collector/2025/06/07/${now}_${must(records[0]).record.id}.ndjson.gz`,
    ]);
    const object = must(await bucket.get(must(objects[0]).key));
    expect(object.httpMetadata).toMatchObject({ contentType: "application/x-ndjson", contentEncoding: "gzip" });
    expect(object.customMetadata).toEqual({
      sink: "collector",
      count: "5",
      attempts: "7",
      status: "503",
      reason: "HTTP 503: down",
    });
    const text = await gunzipText(await object.arrayBuffer());
    expect(parseNdjson(text)).toEqual(
      asJson(records).map((record) => ({
        sink: "collector",
        status: 503,
        reason: "HTTP 503: down",
        attempts: 7,
        deadLetteredAt: now,
        record,
      })),
    );
  });

  it("writes status null without one, keeps the sink name in the lines but makes it safe in the key", async () => {
    const prefix = uid("dl-odd");
    const records = someRecords(1, uid("odd"));
    await writeDeadLetter(bucket, prefix, { sink: "we/ird sink", reason: "timed out", attempts: 1 }, records, 5);
    const objects = await objectsUnder(`${prefix}/`);
    expect(objects).toHaveLength(1);
    expect(must(objects[0]).key).toBe(`${prefix}/we_ird_sink/1970/01/01/5_${must(records[0]).record.id}.ndjson.gz`);
    const object = must(await bucket.get(must(objects[0]).key));
    const [first] = parseNdjson(await gunzipText(await object.arrayBuffer())) as Record<string, unknown>[];
    expect(first).toMatchObject({ sink: "we/ird sink", status: null, reason: "timed out", attempts: 1 });
    expect(object.customMetadata?.status).toBe("");
  });

  it("writes nothing for no records", async () => {
    const prefix = uid("dl-none");
    await writeDeadLetter(bucket, prefix, { sink: "s", reason: "r", attempts: 0 }, []);
    expect(await objectsUnder(`${prefix}/`)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// settle.ts: where every record routed to a sink ends up, with the real
// work queue and dead-letter bucket, and the counters that must add up.

type Totals = Partial<Record<Counter, number>>;

/** Sums the deltas of several invocations for one sink, as the stats object would. */
function totalsOf(sink: string, ...batches: StatsBatch[]): Totals {
  const out: Totals = {};
  for (const b of batches)
    for (const d of b.list())
      if (d.sink === sink)
        for (const [k, n] of Object.entries(d.counts)) out[k as Counter] = (out[k as Counter] ?? 0) + n;
  return out;
}

/** received = sent + droppedLimit + deadLettered + failed + pending, over all the given invocations. */
function expectAccounted(sink: string, received: number, ...batches: StatsBatch[]) {
  const t = totalsOf(sink, ...batches);
  const accounted = (t.sent ?? 0) + (t.droppedLimit ?? 0) + (t.deadLettered ?? 0) + (t.failed ?? 0) + (t.pending ?? 0);
  expect({ received, accounted }).toEqual({ received, accounted: received });
}

function report(sink: string, parts: Partial<SinkReport>): SinkReport {
  const r: SinkReport = {
    sink,
    records: 0,
    delivered: 0,
    failed: 0,
    oversized: 0,
    requests: 0,
    bytes: 0,
    errors: [],
    failures: [],
    ...parts,
  };
  r.records = r.delivered + r.oversized + r.failures.reduce((n, f) => n + f.items.length, 0);
  r.failed = r.failures.reduce((n, f) => n + f.items.length, 0);
  return r;
}

function failure(items: SerializedRecord[], retryable: boolean, status: number, attempts = 3): FailedBatch {
  return { items, retryable, status, reason: `HTTP ${status}: answered ${status}`, attempts };
}

interface Setup {
  sc: (over: Partial<SettleContext>) => SettleContext;
  calls: ReturnType<typeof countingQueue>["calls"];
  prefix: string;
  deadLetters: (sink: string) => Promise<Record<string, unknown>[]>;
}

/** A settle context with the real queue (behind a counting proxy) and the real R2 as dead letter. */
function setup(delivery: Partial<DeliveryConfig> = {}): Setup {
  const { queue, calls } = countingQueue(env.TAILFAN_QUEUE);
  const prefix = uid("settle-dl");
  const environment = { ...(env as unknown as Record<string, unknown>), WORK_Q: queue };
  const config: DeliveryConfig = {
    ...DEFAULT_DELIVERY_CONFIG,
    queue: "WORK_Q",
    deadLetter: "LOGS_R2",
    deadLetterPrefix: prefix,
    retries: 3,
    // Far past the end of the run, so the local consumer never takes these messages.
    retryDelaySeconds: 900,
    ...delivery,
  };
  return {
    calls,
    prefix,
    sc: (over) => ({
      env: environment,
      delivery: config,
      stats: new StatsBatch(),
      fromQueue: false,
      queueAttempts: 0,
      ...over,
    }),
    async deadLetters(sink) {
      const out: Record<string, unknown>[] = [];
      const { objects } = await env.LOGS_R2.list({ prefix: `${prefix}/${sink}/` });
      for (const o of objects) {
        const obj = must(await env.LOGS_R2.get(o.key));
        out.push(...(parseNdjson(await gunzipText(await obj.arrayBuffer())) as Record<string, unknown>[]));
      }
      return out;
    },
  };
}

describe("settleReport / settleAll", () => {
  // settle logs every dead letter and loss on tailfan's console; the tests read what it says.
  let errors: MockInstance<typeof console.error>;
  beforeEach(() => {
    errors = vi.spyOn(console, "error").mockImplementation(() => {});
  });
  afterEach(() => vi.restoreAllMocks());

  it("an accepted batch counts sent, bytes and requests", async () => {
    const s = setup();
    const items = someRecords(3, uid("ok"));
    const sc = s.sc({});
    await settleReport(
      sc,
      report("ok-sink", { delivered: 6, requests: 1, bytes: items.reduce((n, i) => n + i.bytes, 0) }),
    );
    expect(totalsOf("ok-sink", sc.stats)).toEqual({
      sent: 6,
      bytes: items.reduce((n, i) => n + i.bytes, 0),
      requests: 1,
    });
    expect(s.calls).toEqual([]);
    expectAccounted("ok-sink", 6, sc.stats);
  });

  it("from tail(), a retryable failure goes to the queue as a retry message: retried and pending +n", async () => {
    const s = setup();
    const items = someRecords(2, uid("retry"));
    const sc = s.sc({});
    const before = Date.now();
    await settleReport(sc, report("flaky", { requests: 3, failures: [failure(items, true, 503)] }));
    expect(totalsOf("flaky", sc.stats)).toEqual({ retried: 4, pending: 4, requests: 3 });
    expect(sc.stats.list()[0]?.lastError).toMatchObject({ message: "HTTP 503: answered 503", status: 503 });
    const messages = s.calls.flatMap((c) => c.messages);
    expect(messages).toHaveLength(1);
    expect(messages[0]?.delaySeconds).toBe(900); // retryDelay(900, 1)
    const work = fromMessage(messages[0]?.body);
    expect(work.header).toMatchObject({ v: 1, kind: "retry", sink: "flaky", attempt: 1, tries: 3, status: 503 });
    expect(work.header.kind === "retry" && work.header.since).toBeGreaterThanOrEqual(before);
    expect(lines(work.items)).toEqual(lines(items));
    expectAccounted("flaky", 4, sc.stats);
  });

  it("from the queue, a retryable failure is queued again with attempt + 1: pending unchanged", async () => {
    const s = setup();
    const items = someRecords(2, uid("again"));
    // Earlier, in tail(): the records failed and went to the queue.
    const tail = s.sc({});
    await settleReport(tail, report("again", { failures: [failure(items, true, 500)] }));
    // Now the first delivery from the queue fails again.
    const sc = s.sc({ fromQueue: true, queueAttempts: 1, since: 1_000, priorTries: 3 });
    await settleReport(sc, report("again", { failures: [failure(items, true, 502, 2)] }));
    expect(totalsOf("again", sc.stats)).toEqual({ retried: 4 });
    const last = must(s.calls.at(-1)).messages;
    expect(last.map((m) => m.delaySeconds)).toEqual([1_800]); // retryDelay(900, 2)
    expect(fromMessage(last[0]?.body).header).toEqual({
      v: 1,
      kind: "retry",
      sink: "again",
      attempt: 2,
      tries: 5,
      status: 502,
      reason: "HTTP 502: answered 502",
      since: 1_000,
    });
    expectAccounted("again", 4, tail.stats, sc.stats);
  });

  it("a retryable failure at the last queue attempt is dead-lettered: deadLettered +n, pending −n", async () => {
    const s = setup({ retries: 3 });
    const items = someRecords(2, uid("last"));
    const tail = s.sc({});
    await settleReport(tail, report("last", { failures: [failure(items, true, 503)] }));
    const callsBefore = s.calls.length;
    const sc = s.sc({ fromQueue: true, queueAttempts: 3, since: 5, priorTries: 9 });
    await settleReport(sc, report("last", { failures: [failure(items, true, 503, 3)] }));
    expect(s.calls.length).toBe(callsBefore);
    expect(totalsOf("last", sc.stats)).toEqual({ deadLettered: 4, pending: -4 });
    const dead = await s.deadLetters("last");
    expect(dead.map((l) => (l.record as { id: string }).id)).toEqual(ids(items));
    expect(dead[0]).toMatchObject({ sink: "last", status: 503, reason: "HTTP 503: answered 503", attempts: 12 });
    expectAccounted("last", 4, tail.stats, sc.stats);
  });

  it("one attempt before the last is still queued, with the doubled delay", async () => {
    const s = setup({ retries: 3 });
    const items = someRecords(1, uid("before-last"));
    const sc = s.sc({ fromQueue: true, queueAttempts: 2 });
    await settleReport(sc, report("before-last", { failures: [failure(items, true, 429)] }));
    expect(totalsOf("before-last", sc.stats)).toEqual({ retried: 2 });
    const [message] = must(s.calls[0]).messages;
    expect(message?.delaySeconds).toBe(3_600); // retryDelay(900, 3)
    expect(fromMessage(message?.body).header).toMatchObject({ attempt: 3 });
  });

  it("a failed record too large for a queue message is dead-lettered; the rest of its batch is queued", async () => {
    const s = setup();
    const small = someRecords(1, uid("q-small"));
    const [huge] = bigRecords(1, 130_000, uid("q-huge"));
    const items = [...small, must(huge)];
    const sc = s.sc({});
    await settleReport(sc, report("huge", { failures: [failure(items, true, 503)] }));
    expect(totalsOf("huge", sc.stats)).toEqual({ retried: 2, pending: 2, deadLettered: 1 });
    expect(s.calls.flatMap((c) => c.messages.flatMap((m) => ids(fromMessage(m.body).items)))).toEqual(ids(small));
    const dead = await s.deadLetters("huge");
    expect(dead.map((l) => (l.record as { id: string }).id)).toEqual([must(huge).record.id]);
    expect(dead[0]?.reason).toBe("HTTP 503: answered 503; too large for a queue message");
    expectAccounted("huge", 3, sc.stats);
  });

  it("a permanent failure is dead-lettered at once, even with a queue", async () => {
    const s = setup();
    const items = someRecords(2, uid("perm"));
    const sc = s.sc({});
    await settleReport(sc, report("perm", { failures: [failure(items, false, 400, 1)] }));
    expect(s.calls).toEqual([]);
    expect(totalsOf("perm", sc.stats)).toEqual({ deadLettered: 4 });
    const dead = await s.deadLetters("perm");
    expect(dead).toHaveLength(4);
    expect(dead[0]).toMatchObject({ sink: "perm", status: 400, reason: "HTTP 400: answered 400", attempts: 1 });
    expectAccounted("perm", 4, sc.stats);
  });

  it("with no queue and no dead letter, the records are counted failed and logged with the sink and the reason", async () => {
    const s = setup({ queue: null, deadLetter: null });
    const items = someRecords(1, uid("lost"));
    const sc = s.sc({});
    await settleReport(sc, report("lost", { failures: [failure(items, true, 503, 2)] }));
    expect(totalsOf("lost", sc.stats)).toEqual({ failed: 2 });
    expect(s.calls).toEqual([]);
    expect(errors.mock.calls.map((c) => String(c[0]))).toEqual([
      'tailfan: sink "lost" lost 2 record(s) after 2 attempt(s): HTTP 503: answered 503 (no retry queue configured)',
    ]);
    expectAccounted("lost", 2, sc.stats);
  });

  it("records too large for the sink count as droppedLimit (and leave pending when they came back from the retry queue)", async () => {
    const s = setup();
    const tail = s.sc({});
    await settleReport(tail, report("big", { oversized: 2, delivered: 3 }));
    expect(totalsOf("big", tail.stats)).toEqual({ droppedLimit: 2, sent: 3 });
    expectAccounted("big", 5, tail.stats);

    const queued = s.sc({ fromQueue: true, queueAttempts: 0 });
    const enqueue = new StatsBatch();
    enqueue.add("big2", "received", 5); // earlier: received, failed, and queued for a retry
    enqueue.add("big2", "pending", 5);
    await settleReport(queued, report("big2", { oversized: 2, delivered: 3 }));
    expect(totalsOf("big2", queued.stats)).toEqual({ droppedLimit: 2, sent: 3, pending: -5 });
    expectAccounted("big2", 5, enqueue, queued.stats);
  });

  it("a dead letter that cannot be written counts the records failed, with the reason logged", async () => {
    const s = setup({ deadLetter: "NO_SUCH_BUCKET" });
    const items = someRecords(1, uid("nobucket"));
    const sc = s.sc({});
    await settleReport(sc, report("nobucket", { failures: [failure(items, false, 403, 1)] }));
    expect(totalsOf("nobucket", sc.stats)).toEqual({ failed: 2 });
    expect(String(errors.mock.calls[0]?.[0])).toMatch(
      /^tailfan: sink "nobucket": the dead letter NO_SUCH_BUCKET refused 2 record\(s\) \(.+\); they are lost: HTTP 403/,
    );
    expectAccounted("nobucket", 2, sc.stats);
  });

  it("a retry queue that refuses sends the records to the dead letter instead", async () => {
    const s = setup({ queue: "NO_SUCH_QUEUE" });
    const items = someRecords(1, uid("noqueue"));
    const sc = s.sc({});
    await settleReport(sc, report("noqueue", { failures: [failure(items, true, 503)] }));
    expect(totalsOf("noqueue", sc.stats)).toEqual({ deadLettered: 2 });
    const dead = await s.deadLetters("noqueue");
    expect(dead).toHaveLength(2);
    expect(String(dead[0]?.reason)).toMatch(/^HTTP 503: answered 503; retry queue refused: /);
    expectAccounted("noqueue", 2, sc.stats);
  });

  it("settleAll: several sinks with every outcome at once still add up per sink", async () => {
    const s = setup();
    const [a, b, c] = [someRecords(2, uid("m-a")), someRecords(1, uid("m-b")), someRecords(3, uid("m-c"))];
    const sc = s.sc({});
    await settleAll(sc, [
      report("mixed-1", { delivered: 5, oversized: 1, failures: [failure(a, true, 503), failure(b, false, 404, 1)] }),
      report("mixed-2", { failures: [failure(c, true, 500)] }),
    ]);
    expect(totalsOf("mixed-1", sc.stats)).toMatchObject({
      sent: 5,
      droppedLimit: 1,
      retried: 4,
      pending: 4,
      deadLettered: 2,
    });
    expectAccounted("mixed-1", 5 + 1 + 4 + 2, sc.stats);
    expectAccounted("mixed-2", 6, sc.stats);
    // Each sink's last failure is kept as its last error.
    const lastErrors = Object.fromEntries(sc.stats.list().map((d) => [d.sink, d.lastError?.status]));
    expect(lastErrors).toEqual({ "mixed-1": 404, "mixed-2": 500 });
  });

  it("settleAll never throws: a report it cannot settle is logged with its sink", async () => {
    const s = setup();
    const broken = { ...report("broken", {}), failures: undefined } as unknown as SinkReport;
    await expect(settleAll(s.sc({}), [broken])).resolves.toBeUndefined();
    expect(String(errors.mock.calls[0]?.[0])).toMatch(/^tailfan: settling sink "broken" failed unexpectedly: /);
  });
});
