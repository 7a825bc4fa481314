/**
 * Fault injection on the real runtime. A producer Worker runs in workerd and
 * is tailed by tailfan (bundled from src/), which delivers to HTTP backends
 * played by the local receiver; the test switches those backends between
 * answering, 500, 429 with Retry-After, hanging and dropping the connection
 * while traffic flows, and then accounts for every record id: delivered (the
 * backend answered 200), dead-lettered (in the R2 dead-letter bucket), or
 * lost. The counters of GET /status must tell the same story.
 *
 * Three stacks, each its own Miniflare: durable delivery (retry queue + dead
 * letter), the same with the durable path removed (no queue, no dead letter),
 * and buffered mode.
 */
import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kindOf } from "../../src/log";
import type { LogRecord } from "../../src/record";
import type { ReceivedRequest } from "../support/received";
import { type Behaviour, type Receiver, startReceiver } from "../support/receiver";
import { type Bundle, bundleTailfan, poll, readNdjsonObjects, sleep, until } from "./helpers";

const ADMIN_TOKEN = "faults-admin-token";
const TIMEOUT_MS = 500;
const ATTEMPTS = 2;
const BUDGET_MS = 2_000;
const RETRIES = 3;
/** Backends that recover stay down this long after the first producer request: past the in-invocation budget. */
const OUTAGE_MS = BUDGET_MS + 500;
/** Producer requests of an outage run; `/ok?n=i` gives 2 records (invocation + log). */
const REQUESTS = 8;
const RECORDS = REQUESTS * 2;

/** Each invocation delivered on its own (`bufferMs: 0`), so requests and attempts are counted per invocation; sharing has tests of its own. */
const TIMINGS = { timeoutMs: TIMEOUT_MS, attempts: ATTEMPTS, backoffMs: 10, budgetMs: BUDGET_MS, bufferMs: 0 };
const DURABLE = {
  ...TIMINGS,
  queue: "TAILFAN_QUEUE",
  deadLetter: "LOGS_R2",
  stats: "TAILFAN_STATS",
  retries: RETRIES,
  retryDelaySeconds: 1,
};
/** The same, with the durable path (retry queue and dead letter) removed: best effort, failures counted. */
const BEST_EFFORT = { ...TIMINGS, stats: "TAILFAN_STATS" };

/** The failing backends of an outage run, and how each fails. */
const FAILING: Record<string, Behaviour> = {
  flaky: { mode: 500 },
  down: { mode: 500 },
  throttled: { mode: 429, retryAfter: "1" },
  slow: { mode: "hang" },
  dropper: { mode: "drop" },
};
/** These come back after OUTAGE_MS; `down` and `dropper` never do. */
const RECOVERS = ["flaky", "throttled", "slow"];
/** What each failing backend's loss or dead letter must name as the reason. */
const REASONS: Record<string, RegExp> = {
  flaky: /HTTP 500/,
  down: /HTTP 500/,
  throttled: /HTTP 429/,
  slow: /timed out/,
  dropper: /network error/,
};
const HTTP_SINKS = [...Object.keys(FAILING), "fine"];
const ALL_SINKS = [...HTTP_SINKS, "archive"];

interface Counts {
  received: number;
  sent: number;
  retried: number;
  deadLettered: number;
  droppedFilter: number;
  droppedLimit: number;
  failed: number;
  pending: number;
  bytes: number;
  requests: number;
}
interface SinkStatus {
  sink: string;
  totals: Counts;
  lastError: { at: number; message: string; status: number | null } | null;
  unaccounted: number;
}
interface DeadLetter {
  sink: string;
  status: number | null;
  reason: string;
  attempts: number;
  deadLetteredAt: number;
  record: LogRecord;
}

let receiver: Receiver;
let bundle: Bundle;

beforeAll(async () => {
  receiver = await startReceiver();
  bundle = await bundleTailfan();
});

afterAll(async () => {
  await receiver?.close();
  bundle?.remove();
});

// ---------------------------------------------------------------------------
// A stack: the producer tailed by tailfan, with its work queue, R2 and stats.

