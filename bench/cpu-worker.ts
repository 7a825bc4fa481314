/**
 * The whole tail() per invocation, side by side in one isolate: Cloudflare's
 * docs tail worker (`fetch(url, { method: "POST", body: JSON.stringify(events) })`)
 * against tailfan's own tail handler (src/index.ts) with one otlp sink and
 * with the shipped sinks plus an http sink, on the same synthetic TraceItems.
 * Driven by bench/cpu.mjs.
 *
 * Everything an invocation does until its last byte is on the wire is in the
 * timed span: normalize, scrub, route, limits, encode, gzip, building and
 * sending the requests (to a receiver Worker in the same workerd process,
 * which reads each body and answers 200), timers, settling, and adding the
 * counters to the isolate's window. The window's one write to the counters
 * object (a real Durable Object) happens once per DELIVERY.statsFlushMs; it is
 * timed on its own and spread over the invocations it carried.
 *
 * The KV, R2 and queue bindings are stand-ins in this isolate that read what
 * they are given (a queue message body is serialized to JSON, as the runtime
 * does) and answer at once: what the store itself does is not the tail
 * worker's CPU, and Miniflare's local stores run in the same process.
 */

import { gzip, ndjson } from "../sinks/shared";
import { buildConfig, formatConfigErrors } from "../src/config";
import tailfan, { TailfanStats } from "../src/index";
import { RecordSerializer } from "../src/json";
import { normalizeTraceItems } from "../src/normalize";
import { counterFlushCost, pendingWindow } from "../src/stats";
import { makeTraceItems } from "./pipeline-worker";

export { TailfanStats };

type Env = Record<string, unknown>;
type Obj = Record<string, unknown>;
type Handler = (events: readonly unknown[], env: Env, ctx: ExecutionContext) => unknown;

const STATS = "TAILFAN_STATS";
const RECEIVER = "https://collector.bench.example/ingest";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function drain(body: unknown): Promise<number> {
  if (typeof body === "string") return body.length;
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return body.byteLength;
  if (body instanceof ReadableStream) return (await new Response(body).arrayBuffer()).byteLength;
  return 0;
}

/** KV, R2 and queue stand-ins: they take what they are given, as the runtime's call does, and answer at once. */
function standIns(): Env {
  return {
    LOGS_KV: {
      get: async () => null,
      list: async () => ({ keys: [], list_complete: true }),
      getWithMetadata: async () => ({ value: null, metadata: null }),
      put: async (_key: string, value: unknown) => void (await drain(value)),
      delete: async () => {},
    },
    LOGS_R2: {
      get: async () => null,
      head: async () => null,
      put: async (key: string, value: unknown) => ({ key, size: await drain(value) }),
      delete: async () => {},
      list: async () => ({ objects: [], truncated: false }),
      createMultipartUpload: async () => {
        throw new Error("not in this benchmark");
      },
    },
    LOGS_QUEUE: queue(),
    // The work queue DELIVERY names (retries); direct delivery to answering sinks never sends to it.
    TAILFAN_QUEUE: queue(),
  };
}

function queue() {
  return {
    send: async (body: unknown) => void JSON.stringify(body),
    sendBatch: async (messages: { body: unknown }[]) => {
      for (const m of messages) JSON.stringify(m.body);
    },
  };
}

/** The docs tail worker, with its fetch handed to waitUntil so that the bench knows when it is done. */
const docsTailWorker: Handler = (events, _env, ctx) => {
  ctx.waitUntil(fetch(RECEIVER, { method: "POST", body: JSON.stringify(events) }));
};

const tailfanTail: Handler = (events, env, ctx) => (tailfan as unknown as { tail: Handler }).tail(events, env, ctx);

/** Runs one invocation: resolves when every promise it handed to waitUntil has settled. */
function invoke(handler: Handler, events: readonly unknown[], env: Env): Promise<unknown> {
  const work: Promise<unknown>[] = [];
  const ctx = {
    waitUntil: (p: Promise<unknown>) => void work.push(p),
    passThroughOnException() {},
    props: {},
  } as unknown as ExecutionContext;
  handler(events, env, ctx);
  return Promise.allSettled(work);
}

interface Variant {
  handler: Handler;
  env: Env;
  /** Writes counters (a window to keep open while timed). */
  counted: boolean;
  /** Invocations per tail() call: 1, or SHARED for the shared-delivery variants. */
  group: number;
}

