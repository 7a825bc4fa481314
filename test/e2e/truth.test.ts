/**
 * Delivery that tells the truth under faults, on the real runtime: a producer
 * Worker tailed by tailfan (bundled from src/), HTTP backends played by the
 * local receiver, and each fault below counted by record id against what the
 * backends, the buckets and GET /status say.
 *
 * 1. a hanging sink with many batches beside a healthy one (fair connections)
 * 2. buffered mode, a hanging sink and large bodies (an aborted upload)
 * 3. a Retry-After longer than the in-invocation budget
 * 4. a counters object that hangs on writes and throws on reads
 * 5. a sink that crashes the delivery code
 * 6. sinks that take only some records (Sentry, Slack)
 * 7. POST /replay with a sink that is down and a retry queue
 * 8. KV keys from script names with surrogates
 * 9. a config that does not load
 */
import { mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogRecord } from "../../src/record";
import type { ReceivedRequest } from "../support/received";
import { type Receiver, startReceiver } from "../support/receiver";
import { type Bundle, bundleTailfan, readNdjsonObjects, sleep, until } from "./helpers";

const ADMIN_TOKEN = "truth-admin-token";
const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

interface Counts {
  received: number;
  sent: number;
  retried: number;
  deadLettered: number;
  droppedFilter: number;
  droppedLimit: number;
  failed: number;
  pending: number;
  requests: number;
}
interface SinkStatus {
  sink: string;
  totals: Counts;
  unaccounted: number;
}

let receiver: Receiver;
let bundle: Bundle;
/** The same bundle with one extra sink type, `crashing`, whose send answers nothing (a bug in a sink). */
let crashBundle: Bundle;

beforeAll(async () => {
  receiver = await startReceiver();
  bundle = await bundleTailfan();
  crashBundle = await bundleTailfan({ crashingSink: true });
});

afterAll(async () => {
  await receiver?.close();
  bundle?.remove();
  crashBundle?.remove();
});

interface StackOptions {
  sinks: object[] | string;
  delivery: object;
  consumer?: { maxBatchSize?: number; maxBatchTimeout?: number };
  /** Bind TAILFAN_STATS to a counters object that hangs on writes and throws on reads. */
  brokenStats?: boolean;
  /** Persist R2 here, so it outlives a setOptions. */
  persist?: string;
  bundle?: Bundle;
}

interface Stack {
  logs: string[];
  mf: Miniflare;
  hit(path: string): Promise<number>;
  tailfan(path: string, init?: RequestInit): Promise<Response>;
  status(): Promise<Map<string, SinkStatus>>;
  bucket(): ReturnType<Miniflare["getR2Bucket"]>;
  /** Swaps SINKS (a config fix and redeploy); storage stays. */
  redeploy(sinks: object[] | string): Promise<void>;
  dispose(): Promise<void>;
}