interface Archived {
  record: LogRecord;
  /** The R2 object it is in, and when that was written. */
  key: string;
  uploaded: number;
}

interface Stack {
  id: string;
  logs: string[];
  hit(path: string): Promise<number>;
  status(): Promise<Map<string, SinkStatus>>;
  deadLetters(): Promise<DeadLetter[]>;
  archived(): Promise<Archived[]>;
  dispose(): Promise<void>;
}

/** http sinks to `/ctl/<id>-<name>` on the receiver (failing ones first), then an R2 archive. */
function outageSinks(id: string, names = HTTP_SINKS) {
  return [
    ...names.map((name) => ({
      name,
      type: "http",
      url: `${receiver.url}/ctl/${id}-${name}`,
      format: "ndjson",
      gzip: name !== "down",
    })),
    { name: "archive", type: "r2", binding: "LOGS_R2", prefix: "archive" },
  ];
}

async function startStack(
  id: string,
  sinks: object[],
  delivery: object,
  consumer: { maxBatchSize?: number; maxBatchTimeout?: number } = {},
): Promise<Stack> {
  const logs: string[] = [];
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      // tailfan's own console (its failure reports) is captured here instead of printed.
      handleStructuredLogs: (log) => {
        logs.push(log.message);
      },
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
          bindings: { SINKS: JSON.stringify(sinks), DELIVERY: JSON.stringify(delivery), ADMIN_TOKEN },
          r2Buckets: ["LOGS_R2"],
          queueProducers: { TAILFAN_QUEUE: "tailfan-work" },
          queueConsumers: { "tailfan-work": { maxBatchTimeout: 0.05, maxRetries: 10, ...consumer } },
          durableObjects: { TAILFAN_STATS: { className: "TailfanStats", useSQLite: true } },
        },
      ],
    }),
  );
  await mf.ready;
  const bucket = () => mf.getR2Bucket("LOGS_R2", "tailfan");
  return {
    id,
    logs,
    async hit(path) {
      const res = await mf.dispatchFetch(`http://localhost${path}`);
      await res.arrayBuffer();
      return res.status;
    },
    async status() {
      const tailfan = await mf.getWorker("tailfan");
      const res = await tailfan.fetch("http://tailfan/status", {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      const body = (await res.json()) as { sinks: SinkStatus[] | null };
      if (res.status !== 200 || body.sinks === null) throw new Error(`GET /status: ${JSON.stringify(body)}`);
      return new Map(body.sinks.map((s) => [s.sink, s]));
    },
    async deadLetters() {
      return readNdjsonObjects<DeadLetter>(await bucket(), "dead-letter/");
    },
    async archived() {
      const b = await bucket();
      const out: Archived[] = [];
      const { objects, truncated } = await b.list({ prefix: "archive/" });
      expect(truncated).toBe(false);
      for (const o of objects) {
        const records = await readNdjsonObjects<LogRecord>(b, o.key);
        for (const record of records) out.push({ record, key: o.key, uploaded: o.uploaded.getTime() });
      }
      return out;
    },
    dispose: () => mf.dispose(),
  };
}

// ---------------------------------------------------------------------------
// Accounting by record id.

const linesOf = (r: ReceivedRequest) =>
  r.body
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogRecord);

/** Every request the receiver got for a label, with the records in it. */
function requestsAt(label: string): (ReceivedRequest & { records: LogRecord[] })[] {
  return receiver.received.filter((r) => r.label === label).map((r) => ({ ...r, records: linesOf(r) }));
}

