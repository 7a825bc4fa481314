/**
 * The streaming tail's benchmark Worker: the same synthetic invocations as
 * bench/pipeline-worker.ts, each also as the events `tailStream` receives
 * (onset, logs, exceptions, one subrequest span for fetch events, return,
 * outcome). Times, interleaved in one isolate, tail()'s path for the
 * TraceItem against the streaming path for its events, both up to the
 * encoded payloads of the same sinks (nothing is sent). Driven by
 * bench/stream.mjs.
 */
import { buildConfig, type ResolvedConfig } from "../src/config";
import { splitBatches } from "../src/delivery/batch";
import { normalizeTraceItems } from "../src/normalize";
import { planDelivery, prepareRecords } from "../src/pipeline";
import type { LogRecord } from "../src/record";
import { StatsBatch } from "../src/stats";
import { InvocationAssembly } from "../src/stream";
import { BENCH_SINKS, makeTraceItems } from "./pipeline-worker";

type Env = Record<string, unknown>;
type Obj = Record<string, unknown>;
type Events = { onset: TailStream.TailEvent<TailStream.Onset>; events: TailStream.TailEvent<TailStream.EventType>[] };

const hex = (n: number, width: number) => n.toString(16).padStart(width, "0").slice(-width);

/** The events the runtime would stream for one TraceItem. */
function toEvents(item: Obj, i: number): Events {
  const traceId = hex(i + 1, 32);
  const root = hex(i * 2 + 1, 16);
  const invocationId = `bench-${i}`;
  const t0 = Number(item.eventTimestamp);
  let seq = 0;
  const ev = <E extends TailStream.EventType>(ms: number, spanId: string, event: E): TailStream.TailEvent<E> => ({
    invocationId,
    spanContext: { traceId, spanId },
    timestamp: new Date(t0 + ms),
    sequence: ++seq,
    event,
  });
  const e = item.event as Obj;
  const request = e.request as Obj | undefined;
  let info: TailStream.Onset["info"];
  if (request) {
    info = {
      type: "fetch",
      method: String(request.method),
      url: String(request.url),
      cfJson: request.cf as object,
      headers: Object.entries(request.headers as Record<string, string>).map(([name, value]) => ({ name, value })),
    };
  } else if ("cron" in e) info = { type: "scheduled", cron: String(e.cron), scheduledTime: new Date(t0) };
  else info = { type: "queue", queueName: String(e.queue), batchSize: Number(e.batchSize) };
  const events: TailStream.TailEvent<TailStream.EventType>[] = [];
  if (request) {
    const sub = hex(i * 2 + 2, 16);
    events.push(
      ev(1, root, { type: "spanOpen", name: "fetch", spanId: sub }),
      ev(2, sub, {
        type: "attributes",
        info: [
          { name: "http.request.method", value: "GET" },
          { name: "url.full", value: "https://api.example.com/v1/items" },
        ],
      }),
      ev(3, sub, { type: "spanClose", outcome: "ok" }),
    );
  }
  for (const l of item.logs as Obj[])
    events.push(ev(4, root, { type: "log", level: l.level as "log", message: l.message as object }));
  for (const x of item.exceptions as Obj[])
    events.push(
      ev(5, root, { type: "exception", name: String(x.name), message: String(x.message), stack: String(x.stack) }),
    );
  const status = (e.response as Obj | undefined)?.status;
  if (typeof status === "number")
    events.push(ev(6, root, { type: "return", info: { type: "fetch", statusCode: status } }));
  events.push(
    ev(7, root, {
      type: "outcome",
      outcome: item.outcome as "ok",
      cpuTime: Number(item.cpuTime),
      wallTime: Number(item.wallTime),
    }),
  );
  return {
    onset: {
      invocationId,
      spanContext: { traceId },
      timestamp: new Date(t0),
      sequence: 0,
      event: { type: "onset", spanId: root, executionModel: "stateless", scriptName: String(item.scriptName), info },
    },
    events,
  };
}

function assemble(s: Events): LogRecord[] {
  const a = new InvocationAssembly(s.onset);
  for (const e of s.events) a.push(e);
  return a.records();
}

/** From records to the sinks' payloads, as tail() runs it (scrub, plan, limits, encode), with counters kept. */
async function deliverable(records: LogRecord[], config: ResolvedConfig, env: Env): Promise<number> {
  const prepared = await prepareRecords(records, config);
  const stats = new StatsBatch();
  let n = 0;
  for (const target of planDelivery(prepared.records, config, env, stats, prepared.views)) {
    for (const batch of splitBatches(target.items, target.batch).batches) {
      const payload = target.sink.encode(batch) as unknown;
      n += Array.isArray(payload) ? payload.length : 1;
    }
  }
  return n + stats.list().length;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1] as number;
};

export async function runStreamBench(env: Env, items: number, rounds: number, warmup: number): Promise<Obj> {
  const built = buildConfig({ ...env, SINKS: JSON.stringify(BENCH_SINKS) });
  if (!built.ok) throw new Error(`bench config invalid: ${JSON.stringify(built.errors)}`);
  const config: ResolvedConfig = {
    ...built.config,
    delivery: { ...built.config.delivery, stats: "TAILFAN_STATS", recent: 200 },
  };
  const traceItems = makeTraceItems(items);
  const streams = traceItems.map(toEvents);
  const variants: Record<string, () => Promise<number>> = {
    async tail() {
      let n = 0;
      for (const item of traceItems) n += await deliverable(normalizeTraceItems([item]), config, env);
      return n;
    },
    async assembly() {
      let n = 0;
      for (const s of streams) n += assemble(s).length;
      return n;
    },
    async stream() {
      let n = 0;
      for (const s of streams) n += await deliverable(assemble(s), config, env);
      return n;
    },
  };
  const times: Record<string, number[]> = { tail: [], assembly: [], stream: [] };
  const names = Object.keys(variants);
  let checksum = 0;
  for (let round = 0; round < warmup + rounds; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + round) % names.length] as string;
      const t0 = performance.now();
      checksum = (checksum + (await (variants[name] as () => Promise<number>)())) | 0;
      if (round >= warmup) times[name]?.push(performance.now() - t0);
    }
  }
  const per1000 = 1000 / items;
  const medians = Object.fromEntries(names.map((n) => [n, median(times[n] as number[]) * per1000]));
  let records = 0;
  let spans = 0;
  for (const s of streams) {
    for (const r of assemble(s)) {
      records++;
      if (r.type === "span") spans++;
    }
  }
  const events = streams.reduce((n, s) => n + 1 + s.events.length, 0);
  return { items, rounds, warmup, medians, events, records, spans, checksum };
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const q = (k: string, d: number) => Number(url.searchParams.get(k) ?? d);
    try {
      const t0 = performance.now();
      let x = 0;
      for (let i = 0; i < 5_000_000; i++) x = (x * 31 + i) | 0;
      if (performance.now() - t0 === 0) return Response.json({ frozenClock: true, x });
      return Response.json(await runStreamBench(env, q("items", 1000), q("rounds", 9), q("warmup", 2)));
    } catch (err) {
      return new Response(err instanceof Error ? (err.stack ?? err.message) : String(err), { status: 500 });
    }
  },
};