async function startStack(o: StackOptions): Promise<Stack> {
  const logs: string[] = [];
  const options = (sinks: object[] | string) =>
    convertV4MiniflareOptions({
      handleStructuredLogs: (log) => {
        logs.push(log.message);
      },
      ...(o.persist ? { r2Persist: o.persist, durableObjectsPersist: o.persist } : {}),
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
          scriptPath: (o.bundle ?? bundle).script,
          modulesRoot: (o.bundle ?? bundle).dir,
          compatibilityDate: "2025-11-01",
          bindings: {
            SINKS: typeof sinks === "string" ? sinks : JSON.stringify(sinks),
            DELIVERY: JSON.stringify(o.delivery),
            ADMIN_TOKEN,
          },
          r2Buckets: ["LOGS_R2"],
          kvNamespaces: ["LOGS_KV"],
          queueProducers: { TAILFAN_QUEUE: "tailfan-work" },
          queueConsumers: { "tailfan-work": { maxBatchTimeout: 0.05, maxRetries: 10, ...o.consumer } },
          durableObjects: {
            TAILFAN_STATS: o.brokenStats
              ? { className: "BrokenStats", scriptName: "broken-stats" }
              : { className: "TailfanStats", useSQLite: true },
          },
        },
        ...(o.brokenStats
          ? [
              {
                name: "broken-stats",
                modules: true,
                scriptPath: join(import.meta.dirname, "broken-stats.js"),
                compatibilityDate: "2025-11-01",
                durableObjects: { BROKEN: "BrokenStats" },
              },
            ]
          : []),
      ],
    });
  const mf = new Miniflare(options(o.sinks));
  await mf.ready;
  const tailfan = async (path: string, init?: RequestInit) => {
    const worker = await mf.getWorker("tailfan");
    return (await worker.fetch(`http://tailfan${path}`, init as never)) as unknown as Response;
  };
  return {
    logs,
    mf,
    async hit(path) {
      const res = await mf.dispatchFetch(`http://localhost${path}`);
      await res.arrayBuffer();
      return res.status;
    },
    tailfan,
    async status() {
      const res = await tailfan("/status", { headers: auth });
      const body = (await res.json()) as { sinks: SinkStatus[] | null };
      if (res.status !== 200 || body.sinks === null) throw new Error(`GET /status: ${JSON.stringify(body)}`);
      return new Map(body.sinks.map((s) => [s.sink, s]));
    },
    bucket: () => mf.getR2Bucket("LOGS_R2", "tailfan"),
    async redeploy(sinks) {
      await mf.setOptions(options(sinks));
    },
    dispose: () => mf.dispose(),
  };
}

const linesOf = (r: ReceivedRequest) =>
  r.body
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogRecord);

function requestsAt(label: string): (ReceivedRequest & { records: LogRecord[] })[] {
  return receiver.received.filter((r) => r.label === label).map((r) => ({ ...r, records: linesOf(r) }));
}