function tally(ids: Iterable<string>): Map<string, number> {
  const m = new Map<string, number>();
  for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

interface SinkView {
  /** Ids the backend accepted (answered 200), with how many times. */
  delivered: Map<string, number>;
  deadLettered: DeadLetter[];
  /** Expected ids neither delivered nor dead-lettered: lost. */
  missing: string[];
  /** Ids that arrived more than once (delivered twice, or delivered and dead-lettered). */
  duplicates: string[];
}

function view(expected: readonly string[], delivered: Map<string, number>, deadLettered: DeadLetter[]): SinkView {
  const dead = tally(deadLettered.map((d) => d.record.id));
  const missing = expected.filter((id) => !delivered.has(id) && !dead.has(id));
  const duplicates = [...new Set([...delivered.keys(), ...dead.keys()])].filter(
    (id) => (delivered.get(id) ?? 0) + (dead.get(id) ?? 0) > 1,
  );
  return { delivered, deadLettered, missing, duplicates };
}

interface Snapshot {
  status: Map<string, SinkStatus>;
  deadLetters: DeadLetter[];
  archive: Archived[];
  sinks: Map<string, SinkView>;
}

async function snapshot(stack: Stack, expected: readonly string[], http = HTTP_SINKS): Promise<Snapshot> {
  const [status, deadLetters, archive] = await Promise.all([stack.status(), stack.deadLetters(), stack.archived()]);
  const sinks = new Map<string, SinkView>();
  const dl = (name: string) => deadLetters.filter((d) => d.sink === name);
  for (const name of http) {
    const ok = requestsAt(`${stack.id}-${name}`).filter((r) => r.answer === 200);
    sinks.set(name, view(expected, tally(ok.flatMap((r) => r.records.map((x) => x.id))), dl(name)));
  }
  sinks.set("archive", view(expected, tally(archive.map((a) => a.record.id)), dl("archive")));
  return { status, deadLetters, archive, sinks };
}

/** Every invocation's counters are written and nothing is waiting in the queue. */
function flushed(s: Snapshot, count: number): boolean {
  return [...s.sinks.keys()].every((name) => {
    const st = s.status.get(name);
    return st !== undefined && st.totals.received === count && st.totals.pending === 0 && st.unaccounted === 0;
  });
}

/** The "done" check: every record routed to every sink was delivered or dead-lettered. */
const complete = (s: Snapshot) => [...s.sinks.values()].every((v) => v.missing.length === 0);

function describeSnapshot(s: Snapshot): string {
  return [...s.sinks]
    .map(([name, v]) => {
      const t = s.status.get(name)?.totals;
      return `${name}: missing ${v.missing.length}, counters ${JSON.stringify(t ?? null)}`;
    })
    .join("; ");
}

function report(title: string, s: Snapshot): void {
  const lines = [...s.sinks].map(
    ([name, v]) =>
      `  ${name.padEnd(9)} delivered ${v.delivered.size}, dead-lettered ${v.deadLettered.length}, lost ${v.missing.length}, duplicates ${v.duplicates.length}${v.duplicates.length ? ` [${v.duplicates.join(", ")}]` : ""}`,
  );
  console.log(`${title}\n${lines.join("\n")}`);
}

// ---------------------------------------------------------------------------
// The outage: failing backends switched on, traffic, recovery after OUTAGE_MS.

interface OutageRun {
  t0: number;
  /** When producer request i was dispatched. */
  sentAt: number[];
  /** When the recovering backends came back. */
  recoveredAt: number;
  /** Every record id the producer's invocations gave (from the healthy archive). */
  expected: string[];
}

async function runOutage(stack: Stack): Promise<OutageRun> {
  for (const [name, b] of Object.entries(FAILING)) receiver.behave(`${stack.id}-${name}`, b);
  const t0 = Date.now();
  const sentAt: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    sentAt.push(Date.now());
    expect(await stack.hit(`/ok?n=${i}`)).toBe(200);
  }
  await sleep(t0 + OUTAGE_MS - Date.now());
  for (const name of RECOVERS) receiver.behave(`${stack.id}-${name}`, null);
  const recoveredAt = Date.now();
  const archive = await until(
    "every record in the archive",
    () => stack.archived(),
    (a) => a.length >= RECORDS,
  );
  const expected = [...new Set(archive.map((a) => a.record.id))].sort();
  return { t0, sentAt, recoveredAt, expected };
}

/** The requests at a backend that carried request i's records, in order. */
const carrying = (label: string, i: number) =>
  requestsAt(label)
    .filter((r) => r.records.some((x) => x.url?.endsWith(`/ok?n=${i}`)))
    .sort((a, b) => a.at - b.at);

// ---------------------------------------------------------------------------