/**
 * Invocations one shared delivery carries in the shared variants. The runtime
 * gives each tail() its own call; with `DELIVERY.bufferMs` the invocations of
 * a window are delivered together, which costs about what one tail() with
 * their TraceItems costs (normalize each, then one encode, gzip and request
 * per sink batch). The waiting itself is idle time, not CPU, so the shared
 * variants run that one call with `bufferMs = 0` instead of timing a window.
 */
const SHARED = 50;

function variants(base: Env, shippedSinks: unknown[], delivery: Obj): Record<string, Variant> {
  const otlp = [{ name: "otel", type: "otlp", endpoint: "https://otel.bench.example" }];
  const four = [...shippedSinks, { name: "collector", type: "http", url: RECEIVER, format: "ndjson", gzip: true }];
  // One env object per config, as the runtime hands an isolate the same env each time.
  // bufferMs 0: each call delivers at once, so that the clock measures work and never a window's wait.
  const envOf = (sinks: unknown[]): Env => ({
    ...base,
    ...standIns(),
    SINKS: JSON.stringify(sinks),
    DELIVERY: JSON.stringify({ ...delivery, bufferMs: 0 }),
  });
  for (const sinks of [otlp, four]) {
    const built = buildConfig(envOf(sinks));
    if (!built.ok) throw new Error(`bench config invalid: ${formatConfigErrors(built.errors)}`);
  }
  const otlpEnv = envOf(otlp);
  const fourEnv = envOf(four);
  return {
    docs: { handler: docsTailWorker, env: base, counted: false, group: 1 },
    otlp: { handler: tailfanTail, env: otlpEnv, counted: true, group: 1 },
    four: { handler: tailfanTail, env: fourEnv, counted: true, group: 1 },
    otlpShared: { handler: tailfanTail, env: otlpEnv, counted: true, group: SHARED },
    fourShared: { handler: tailfanTail, env: fourEnv, counted: true, group: SHARED },
  };
}

/**
 * The counters window. The invocation that opens it waits DELIVERY.statsFlushMs
 * before its write; the bench opens it with an untimed invocation so that no
 * timed one is the opener, and times the write when the window closes.
 */
class Window {
  opener: Promise<unknown> | null = null;
  openedAt = 0;
  /** tailfan invocations whose deltas the open window holds. */
  carried = 0;
  readonly writes: { ms: number; invocations: number }[] = [];

  constructor(private readonly flushMs: number) {}

  /** Makes sure a window is open with at least `needMs` left, closing (and timing) the current one if not. */
  async ensure(v: Variant, events: readonly unknown[], needMs: number): Promise<void> {
    if (pendingWindow(STATS) && this.opener && performance.now() - this.openedAt + needMs < this.flushMs) return;
    await this.close();
    const p = invoke(v.handler, events, v.env);
    this.carried++;
    const t0 = performance.now();
    while (!pendingWindow(STATS)) {
      if (performance.now() - t0 > 10_000) throw new Error("the counters window did not open");
      await sleep(0);
    }
    this.opener = p;
    this.openedAt = performance.now();
  }

  /** Waits for the open window's write; its time is what passes after the window's timer is due. */
  async close(): Promise<void> {
    if (!this.opener) return;
    const before = counterFlushCost().flushes;
    await this.opener;
    const ms = Math.max(0, performance.now() - this.openedAt - this.flushMs);
    if (counterFlushCost().flushes !== before + 1) throw new Error("the counters window was not written exactly once");
    this.writes.push({ ms, invocations: this.carried });
    this.opener = null;
    this.carried = 0;
  }
}

/** N invocations, `concurrency` at a time; the elapsed ms. */
async function block(v: Variant, batches: readonly unknown[][], concurrency: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, batches.length) }, async () => {
      while (next < batches.length) {
        const events = batches[next++] as unknown[];
        await invoke(v.handler, events, v.env);
      }
    }),
  );
  return performance.now() - t0;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

/** One TraceItem with `lines` console logs, taken from the synthetic set (its fetch event, their lines). */
function bigItem(lines: number): Obj {
  const items = makeTraceItems(Math.ceil(lines / 3) + 50, 0x2340);
  const logs: unknown[] = [];
  for (const it of items) for (const l of it.logs as unknown[]) if (logs.length < lines) logs.push(l);
  if (logs.length < lines) throw new Error(`only ${logs.length} lines generated`);
  const first = items.find((it) => "request" in (it.event as Obj)) as Obj;
  return { ...first, logs, exceptions: [], outcome: "ok" };
}

export interface CpuParams {
  items: number;
  rounds: number;
  warmup: number;
  concurrency: number;
  lines: number;
  bigRounds: number;
  sinks: unknown[];
  delivery: Obj;
}