function tally(ids: Iterable<string>): Map<string, number> {
  const m = new Map<string, number>();
  for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

/** Ids a backend accepted (answered 200), with how many times. */
const accepted = (label: string) =>
  tally(
    requestsAt(label)
      .filter((r) => r.answer === 200)
      .flatMap((r) => r.records.map((x) => x.id)),
  );

/** Every record tailfan archived to R2 under `archive/`. */
async function archived(stack: Stack): Promise<LogRecord[]> {
  return readNdjsonObjects<LogRecord>(await stack.bucket(), "archive/");
}

const http = (id: string, name: string, extra: object = {}) => ({
  name,
  type: "http",
  url: `${receiver.url}/ctl/${id}-${name}`,
  format: "ndjson",
  gzip: false,
  ...extra,
});
const archive = { name: "archive", type: "r2", binding: "LOGS_R2", prefix: "archive" };

/** The accounting invariant of a sink, from its totals. */
function balanced(t: Counts): boolean {
  return t.received === t.sent + t.droppedLimit + t.deadLettered + t.failed + t.pending;
}

// ---------------------------------------------------------------------------

describe("1. a hanging sink with many batches beside a healthy one", () => {
  const TIMEOUT_MS = 500;
  const LINES = 20;
  const RECORDS = LINES + 1;
  let stack: Stack;
  let sentAt: number;
  let st: Map<string, SinkStatus>;

  beforeAll(async () => {
    // Best effort, so a false loss would show as `failed`; the hanging sink is listed first.
    stack = await startStack({
      sinks: [http("fair", "hang", { maxRecords: 1 }), http("fair", "fine", { maxRecords: 1 })],
      // Each invocation delivered at once (bufferMs 0): the time measured is the connections' fairness alone.
      delivery: {
        timeoutMs: TIMEOUT_MS,
        attempts: 2,
        backoffMs: 10,
        budgetMs: 1_000,
        stats: "TAILFAN_STATS",
        bufferMs: 0,
      },
    });
    receiver.behave("fair-hang", { mode: "hang" });
    sentAt = Date.now();
    expect(await stack.hit(`/many?n=${LINES}`)).toBe(200);
    st = await until(
      "both sinks' counters",
      () => stack.status(),
      (s) => s.get("fine")?.totals.received === RECORDS && s.get("hang")?.totals.received === RECORDS,
    );
    // Let the hanging sink's budget run out and its counters land.
    st = await until(
      "the hanging sink to settle",
      () => stack.status(),
      (s) => (s.get("hang")?.totals.failed ?? 0) === RECORDS,
      10_000,
    );
  });

  afterAll(async () => {
    await stack?.dispose();
  });

  it("the healthy sink gets every record once, well within one per-attempt timeout", () => {
    const fine = requestsAt("fair-fine");
    const ids = accepted("fair-fine");
    expect(ids.size).toBe(RECORDS);
    expect([...ids.values()].every((n) => n === 1)).toBe(true);
    const slowest = Math.max(...fine.map((r) => r.at)) - sentAt;
    console.log(`fair connections: healthy sink's ${RECORDS} batches all arrived ${slowest} ms after the request`);
    expect(slowest).toBeLessThan(TIMEOUT_MS);
  });

  it("what the backend accepted is counted sent, never failed; the hanging sink's records are failed, never sent", () => {
    const fine = st.get("fine")?.totals as Counts;
    expect(fine).toMatchObject({ received: RECORDS, sent: RECORDS, failed: 0 });
    const hang = st.get("hang")?.totals as Counts;
    expect(hang).toMatchObject({ received: RECORDS, sent: 0, failed: RECORDS });
    expect(balanced(fine) && balanced(hang)).toBe(true);
    // No attempt was given a useless timeout: every request the hanging sink got was held the full timeout.
    expect(stack.logs.some((l) => /timed out after \d ms/.test(l))).toBe(false);
    expect(stack.logs.some((l) => /not sent: the delivery budget ran out/.test(l))).toBe(true);
  });
});

describe("1. the same with the retry queue (durable)", () => {
  const LINES = 20;
  const RECORDS = LINES + 1;
  let stack: Stack;
  let st: Map<string, SinkStatus>;

  beforeAll(async () => {
    stack = await startStack({
      sinks: [http("fairq", "hang", { maxRecords: 1 }), http("fairq", "fine", { maxRecords: 1 })],
      delivery: {
        timeoutMs: 500,
        attempts: 2,
        backoffMs: 10,
        budgetMs: 1_000,
        queue: "TAILFAN_QUEUE",
        deadLetter: "LOGS_R2",
        retries: 0,
        stats: "TAILFAN_STATS",
      },
    });
    receiver.behave("fairq-hang", { mode: "hang" });
    expect(await stack.hit(`/many?n=${LINES}`)).toBe(200);
    st = await until(
      "both sinks to settle",
      () => stack.status(),
      (s) => s.get("fine")?.totals.received === RECORDS && s.get("hang")?.totals.deadLettered === RECORDS,
      10_000,
    );
    // A retry of the healthy sink's records would arrive within this time.
    await sleep(1_500);
  });

  afterAll(async () => {
    await stack?.dispose();
  });

  it("the healthy sink's records are accepted once and never retried or dead-lettered", async () => {
    const ids = accepted("fairq-fine");
    expect(ids.size).toBe(RECORDS);
    expect([...ids.values()].filter((n) => n > 1)).toEqual([]);
    expect(requestsAt("fairq-fine")).toHaveLength(RECORDS);
    expect((await stack.status()).get("fine")?.totals).toMatchObject({
      sent: RECORDS,
      retried: 0,
      deadLettered: 0,
      failed: 0,
      pending: 0,
    });
    expect(st.get("hang")?.totals).toMatchObject({ sent: 0, deadLettered: RECORDS, failed: 0 });
  });
});

describe("2. buffered mode with a hanging sink and large bodies", () => {
  const INVOCATIONS = 30;
  const LINES = 100;
  let stack: Stack;
  let expected: string[];
  let stall: Server;
  let stalled = 0;

  beforeAll(async () => {
    // A backend that accepts the connection and never reads: the request body is still uploading when the
    // attempt times out, the case in which the runtime reports an abort reason as an uncaught exception.
    stall = createServer((socket) => {
      stalled++;
      socket.pause();
    });
    await new Promise<void>((resolve) => stall.listen(0, "127.0.0.1", resolve));
    const port = (stall.address() as AddressInfo).port;
    stack = await startStack({
      sinks: [
        // Bodies of several MB: more than the kernel's socket buffers take, so the upload is cut mid-way.
        {
          name: "hang",
          type: "http",
          url: `http://127.0.0.1:${port}/`,
          format: "ndjson",
          gzip: false,
          maxBytes: 10 * 1024 * 1024,
        },
        http("abort", "good"),
      ],
      delivery: {
        mode: "buffered",
        queue: "TAILFAN_QUEUE",
        deadLetter: "LOGS_R2",
        bufferMs: 1_000,
        // Long enough that the healthy sink's large batches never time out on a busy machine.
        timeoutMs: 2_000,
        attempts: 1,
        budgetMs: 3_000,
        retries: 1,
        retryDelaySeconds: 1,
      },
      consumer: { maxBatchSize: 100, maxBatchTimeout: 1 },
    });
    const wave = Array.from({ length: INVOCATIONS }, (_, i) => stack.hit(`/many?n=${LINES}&size=2000&i=${i}`));
    expect(await Promise.all(wave)).toEqual(wave.map(() => 200));
    // Polled by counting lines, not parsing them: the bodies add up to several MB.
    const lines = () =>
      receiver.received
        .filter((r) => r.label === "abort-good" && r.answer === 200)
        .reduce((n, r) => n + r.body.split("\n").length - 1, 0);
    await until(
      "the good backend to have every record",
      lines,
      (n) => n >= INVOCATIONS * (LINES + 1),
      30_000,
      (n) => `${n} of ${INVOCATIONS * (LINES + 1)}`,
    );
    expected = [...accepted("abort-good").keys()];
    // A consumer invocation that ended in an exception would be delivered again within this time.
    await sleep(4_000);
  });

  afterAll(async () => {
    await stack?.dispose();
    stall?.close();
  });

  it("the hanging sink was really sent to, and cut off", () => {
    expect(stalled).toBeGreaterThan(0);
  });

  it("the healthy sink got every record exactly once: the consumer batch was not delivered again", () => {
    expect(expected).toHaveLength(INVOCATIONS * (LINES + 1));
    const good = accepted("abort-good");
    expect([...good.values()].filter((n) => n > 1).length, "records the good backend got more than once").toBe(0);
  });
});

describe("3. a Retry-After longer than the in-invocation budget", () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({
      sinks: [http("ra", "throttled")],
      delivery: {
        queue: "TAILFAN_QUEUE",
        deadLetter: "LOGS_R2",
        timeoutMs: 500,
        attempts: 1,
        budgetMs: 1_000,
        retries: 3,
        retryDelaySeconds: 1,
        stats: "TAILFAN_STATS",
      },
    });
    receiver.behave("ra-throttled", { mode: 429, retryAfter: "4", for: 1 });
    expect(await stack.hit("/ok?n=1")).toBe(200);
    await until(
      "the retry to be accepted",
      () => requestsAt("ra-throttled"),
      (r) => r.some((x) => x.answer === 200),
      15_000,
    );
  });

  afterAll(async () => {
    await stack?.dispose();
  });

  it("the queued retry waits for the backend's Retry-After, not only retryDelaySeconds", () => {
    const [first, second] = requestsAt("ra-throttled");
    expect(first?.answer).toBe(429);
    expect(second?.answer).toBe(200);
    const gap = (second?.at ?? 0) - (first?.at ?? 0);
    console.log(`Retry-After 4 s, retryDelaySeconds 1: retried after ${gap} ms`);
    expect(gap).toBeGreaterThanOrEqual(3_900);
    expect(tally(second?.records.map((r) => r.id) ?? []).size).toBe(2);
  });
});