describe("durable delivery: retry queue and dead letter", () => {
  let stack: Stack;
  let run: OutageRun;
  let final: Snapshot;
  let settled: boolean;

  beforeAll(async () => {
    stack = await startStack("dur", outageSinks("dur"), DURABLE);
    run = await runOutage(stack);
    // Done when every record id routed to every sink is delivered or dead-lettered and the counters agree.
    // On a timeout the tests below still run on the last snapshot, so they name what is wrong.
    settled = (
      await poll(
        () => snapshot(stack, run.expected),
        (s) => complete(s) && flushed(s, RECORDS),
        30_000,
      )
    ).done;
    // Let anything late (a stray redelivery) land before the final read.
    await sleep(300);
    final = await snapshot(stack, run.expected);
    report("durable delivery, per sink:", final);
  });

  afterAll(async () => {
    await stack?.dispose();
  });

  it("settles: every record delivered or dead-lettered and every counter written, within 30 s", () => {
    expect(run.expected).toHaveLength(RECORDS);
    expect(settled, describeSnapshot(final)).toBe(true);
  });

  it("a. a backend down past the in-invocation budget that recovers gets every record; none lost", () => {
    const flaky = final.sinks.get("flaky") as SinkView;
    // It really was down for the in-invocation attempts.
    const before = requestsAt("dur-flaky").filter((r) => r.at < run.recoveredAt);
    expect(before.length).toBeGreaterThanOrEqual(REQUESTS * ATTEMPTS);
    expect(before.every((r) => r.answer === 500)).toBe(true);
    expect(flaky.missing).toEqual([]);
    // The outage was shorter than the retry schedule, so everything was delivered, nothing dead-lettered.
    expect(flaky.deadLettered).toEqual([]);
    expect([...flaky.delivered.keys()].sort()).toEqual(run.expected);
    // Duplicates are allowed but reported (above) and must be ids of this traffic.
    for (const v of final.sinks.values()) expect(run.expected).toEqual(expect.arrayContaining(v.duplicates));
    expect(complete(final)).toBe(true);
  });

  it("b. a backend down for good: after the retries every record is in the dead-letter bucket, with why", () => {
    const down = final.sinks.get("down") as SinkView;
    expect(down.delivered.size).toBe(0);
    expect(down.deadLettered.map((d) => d.record.id).sort()).toEqual(run.expected);
    for (const d of down.deadLettered) {
      expect(d).toMatchObject({ sink: "down", status: 500, attempts: ATTEMPTS * (RETRIES + 1) });
      expect(d.reason).toMatch(/^HTTP 500: answered 500/);
      expect(d.deadLetteredAt).toBeGreaterThan(run.t0);
      expect(d.record.url).toMatch(/\/ok\?n=\d+$/);
    }
    // Each record was tried in tail() and in each of the RETRIES queue deliveries, ATTEMPTS times.
    const tries = tally(requestsAt("dur-down").flatMap((r) => r.records.map((x) => x.id)));
    for (const id of run.expected) expect(tries.get(id), id).toBe(ATTEMPTS * (RETRIES + 1));
    // The first retry waited retryDelaySeconds, the next ones twice as long each time.
    const first = carrying("dur-down", 0).map((r) => r.at);
    expect(first).toHaveLength(ATTEMPTS * (RETRIES + 1));
    const gaps = [first[2], first[4], first[6]].map((t, k) => (t as number) - (first[1 + 2 * k] as number));
    expect(gaps[0]).toBeGreaterThanOrEqual(900);
    expect(gaps[1]).toBeGreaterThanOrEqual(1_900);
    expect(gaps[2]).toBeGreaterThanOrEqual(3_900);
  });

  it("c. 429 with Retry-After, a hang past the timeout and a dropped connection: delivered or dead-lettered, none lost", () => {
    for (const name of ["throttled", "slow", "dropper"]) {
      const v = final.sinks.get(name) as SinkView;
      expect(v.missing, name).toEqual([]);
    }
    // 429: Retry-After (1 s) is honoured between in-invocation attempts (the backoff alone is at most 10 ms).
    for (let i = 0; i < REQUESTS; i++) {
      const [a, b] = carrying("dur-throttled", i);
      expect(a?.answer).toBe(429);
      expect((b?.at ?? 0) - (a?.at ?? 0)).toBeGreaterThanOrEqual(950);
    }
    // Recovered: all delivered.
    expect([...(final.sinks.get("throttled") as SinkView).delivered.keys()].sort()).toEqual(run.expected);
    // Hang: each attempt is cut at the per-attempt timeout, then retried.
    for (let i = 0; i < REQUESTS; i++) {
      const [a, b] = carrying("dur-slow", i);
      expect(a?.answer).toBe("hang");
      const gap = (b?.at ?? 0) - (a?.at ?? 0);
      // The receiver stamps a request when it has read the body, which on a busy machine can be later
      // than tailfan's timer start: the margin is for that, a cut much earlier than the timeout still fails.
      expect(gap).toBeGreaterThanOrEqual(TIMEOUT_MS - 150);
      expect(gap).toBeLessThan(TIMEOUT_MS + 400);
    }
    expect([...(final.sinks.get("slow") as SinkView).delivered.keys()].sort()).toEqual(run.expected);
    // Dropped connection, for good: dead-lettered as a network error, with no status.
    const dropper = final.sinks.get("dropper") as SinkView;
    expect(dropper.delivered.size).toBe(0);
    expect(dropper.deadLettered.map((d) => d.record.id).sort()).toEqual(run.expected);
    for (const d of dropper.deadLettered) {
      expect(d).toMatchObject({ sink: "dropper", status: null, attempts: ATTEMPTS * (RETRIES + 1) });
      expect(d.reason).toMatch(REASONS.dropper as RegExp);
    }
  });

  it("d. healthy sinks beside the failing ones get every record once, within the per-attempt timeout", () => {
    for (const name of ["fine", "archive"]) {
      const v = final.sinks.get(name) as SinkView;
      expect([...v.delivered.keys()].sort(), name).toEqual(run.expected);
      expect(v.duplicates, name).toEqual([]);
      expect(v.deadLettered, name).toEqual([]);
    }
    const latencies: number[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const sent = run.sentAt[i] as number;
      const http = carrying("dur-fine", i)[0];
      expect(http?.answer).toBe(200);
      const r2 = final.archive.filter((a) => a.record.url?.endsWith(`/ok?n=${i}`)).map((a) => a.uploaded);
      expect(r2.length).toBe(2);
      latencies.push((http?.at as number) - sent, Math.max(...r2) - sent);
      // ... while the failing sinks were still failing.
      expect(http?.at).toBeLessThan(run.recoveredAt);
    }
    console.log(`healthy sinks: slowest arrival ${Math.max(...latencies)} ms after the producer request`);
    // A failing sink holds its own attempts for up to ATTEMPTS × TIMEOUT_MS; the healthy ones must not wait for it.
    expect(Math.max(...latencies)).toBeLessThan(TIMEOUT_MS + 300);
    // The recovering sink was still retrying when the healthy ones were done.
    const firstFlakyOk = requestsAt("dur-flaky").find((r) => r.answer === 200);
    expect(firstFlakyOk?.at).toBeGreaterThanOrEqual(run.recoveredAt);
  });

  it("f. the counters in GET /status match what the backends and the bucket saw", () => {
    for (const name of ALL_SINKS) {
      const st = final.status.get(name);
      const v = final.sinks.get(name) as SinkView;
      expect(st, name).toBeDefined();
      const t = (st as SinkStatus).totals;
      expect((st as SinkStatus).unaccounted, name).toBe(0);
      expect(t.received, name).toBe(RECORDS);
      expect(t.pending, name).toBe(0);
      expect(t.failed, name).toBe(0);
      expect(t.droppedLimit, name).toBe(0);
      expect(t.sent, name).toBe([...v.delivered.values()].reduce((a, b) => a + b, 0));
      expect(t.deadLettered, name).toBe(v.deadLettered.length);
      if (name !== "archive") expect(t.requests, name).toBe(requestsAt(`dur-${name}`).length);
    }
    const st = (name: string) => final.status.get(name) as SinkStatus;
    // Handed to the retry queue once per queue delivery that followed.
    expect(st("down").totals.retried).toBe(RECORDS * RETRIES);
    expect(st("fine").totals.retried).toBe(0);
    expect(st("down").lastError).toMatchObject({ status: 500, message: expect.stringMatching(/HTTP 500/) });
  });
});