export async function runCpu(env: Env, p: CpuParams): Promise<Obj> {
  const flushMs = Number(p.delivery.statsFlushMs ?? 5000);
  const all = variants(env, p.sinks, p.delivery);
  const names = Object.keys(all);
  const items = makeTraceItems(p.items);
  const batches = items.map((item) => [item]);
  const grouped: unknown[][] = [];
  for (let i = 0; i < items.length; i += SHARED) grouped.push(items.slice(i, i + SHARED));
  const prime = [makeTraceItems(1, 0x9e11)[0] as Obj];
  const window = new Window(flushMs);
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  let estimate = 1_000;
  for (let round = 0; round < p.warmup + p.rounds; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length] as string);
    for (const name of order) {
      const v = all[name] as Variant;
      if (v.counted) await window.ensure(v, prime, estimate * 2 + 200);
      // The first invocation of a config builds it (once per isolate in production): not timed.
      else await invoke(v.handler, prime, v.env);
      if (v.counted) {
        await invoke(v.handler, prime, v.env);
        window.carried++;
      }
      const ms = await block(v, v.group > 1 ? grouped : batches, p.concurrency);
      if (v.counted) window.carried += batches.length;
      estimate = Math.max(estimate, ms);
      if (round >= p.warmup) (times[name] as number[]).push(ms);
    }
  }
  await window.close();

  // One invocation with many lines, one at a time.
  const big = [bigItem(p.lines)];
  const bigTimes: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < 2 + p.bigRounds; round++) {
    for (const name of names) {
      const v = all[name] as Variant;
      // One invocation is one call whatever the variant: the shared ones would time the same thing again.
      if (v.group > 1) continue;
      if (v.counted) await window.ensure(v, prime, 1_000);
      const t0 = performance.now();
      await invoke(v.handler, big, v.env);
      const ms = performance.now() - t0;
      if (v.counted) window.carried++;
      if (round >= 2) (bigTimes[name] as number[]).push(ms);
    }
  }
  await window.close();

  // The floor under the many-line figures: gzipping that invocation's NDJSON once, nothing else (an r2 archive
  // or a gzip http sink does at least this). The body is built once; each round compresses a copy of its text.
  const serializer = new RecordSerializer();
  const body = ndjson(normalizeTraceItems(big).map((r) => serializer.serialize(r)));
  const gzipTimes: number[] = [];
  let gzipped = 0;
  for (let round = 0; round < 2 + p.bigRounds; round++) {
    // Another text each round (trailing spaces): gzip() answers a repeat of the last body from its memo.
    const text = body + " ".repeat(round);
    const t0 = performance.now();
    gzipped = (await gzip(text)).byteLength;
    if (round >= 2) gzipTimes.push(performance.now() - t0);
  }

  const perInvocation: Record<string, number> = {};
  const spread: Record<string, [number, number]> = {};
  // Each round's variants ran back to back under the same load: a ratio is the median of the rounds' own ratios.
  const roundRatios: Record<string, number> = {};
  const docs = times.docs as number[];
  for (const name of names) {
    const xs = (times[name] as number[]).map((ms) => ms / batches.length);
    perInvocation[name] = median(xs);
    spread[name] = [Math.min(...xs), Math.max(...xs)];
    roundRatios[name] = median((times[name] as number[]).map((ms, i) => ms / (docs[i] as number)));
  }
  const writeMs = window.writes.reduce((n, w) => n + w.ms, 0);
  const carried = window.writes.reduce((n, w) => n + w.invocations, 0);
  return {
    params: { ...p, sinks: undefined, delivery: undefined, flushMs },
    perInvocation,
    spread,
    roundRatios,
    counters: { writes: window.writes.length, ms: writeMs, invocations: carried, perInvocation: writeMs / carried },
    big: Object.fromEntries(
      names.filter((n) => (all[n] as Variant).group === 1).map((n) => [n, median(bigTimes[n] as number[])]),
    ),
    shared: SHARED,
    bigLines: p.lines,
    bigGzip: { ms: median(gzipTimes), bytes: new TextEncoder().encode(body).byteLength, gzipped },
  };
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    try {
      if (url.pathname === "/cpu" && request.method === "POST") {
        return Response.json(await runCpu(env, (await request.json()) as CpuParams));
      }
      return new Response("not found", { status: 404 });
    } catch (err) {
      return new Response(err instanceof Error ? (err.stack ?? err.message) : String(err), { status: 500 });
    }
  },
} satisfies ExportedHandler<Env>;