describe("4. a counters object that hangs on writes and throws on reads", () => {
  const INVOCATIONS = 6;
  let stack: Stack;
  let expected: string[];

  beforeAll(async () => {
    stack = await startStack({
      sinks: [http("stats", "good"), archive],
      delivery: {
        mode: "buffered",
        queue: "TAILFAN_QUEUE",
        stats: "TAILFAN_STATS",
        retryDelaySeconds: 1,
        bufferMs: 1_000,
      },
      brokenStats: true,
      // Three consumer batches: each one's counters write hangs.
      consumer: { maxBatchSize: 2, maxBatchTimeout: 0.05 },
    });
    for (let i = 0; i < INVOCATIONS; i++) expect(await stack.hit(`/ok?n=${i}`)).toBe(200);
    const all = await until(
      "every record in the archive",
      () => archived(stack),
      (a) => a.length >= INVOCATIONS * 2,
      30_000,
      (a) => `${a.length} of ${INVOCATIONS * 2}`,
    );
    expected = [...new Set(all.map((r) => r.id))];
  });

  afterAll(async () => {
    await stack?.dispose();
  });

  it("every consumer batch is delivered: a counters write that never answers holds nothing back", async () => {
    expect(expected).toHaveLength(INVOCATIONS * 2);
    const good = await until(
      "the good backend to have every record",
      () => accepted("stats-good"),
      (t) => expected.every((id) => t.has(id)),
    );
    expect([...good.values()].every((n) => n === 1)).toBe(true);
  });

  it("GET /status answers 200, says the counters are unavailable and how many writes failed since when", async () => {
    await until(
      "a failed counters write",
      () => stack.logs,
      (l) => l.some((x) => x.includes("could not write counters")),
    );
    const res = await stack.tailfan("/status", { headers: auth });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      counters: string;
      sinks: unknown;
      counterWrites: { failed: number; since: number | null };
    };
    expect(body.counters).toMatch(/^unavailable: .*stats storage is broken/);
    expect(body.sinks).toBeNull();
    expect(body.counterWrites.failed).toBeGreaterThan(0);
    expect(body.counterWrites.since).toEqual(expect.any(Number));
  });

  it("GET /records answers 503 with the reason, not 500", async () => {
    const res = await stack.tailfan("/records", { headers: auth });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: expect.stringMatching(/counters object is unavailable: .*broken/) });
  });

  it("the live view's records panel answers 503 with the reason, not 500", async () => {
    const res = await stack.tailfan("/?part=records", { headers: auth });
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(/^the counters objects are unavailable: .*broken/);
  });

  it("the dashboard answers 200 and shows the failed writes", async () => {
    const res = await stack.tailfan("/", { headers: auth });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('id="counter-failures"');
    expect(html).toMatch(/\d+ counters write\(s\) failed since \d{4}-/);
  });
});