describe("the durable path removed (no retry queue, no dead letter)", () => {
  let stack: Stack;
  let run: OutageRun;
  let final: Snapshot;
  let settled: boolean;

  beforeAll(async () => {
    stack = await startStack("best", outageSinks("best"), BEST_EFFORT);
    run = await runOutage(stack);
    const flush = await poll(
      () => snapshot(stack, run.expected),
      (s) => flushed(s, RECORDS),
      15_000,
    );
    settled = flush.done;
    final = flush.value;
    report("best effort, per sink:", final);
  });

  afterAll(async () => {
    await stack?.dispose();
  });

  it("settles: every invocation's counters written, within 15 s", () => {
    expect(run.expected).toHaveLength(RECORDS);
    expect(settled, describeSnapshot(final)).toBe(true);
  });

  it("a (control). the same outage loses records, so the done check fails", () => {
    expect(complete(final)).toBe(false);
    for (const name of Object.keys(FAILING)) {
      const v = final.sinks.get(name) as SinkView;
      // Every in-invocation attempt met the outage, and nothing tries again later.
      expect(v.missing.sort(), name).toEqual(run.expected);
    }
    for (const name of ["fine", "archive"]) expect((final.sinks.get(name) as SinkView).missing, name).toEqual([]);
  });

  it("e. every failure is counted as failed and logged with the sink and the reason", () => {
    for (const name of Object.keys(FAILING)) {
      const st = final.status.get(name) as SinkStatus;
      const lost = (final.sinks.get(name) as SinkView).missing.length;
      expect(st.totals.failed, name).toBe(lost);
      expect(st.lastError?.message, name).toMatch(REASONS[name] as RegExp);
      // A line per failed batch, `tailfan: sink "<name>" lost N record(s) after K attempt(s): <reason>`, throttled:
      // the repeats of one kind within a minute are summarized (src/log.ts), so each kind is printed once here.
      const re = new RegExp(`^tailfan: sink "${name}" lost (\\d+) record\\(s\\) after (\\d+) attempt\\(s\\): (.*)$`);
      const lines = stack.logs.map((l) => re.exec(l)).filter((m) => m !== null);
      expect(lines.length, `log lines for ${name}`).toBeGreaterThan(0);
      expect(new Set(lines.map((m) => kindOf(m[0]))).size, `one line per kind for ${name}`).toBe(lines.length);
      expect(
        lines.reduce((n, m) => n + Number(m[1]), 0),
        name,
      ).toBeLessThanOrEqual(lost);
      for (const m of lines) {
        expect(m[3], name).toMatch(REASONS[name] as RegExp);
        expect(m[3], name).toContain("(no retry queue configured)");
      }
    }
    expect(final.deadLetters).toEqual([]);
  });

  it("f. the counters in GET /status match what the backends saw", () => {
    for (const name of ALL_SINKS) {
      const st = final.status.get(name) as SinkStatus;
      const v = final.sinks.get(name) as SinkView;
      expect(st.unaccounted, name).toBe(0);
      expect(st.totals.received, name).toBe(RECORDS);
      expect(st.totals.sent, name).toBe([...v.delivered.values()].reduce((a, b) => a + b, 0));
      expect(st.totals.failed, name).toBe(v.missing.length);
      expect(st.totals.deadLettered + st.totals.retried + st.totals.pending, name).toBe(0);
      if (name !== "archive") expect(st.totals.requests, name).toBe(requestsAt(`best-${name}`).length);
    }
  });
});

