/**
 * tailfan as built from src/index.ts, behind a thin counting layer for the
 * outbound-requests benchmark (bench/requests.mjs). Every handler is
 * tailfan's own; the layer only wraps the bindings tailfan writes through
 * (the work queue, KV, R2, the counters Durable Object) to count the calls,
 * and tracks when tail() and queue() work has finished. Nothing is changed
 * on the way through. The counts live in the isolate and are read with
 * GET /__bench/counts; every other request goes to tailfan's own fetch.
 */
import tailfan, { TailfanStats } from "../src/index";

export { TailfanStats };

type Env = Record<string, unknown>;
type Obj = Record<string | symbol, unknown>;

const counts = {
  /** tail() calls, and how many of them have finished their waitUntil work. */
  tailCalls: 0,
  tailDone: 0,
  traceItems: 0,
  /** queue() calls on the work queue, finished ones, and messages they got. */
  queueCalls: 0,
  queueDone: 0,
  queueMessagesIn: 0,
  /** TAILFAN_QUEUE: sendBatch/send calls and messages sent (buffered records and retries). */
  queueSendBatch: 0,
  queueSend: 0,
  queueMessagesOut: 0,
  /** LOGS_KV.put and LOGS_R2.put calls (sinks and dead letters alike). */
  kvPuts: 0,
  r2Puts: 0,
  /** TailfanStats.add RPCs: one counters write per tail()/queue() that had something to count. */
  statsWrites: 0,
};

/** A proxy that calls `count(method, args)` before forwarding the named methods; everything else passes through. */
function counted<T extends object>(target: T, methods: Record<string, (args: unknown[]) => void>): T {
  return new Proxy(target, {
    get(t, prop) {
      const value = Reflect.get(t, prop);
      const hook = typeof prop === "string" ? methods[prop] : undefined;
      if (hook === undefined || typeof value !== "function") {
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(t) : value;
      }
      return (...args: unknown[]) => {
        hook(args);
        return (value as (...a: unknown[]) => unknown).apply(t, args);
      };
    },
  });
}

const wrapped = new WeakMap<object, Env>();

function countingEnv(env: Env): Env {
  const cached = wrapped.get(env);
  if (cached) return cached;
  const out: Env = { ...env };
  if (env.TAILFAN_QUEUE) {
    out.TAILFAN_QUEUE = counted(env.TAILFAN_QUEUE as object, {
      sendBatch: (args) => {
        counts.queueSendBatch++;
        counts.queueMessagesOut += Array.isArray(args[0]) ? args[0].length : 0;
      },
      send: () => {
        counts.queueSend++;
        counts.queueMessagesOut++;
      },
    });
  }
  if (env.LOGS_KV) out.LOGS_KV = counted(env.LOGS_KV as object, { put: () => void counts.kvPuts++ });
  if (env.LOGS_R2) out.LOGS_R2 = counted(env.LOGS_R2 as object, { put: () => void counts.r2Puts++ });
  if (env.TAILFAN_STATS) {
    const ns = env.TAILFAN_STATS as Obj;
    out.TAILFAN_STATS = new Proxy(ns, {
      get(t, prop) {
        const value = Reflect.get(t, prop);
        if (prop === "get" && typeof value === "function") {
          return (...args: unknown[]) => {
            const stub = (value as (...a: unknown[]) => Obj).apply(t, args);
            // Every RPC method passes through (add, snapshot, recent, errors, and any added later); add is counted.
            return new Proxy(stub, {
              get(s, method) {
                if (method !== "add") return Reflect.get(s, method);
                return (...a: unknown[]) => {
                  counts.statsWrites++;
                  return (s.add as (...x: unknown[]) => unknown)(...a);
                };
              },
            });
          };
        }
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(t) : value;
      },
    });
  }
  wrapped.set(env, out);
  return out;
}

type Handlers = Required<Pick<ExportedHandler<Env>, "fetch" | "tail" | "queue">>;
const inner = tailfan as unknown as Handlers;

export default {
  fetch(request, env, ctx) {
    if (new URL(request.url).pathname === "/__bench/counts") return Response.json(counts);
    return inner.fetch(request, countingEnv(env), ctx);
  },
  tail(events, env, ctx) {
    counts.tailCalls++;
    counts.traceItems += events.length;
    const works: Promise<unknown>[] = [];
    const spy = {
      waitUntil(p: Promise<unknown>) {
        works.push(p);
        ctx.waitUntil(p);
      },
      passThroughOnException: () => ctx.passThroughOnException(),
    } as unknown as ExecutionContext;
    try {
      return inner.tail(events, countingEnv(env), spy);
    } finally {
      Promise.allSettled(works).then(() => counts.tailDone++);
    }
  },
  async queue(batch, env, ctx) {
    counts.queueCalls++;
    counts.queueMessagesIn += batch.messages.length;
    try {
      return await inner.queue(batch, countingEnv(env), ctx);
    } finally {
      counts.queueDone++;
    }
  },
} satisfies ExportedHandler<Env>;