describe("5. a sink that crashes the delivery code", () => {
  let stack: Stack;
  let st: Map<string, SinkStatus>;

  beforeAll(async () => {
    stack = await startStack({
      bundle: crashBundle,
      sinks: [{ name: "buggy", type: "crashing" }, archive],
      delivery: {
        queue: "TAILFAN_QUEUE",
        deadLetter: "LOGS_R2",
        retries: 1,
        retryDelaySeconds: 1,
        stats: "TAILFAN_STATS",
      },
    });
    expect(await stack.hit("/ok?n=5")).toBe(200);
    st = await until(
      "the crashed sink's records to be dead-lettered",
      () => stack.status(),
      (s) => s.get("buggy")?.totals.deadLettered === 2 && s.get("buggy")?.totals.pending === 0,
      20_000,
      (s) => JSON.stringify(s.get("buggy")),
    );
  });

  afterAll(async () => {
    await stack?.dispose();
  });

  it("the records are retried, then dead-lettered with the crash as reason, and counted", async () => {
    const buggy = st.get("buggy") as SinkStatus;
    expect(buggy.totals).toMatchObject({ received: 2, sent: 0, retried: 2, deadLettered: 2, failed: 0, pending: 0 });
    expect(buggy.unaccounted).toBe(0);
    const dead = await readNdjsonObjects<{ sink: string; reason: string; record: LogRecord }>(
      await stack.bucket(),
      "dead-letter/buggy/",
    );
    const ids = new Set((await archived(stack)).map((r) => r.id));
    expect(dead.map((d) => d.record.id).sort()).toEqual([...ids].sort());
    for (const d of dead) expect(d.reason).toMatch(/^delivery crashed: /);
  });
});

