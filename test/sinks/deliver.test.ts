import { describe, expect, it } from "vitest";
import { httpSink } from "../../sinks/http";
import { kvSink } from "../../sinks/kv";
import { queueSink } from "../../sinks/queue";
import { r2Sink } from "../../sinks/r2";
import type { AnySinkDefinition, SendResult, Sink } from "../../sinks/types";
import { type DeliveryOptions, deliverAll, deliverToSink, Limiter, type SinkTarget } from "../../src/delivery/deliver";
import type { SerializedRecord } from "../../src/record";
import { bigRecords, bindings, makeSink, must, received, receiverUrl, someRecords, uid } from "./helpers";

const base = receiverUrl();

const OPTS: DeliveryOptions = { timeoutMs: 500, maxAttempts: 2, backoffMs: 10, budgetMs: 5_000, maxConnections: 6 };

function target(
  def: AnySinkDefinition,
  name: string,
  raw: Record<string, unknown>,
  items: SerializedRecord[],
): SinkTarget {
  const { sink, limits } = makeSink(def, raw, name);
  return { name, sink, batch: limits, items };
}

const idsOf = (got: { body: string }[]) =>
  got.flatMap((r) => (JSON.parse(r.body) as { id: string }[]).map((x) => x.id));

describe("deliverAll against the receiver", () => {
  it("a failing (500) sink runs out of attempts; an ok sink beside it gets every record", async () => {
    const okLabel = uid("dok");
    const badLabel = uid("d500");
    const okItems = someRecords(5, "deliver-ok"); // 10 records → 3 batches of ≤ 4
    const badItems = someRecords(3, "deliver-500"); // 6 records, 1 batch
    const [bad, ok] = await deliverAll(
      [
        target(httpSink, "bad", { url: `${base}/status/500/${badLabel}` }, badItems),
        target(httpSink, "good", { url: `${base}/ok/${okLabel}`, maxRecords: 4 }, okItems),
      ],
      OPTS,
    );
    expect(ok).toEqual({
      sink: "good",
      records: 10,
      delivered: 10,
      failed: 0,
      oversized: 0,
      requests: 3,
      bytes: okItems.reduce((n, i) => n + i.bytes, 0),
      errors: [],
      failures: [],
    });
    expect(bad).toMatchObject({ sink: "bad", records: 6, delivered: 0, failed: 6, oversized: 0, requests: 2 });
    // The failed batch is handed back whole, marked retryable, for the durable path.
    expect(must(bad).failures).toEqual([
      { items: badItems, retryable: true, status: 500, reason: expect.stringMatching(/^HTTP 500/), attempts: 2 },
    ]);
    expect(must(bad).errors).toHaveLength(1);
    expect(must(bad).errors[0]).toMatch(/gave up after 2 attempt\(s\): HTTP 500/);

    const okGot = await received(okLabel);
    expect(okGot).toHaveLength(3);
    expect(idsOf(okGot).sort()).toEqual(okItems.map((r) => r.record.id).sort());
    const badGot = await received(badLabel);
    expect(badGot).toHaveLength(2); // exactly maxAttempts
    expect(must(badGot[1]).body).toBe(must(badGot[0]).body); // a retry resends the same payload
  });

  it("a hanging sink does not hold back an ok sink beyond the per-attempt timeout", async () => {
    const okLabel = uid("dfast");
    const hangLabel = uid("dhang");
    const okItems = someRecords(3, "deliver-fast");
    const hangItems = someRecords(2, "deliver-hang");
    const started = Date.now();
    let finishedAt: number | undefined;
    const delivery = deliverAll(
      [
        // The hanging sink first, so a sequential implementation would be caught.
        target(httpSink, "hang", { url: `${base}/hang/${hangLabel}` }, hangItems),
        target(httpSink, "fast", { url: `${base}/ok/${okLabel}` }, okItems),
      ],
      OPTS,
    ).then((r) => {
      finishedAt = Date.now();
      return r;
    });

    let seenAt: number | undefined;
    while (finishedAt === undefined && seenAt === undefined) {
      const got = await received(okLabel);
      if (idsOf(got).length === okItems.length) seenAt = Date.now();
      else await new Promise((r) => setTimeout(r, 20));
    }
    const [hang, fast] = await delivery;

    expect(seenAt, "ok sink's records reached the receiver before the hang sink's delivery finished").toBeDefined();
    expect(must(seenAt) - started).toBeLessThan(OPTS.timeoutMs);
    expect(fast).toMatchObject({ delivered: okItems.length, failed: 0, requests: 1 });

    // The hang sink used both attempts, each cut at the per-attempt timeout.
    expect(hang).toMatchObject({ records: hangItems.length, delivered: 0, failed: hangItems.length, requests: 2 });
    expect(must(hang).errors[0]).toMatch(/gave up after 2 attempt\(s\): timed out/);
    expect(must(finishedAt) - started).toBeGreaterThanOrEqual(2 * OPTS.timeoutMs - 50);
    expect(must(finishedAt) - started).toBeLessThan(OPTS.budgetMs);
    expect(await received(hangLabel)).toHaveLength(2);
  });

  it("a 400 fails for good at once: exactly one request", async () => {
    const label = uid("d400");
    const items = someRecords(2, "deliver-400");
    const [report] = await deliverAll([target(httpSink, "rejects", { url: `${base}/status/400/${label}` }, items)], {
      ...OPTS,
      maxAttempts: 4,
    });
    expect(report).toMatchObject({ delivered: 0, failed: items.length, requests: 1 });
    expect(must(report).errors).toEqual([expect.stringMatching(/^failed: HTTP 400/)]);
    expect(await received(label)).toHaveLength(1);
  });

  it("Retry-After longer than the remaining budget: gives up after one attempt instead of hammering", async () => {
    const label = uid("d429long");
    const items = someRecords(1, "deliver-429");
    const started = Date.now();
    const [report] = await deliverAll(
      [target(httpSink, "limited", { url: `${base}/status/429/${label}?retryAfter=10` }, items)],
      { ...OPTS, maxAttempts: 5 },
    );
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(report).toMatchObject({ failed: items.length, requests: 1 });
    expect(must(report).errors[0]).toMatch(/gave up after 1 attempt\(s\): HTTP 429/);
    expect(await received(label)).toHaveLength(1);
  });

  it("Retry-After within the budget is waited out before the next attempt", async () => {
    const label = uid("d429short");
    const items = someRecords(1, "deliver-429s");
    const started = Date.now();
    const [report] = await deliverAll(
      [target(httpSink, "limited", { url: `${base}/status/429/${label}?retryAfter=1` }, items)],
      OPTS,
    );
    // backoffMs is 10: only Retry-After explains a second attempt a second later.
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(report).toMatchObject({ failed: items.length, requests: 2 });
    expect(await received(label)).toHaveLength(2);
  });

  it("oversized records are counted and reported; the rest of the sink's records are delivered", async () => {
    const { limits } = makeSink(queueSink, { binding: "LOGS_QUEUE" });
    const [huge] = bigRecords(1, must(limits.maxRecordBytes) + 1_000, "deliver-oversized");
    const small = someRecords(2, "deliver-oversized");
    const [report] = await deliverAll(
      [target(queueSink, "q", { binding: "LOGS_QUEUE" }, [must(small[0]), must(huge), ...small.slice(1)])],
      OPTS,
    );
    expect(report).toMatchObject({ records: 5, delivered: 4, failed: 0, oversized: 1, requests: 1 });
    expect(must(report).errors).toEqual([
      expect.stringMatching(/1 record\(s\) larger than the sink's limit of \d+ bytes/),
    ]);
  });

  it("fans out to all four sink types at once, each landing where it should", async () => {
    const tag = uid("dall");
    const items = someRecords(2, tag);
    const reports = await deliverAll(
      [
        target(kvSink, "kv", { binding: "LOGS_KV", key: `${tag}/{invocation}/{id}` }, items),
        target(r2Sink, "r2", { binding: "LOGS_R2", prefix: tag }, items),
        target(queueSink, "queue", { binding: "LOGS_QUEUE" }, items),
        target(httpSink, "http", { url: `${base}/ok/${tag}` }, items),
      ],
      OPTS,
    );
    for (const r of reports) expect(r, r.sink).toMatchObject({ records: 4, delivered: 4, failed: 0, errors: [] });
    expect((await bindings.LOGS_KV.list({ prefix: `${tag}/` })).keys).toHaveLength(2);
    expect((await bindings.LOGS_R2.list({ prefix: `${tag}/` })).objects).toHaveLength(1);
    expect(idsOf(await received(tag))).toEqual(items.map((r) => r.record.id));
  });

  it("a sink whose send throws (a contract breach) is failed, not retried, and does not affect the others", async () => {
    const okLabel = uid("dthrowok");
    const items = someRecords(1, "deliver-throw");
    const real = makeSink(httpSink, { url: `${base}/ok/${uid("dthrow")}` });
    let calls = 0;
    const throwing: SinkTarget = {
      name: "thrower",
      batch: real.limits,
      items,
      sink: {
        encode: (b) => real.sink.encode(b),
        send: async () => {
          calls++;
          throw new Error("kaboom");
        },
      },
    };
    const [thrower, ok] = await deliverAll(
      [throwing, target(httpSink, "ok", { url: `${base}/ok/${okLabel}` }, items)],
      {
        ...OPTS,
        maxAttempts: 3,
      },
    );
    expect(calls).toBe(1);
    expect(thrower).toMatchObject({ delivered: 0, failed: 2, requests: 1 });
    expect(must(thrower).errors).toEqual(["failed: sink threw: kaboom"]);
    expect(ok).toMatchObject({ delivered: 2, failed: 0 });
    expect(idsOf(await received(okLabel))).toEqual(items.map((r) => r.record.id));
  });
});

describe("Limiter", () => {
  it("runs at most `limit` at once, and everything eventually", async () => {
    const limiter = new Limiter(2);
    let active = 0;
    let peak = 0;
    const done: number[] = [];
    await Promise.all(
      Array.from({ length: 7 }, (_, i) =>
        limiter.run(async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setTimeout(r, 5 + (i % 3) * 5));
          active--;
          done.push(i);
        }),
      ),
    );
    expect(peak).toBe(2);
    expect(done.sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it("a task that throws releases its slot", async () => {
    const limiter = new Limiter(1);
    await expect(
      limiter.run(async () => {
        throw new Error("x");
      }),
    ).rejects.toThrow("x");
    await expect(limiter.run(async () => 42)).resolves.toBe(42);
  });

  // A released slot must go to a waiter, not to a caller arriving while it is handed over.
  it("never exceeds its limit when a caller arrives while a released slot is being handed over", async () => {
    let worst = 0;
    for (let depth = 0; depth < 8; depth++) {
      const limiter = new Limiter(1);
      let active = 0;
      let peak = 0;
      let releaseA: () => void = () => {};
      let releaseRest: () => void = () => {};
      const gateA = new Promise<void>((r) => {
        releaseA = r;
      });
      const gateRest = new Promise<void>((r) => {
        releaseRest = r;
      });
      const task = (gate: Promise<void>) => async () => {
        active++;
        peak = Math.max(peak, active);
        await gate;
        active--;
      };
      const runs = [limiter.run(task(gateA)), limiter.run(task(gateRest))];
      releaseA();
      // A third caller arrives `depth` microtasks later, racing the hand-over to the second.
      let p = Promise.resolve();
      for (let i = 0; i < depth; i++) p = p.then(() => {});
      runs.push(p.then(() => limiter.run(task(gateRest))));
      await new Promise((r) => setTimeout(r, 5));
      releaseRest();
      await Promise.all(runs);
      worst = Math.max(worst, peak);
    }
    expect(worst).toBe(1);
  });
});

describe("Limiter: sharing between sinks", () => {
  it("a sink holding its connections with hanging sends cannot take a freed one from a sink with work", async () => {
    const limiter = new Limiter(6);
    let release: () => void = () => {};
    const hanging = new Promise<void>((r) => {
      release = r;
    });
    const order: string[] = [];
    const hang = Array.from({ length: 20 }, () =>
      limiter.run(async () => {
        order.push("hang");
        await hanging;
      }, "hang"),
    );
    const fine = Array.from({ length: 20 }, () =>
      limiter.run(async () => {
        order.push("fine");
        await new Promise((r) => setTimeout(r, 1));
      }, "fine"),
    );
    // Every fine task gets done while the hanging ones still hold their share.
    await Promise.all(fine);
    expect(order.filter((o) => o === "fine")).toHaveLength(20);
    // The hanging sink, listed first, got half of the first connections and, while fine had work, no more.
    expect(order.slice(0, 6).filter((o) => o === "hang")).toHaveLength(3);
    expect(order.filter((o) => o === "hang").length).toBeLessThanOrEqual(6);
    release();
    await Promise.all(hang);
    expect(order.filter((o) => o === "hang")).toHaveLength(20);
  });
});

describe("deliverToSink: partial answers", () => {
  it("counts what the backend took, sets aside what it refused for good, and retries only the rest", async () => {
    const items = someRecords(5, "partial").slice(0, 5);
    const sent: string[][] = [];
    // A sink whose backend takes records 0 and 1, refuses 2 for good and asks for 3 and 4 again, then takes them.
    const sink = {
      encode: (batch: readonly SerializedRecord[]) => batch.map((i) => i.record.id),
      async send(ids: string[]): Promise<SendResult> {
        sent.push(ids);
        if (sent.length === 1)
          return { outcome: "partial", retry: [3, 4], fail: [2], reason: "2 item(s) failed", status: 200 };
        return { outcome: "ok" };
      },
    };
    const report = await deliverToSink(
      { name: "partial", sink: sink as Sink<unknown>, batch: { maxRecords: 100, maxBytes: 1 << 20 }, items },
      new Limiter(6),
      OPTS,
    );
    expect(sent).toEqual([items.map((i) => i.record.id), [items[3], items[4]].map((i) => must(i).record.id)]);
    expect(report).toMatchObject({ delivered: 4, failed: 1, requests: 2 });
    expect(report.failures).toEqual([
      { items: [items[2]], retryable: false, reason: "2 item(s) failed", status: 200, attempts: 1 },
    ]);
  });
});