describe("buffered mode", () => {
  const INVOCATIONS = 50;
  let stack: Stack;
  let expected: string[];
  let final: Snapshot;
  let failedInConsumer: number;
  let settled: boolean;

  beforeAll(async () => {
    stack = await startStack(
      "buf",
      outageSinks("buf", ["bad", "good"]),
      // A longer per-attempt timeout than the direct stacks': on a loaded machine a 500 ms timeout can cut off
      // a request the healthy sink did receive, and its retry is a duplicate, which would blur the exact counts below.
      { ...DURABLE, mode: "buffered", timeoutMs: 1_500 },
      { maxBatchSize: 100, maxBatchTimeout: 0.5 },
    );
    receiver.behave("buf-bad", { mode: 500 });
    for (let i = 0; i < INVOCATIONS; i += 10) {
      const wave = Array.from({ length: Math.min(10, INVOCATIONS - i) }, (_, k) => stack.hit(`/ok?n=${i + k}`));
      expect(await Promise.all(wave)).toEqual(wave.map(() => 200));
    }
    const archive = await until(
      "every record in the archive",
      () => stack.archived(),
      (a) => a.length >= INVOCATIONS * 2,
    );
    expected = [...new Set(archive.map((a) => a.record.id))].sort();
    // The consumer tried every record at the bad sink and it failed all its attempts; then it recovers.
    const failedAtBad = () =>
      tally(
        requestsAt("buf-bad")
          .filter((r) => r.answer === 500)
          .flatMap((r) => r.records.map((x) => x.id)),
      );
    await until("the consumer to fail every record at the bad sink", failedAtBad, (t) =>
      expected.every((id) => (t.get(id) ?? 0) >= ATTEMPTS),
    );
    receiver.behave("buf-bad", null);
    failedInConsumer = requestsAt("buf-bad").filter((r) => r.answer === 500).length;
    settled = (
      await poll(
        () => snapshot(stack, expected, ["bad", "good"]),
        (s) => complete(s) && flushed(s, INVOCATIONS * 2),
        20_000,
      )
    ).done;
    await sleep(300);
    final = await snapshot(stack, expected, ["bad", "good"]);
    report("buffered mode, per sink:", final);
  });

  afterAll(async () => {
    await stack?.dispose();
  });

  it("g. settles: every record delivered and every counter written, within 20 s", () => {
    expect(expected).toHaveLength(INVOCATIONS * 2);
    expect(settled, describeSnapshot(final)).toBe(true);
  });

  it("g. every record reaches every sink, in far fewer requests than invocations", () => {
    for (const name of ["bad", "good", "archive"]) {
      const v = final.sinks.get(name) as SinkView;
      expect([...v.delivered.keys()].sort(), name).toEqual(expected);
      expect(v.deadLettered, name).toEqual([]);
    }
    const good = requestsAt("buf-good");
    console.log(`buffered: ${INVOCATIONS} invocations, ${good.length} request(s) to the http sink`);
    expect(good.length).toBeLessThanOrEqual(INVOCATIONS / 5);
    const objects = new Set(final.archive.map((a) => a.key)).size;
    expect(objects).toBeLessThanOrEqual(INVOCATIONS / 5);
  });

  it("g. a sink failing in the consumer is retried alone: the others are not sent the same records again", () => {
    expect(failedInConsumer).toBeGreaterThanOrEqual(ATTEMPTS);
    for (const name of ["good", "archive"]) {
      const v = final.sinks.get(name) as SinkView;
      expect(v.duplicates, name).toEqual([]);
      expect(
        [...v.delivered.values()].every((n) => n === 1),
        name,
      ).toBe(true);
    }
    // The good backend was asked once per batch, and never for a record twice.
    const seen = tally(requestsAt("buf-good").flatMap((r) => r.records.map((x) => x.id)));
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
  });

  it("g. counters: received = sent for every sink, nothing pending, retries only for the failing one", () => {
    for (const name of ["bad", "good", "archive"]) {
      const st = final.status.get(name) as SinkStatus;
      const v = final.sinks.get(name) as SinkView;
      expect(st.unaccounted, name).toBe(0);
      expect(st.totals.received, name).toBe(INVOCATIONS * 2);
      expect(st.totals.pending, name).toBe(0);
      expect(st.totals.sent, name).toBe([...v.delivered.values()].reduce((a, b) => a + b, 0));
      expect(st.totals.retried > 0, name).toBe(name === "bad");
    }
  });
});