describe("6. sinks that take only some records", () => {
  let stack: Stack;
  let st: Map<string, SinkStatus>;
  let all: LogRecord[];

  beforeAll(async () => {
    stack = await startStack({
      sinks: [
        { name: "sentry", type: "sentry", dsn: `http://key@${new URL(receiver.url).host}/4242` },
        { name: "slack", type: "slack", webhook: `${receiver.url}/ok/filter-slack` },
        archive,
      ],
      delivery: { stats: "TAILFAN_STATS" },
    });
    for (let i = 0; i < 3; i++) expect(await stack.hit(`/ok?n=${i}`)).toBe(200);
    expect(await stack.hit("/throw?n=9")).toBe(500);
    all = await until(
      "every record in the archive",
      () => archived(stack),
      (a) => a.length >= 3 * 2 + 3,
    );
    st = await until(
      "the counters",
      () => stack.status(),
      (s) => s.get("archive")?.totals.received === all.length && (s.get("sentry")?.totals.received ?? 0) > 0,
    );
  });

  afterAll(async () => {
    await stack?.dispose();
  });

  it("Sentry counts only the exception (and its invocation's logs) as sent; the rest is droppedFilter", () => {
    const exceptions = all.filter((r) => r.type === "exception");
    expect(exceptions).toHaveLength(1);
    const failing = (exceptions[0] as LogRecord).invocationId;
    const taken = all.filter((r) => r.type === "exception" || (r.type === "log" && r.invocationId === failing));
    const sentry = (st.get("sentry") as SinkStatus).totals;
    expect(sentry).toMatchObject({
      received: taken.length,
      sent: taken.length,
      droppedFilter: all.length - taken.length,
    });
    expect(balanced(sentry)).toBe(true);
    // One Sentry event reached the backend: the exception.
    expect(requestsAt("4242").map((r) => r.body.includes('"type":"event"'))).toEqual([true]);
  });

  it("Slack counts only error records (folded per invocation) as sent", () => {
    const slack = (st.get("slack") as SinkStatus).totals;
    const errors = all.filter((r) => r.level === "error");
    const invocationAlone = errors.filter(
      (r) =>
        r.type !== "invocation" || !errors.some((e) => e.type !== "invocation" && e.invocationId === r.invocationId),
    );
    expect(slack.sent).toBe(invocationAlone.length);
    expect(slack.sent + slack.droppedFilter).toBe(all.length);
    expect(requestsAt("filter-slack")).toHaveLength(1);
  });
});

/** A TraceItem as `wrangler tail --format json` prints it. */
function traceItem(scriptName: string, message: string) {
  const ts = Date.now();
  return {
    outcome: "ok",
    scriptName,
    eventTimestamp: ts,
    event: { request: { url: "https://example.com/api", method: "GET", headers: {} }, response: { status: 200 } },
    logs: [{ level: "warn", message: [message], timestamp: ts + 1 }],
    exceptions: [],
    diagnosticsChannelEvents: [],
  };
}

describe("7. POST /replay with a sink that is down and a retry queue", () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({
      sinks: [http("replay", "down")],
      delivery: {
        queue: "TAILFAN_QUEUE",
        deadLetter: "LOGS_R2",
        timeoutMs: 500,
        attempts: 1,
        budgetMs: 1_000,
        retries: 5,
        retryDelaySeconds: 60,
        stats: "TAILFAN_STATS",
      },
    });
    receiver.behave("replay-down", { mode: 500 });
  });

  afterAll(async () => {
    await stack?.dispose();
  });

  it("reports the records that went to the retry queue as pending, as /status counts them", async () => {
    const items = [traceItem("replayed", "one"), traceItem("replayed", "two")];
    const res = await stack.tailfan("/replay", {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify(items),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { sinks: { sink: string; pending: number; failed: number }[] };
    expect(body.sinks).toEqual([expect.objectContaining({ sink: "down", records: 4, pending: 4, failed: 0 })]);
    const st = await until(
      "the counters",
      () => stack.status(),
      (s) => s.get("down")?.totals.received === 4,
    );
    expect(st.get("down")?.totals).toMatchObject({ pending: 4, failed: 0, retried: 4 });
  });
});

describe("8. KV keys from script names with surrogates", () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({
      sinks: [{ name: "kv", type: "kv", binding: "LOGS_KV", key: "logs/{script}/{id}" }],
      delivery: { stats: "TAILFAN_STATS" },
    });
  });

  afterAll(async () => {
    await stack?.dispose();
  });

  it("a lone surrogate or a cut inside a pair never fails the batch: every record is stored", async () => {
    const names = ["lone-\ud800-high", "lone-\udc00-low", `${"a".repeat(127)}\u{1f600}`, "plain"];
    // JSON escapes keep the lone surrogates as they are, as a replayed capture can have them.
    const body = JSON.stringify(names.map((n, i) => traceItem(n, `line ${i}`)));
    const res = await stack.tailfan("/replay", {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body,
    });
    expect(res.status).toBe(200);
    const report = (await res.json()) as { sinks: { delivered: number; failed: number; errors: string[] }[] };
    expect(report.sinks).toEqual([expect.objectContaining({ delivered: 8, failed: 0 })]);
    const kv = await stack.mf.getKVNamespace("LOGS_KV", "tailfan");
    const { keys } = await kv.list({ prefix: "logs/" });
    expect(keys).toHaveLength(names.length);
    for (const { name } of keys) expect(name).toBe(Buffer.from(name, "utf8").toString("utf8"));
    expect(keys.map((k) => k.name.split("/")[1]).sort()).toEqual(
      ["lone-\ufffd-high", "lone-\ufffd-low", "a".repeat(127), "plain"].sort(),
    );
  });
});

describe("9. a config that does not load", () => {
  const REQUESTS = 3;
  let stack: Stack;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tailfan-unconfigured-"));
    stack = await startStack({
      sinks: '[{ "name": "archive", "type": "r2", "binding": "LOGS_R2", "prefx": "archive" }]',
      delivery: { deadLetter: "LOGS_R2", stats: "TAILFAN_STATS" },
      persist: dir,
    });
    for (let i = 0; i < REQUESTS; i++) expect(await stack.hit(`/ok?n=${i}`)).toBe(200);
  });

  afterAll(async () => {
    await stack?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps every TraceItem in the dead-letter bucket under unconfigured/, says so, and replays after the fix", async () => {
    const bucket = await stack.bucket();
    const objects = await until(
      "the kept TraceItems",
      async () => (await bucket.list({ prefix: "unconfigured/" })).objects,
      (o) => o.length >= REQUESTS,
    );
    expect(objects.every((o) => /^unconfigured\/\d{4}\/\d\d\/\d\d\/\d+_[0-9a-f-]+\.ndjson\.gz$/.test(o.key))).toBe(
      true,
    );
    expect(stack.logs.filter((l) => /TraceItem\(s\) kept in LOGS_R2 at unconfigured\//.test(l))).toHaveLength(REQUESTS);
    // The file's content, gunzipped, is what POST /replay takes once the config is fixed.
    let capture = "";
    for (const o of objects) {
      const obj = await bucket.get(o.key);
      capture += gunzipSync(Buffer.from(await (obj as NonNullable<typeof obj>).arrayBuffer())).toString("utf8");
    }
    await stack.redeploy([archive]);
    const res = await stack.tailfan("/replay", {
      method: "POST",
      headers: { ...auth, "content-type": "application/x-ndjson" },
      body: capture,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ accepted: REQUESTS, rejected: [] });
    const records = await archived(stack);
    expect(
      records
        .filter((r) => r.type === "invocation")
        .map((r) => r.url)
        .sort(),
    ).toEqual(Array.from({ length: REQUESTS }, (_, i) => `http://localhost/ok?n=${i}`));
    expect(records).toHaveLength(REQUESTS * 2);
    // Counted, under "*": kept while unconfigured.
    const st = await stack.status();
    expect(st.get("*")?.totals).toMatchObject({ received: REQUESTS, deadLettered: REQUESTS });
  });
});
