/**
 * tailfan as built from src/index.ts, behind a counting layer for the cost
 * benchmark (bench/cost.mjs). Every handler is tailfan's own; the layer
 * counts, at the bindings, each operation Cloudflare bills: Durable Object
 * requests and the SQLite rows they write, queue messages and their 64 KB
 * operations, R2 and KV writes, D1 rows written, Analytics Engine points,
 * outbound fetch() calls and tailfan's own console lines. Nothing is changed
 * on the way through. The counts live in the isolate (workerd runs the
 * Durable Object in the same isolate as the handlers, which the stage checks:
 * requests served by the object must equal requests sent to it) and are read
 * with GET /__bench/cost; every other request goes to tailfan's own fetch.
 */
import { buildConfig } from "../src/config";
import tailfan, { TailfanStats } from "../src/index";

// Every class tailfan exports (a Durable Object class the bench does not subclass runs as it is).
export * from "../src/index";

type Env = Record<string, unknown>;
type Obj = Record<string | symbol, unknown>;
type Fn = (...a: unknown[]) => unknown;
/** Which handler caused an operation: per-invocation costs are tail() and queue(); fetch() is the bench reading /status. */
type Origin = "tail" | "queue" | "fetch";

const QUEUE_OP_BYTES = 64 * 1024;
const encoder = new TextEncoder();

interface QueueCount {
  calls: number;
  messages: number;
  bytes: number;
  /** 64 KB units started, summed per message (each is written, read and deleted once: 3 operations). */
  units: number;
}

const perOrigin = () => ({
  doRequests: 0,
  doMethods: {} as Record<string, number>,
  /** Requests per object (by id): the busiest one is what a single object's limit applies to. */
  doObjects: {} as Record<string, number>,
  queues: {} as Record<string, QueueCount>,
  kvPuts: {} as Record<string, number>,
  kvDeletes: {} as Record<string, number>,
  r2Puts: {} as Record<string, number>,
  /** Keys deleted (an R2 delete takes one key or a list). */
  r2Deletes: {} as Record<string, number>,
  d1RowsWritten: 0,
  d1Statements: 0,
  aePoints: {} as Record<string, number>,
});

const counts = {
  tailCalls: 0,
  tailDone: 0,
  traceItems: 0,
  queueCalls: 0,
  queueDone: 0,
  queueMessagesIn: 0,
  byOrigin: { tail: perOrigin(), queue: perOrigin(), fetch: perOrigin() } as Record<
    Origin,
    ReturnType<typeof perOrigin>
  >,
  /** Requests the Durable Object's methods served (its side of doRequests), and alarms it ran (billed as requests). */
  doServed: 0,
  doAlarms: 0,
  /** SQL statements the object ran, and the rows they wrote (cursor.rowsWritten, read when counts are asked for). */
  sqlStatements: 0,
  sqlRowsWritten: 0,
  /** Rows written creating tables: once in an object's life, so not a per-invocation cost (printed, not priced). */
  sqlSchemaRows: 0,
  /** outbound fetch() calls from the isolate (sinks' HTTP requests). */
  fetches: 0,
  /** console calls by method: tailfan's own log lines. */
  console: {} as Record<string, number>,
  consoleSample: [] as string[],
};

// tailfan's own log lines: every console call in this isolate (handlers and the Durable Object).
for (const level of ["log", "info", "debug", "warn", "error"] as const) {
  const original = console[level].bind(console);
  console[level] = (...args: unknown[]) => {
    counts.console[level] = (counts.console[level] ?? 0) + 1;
    if (counts.consoleSample.length < 5)
      counts.consoleSample.push(`${level}: ${args.map(String).join(" ").slice(0, 300)}`);
    original(...args);
  };
}

// Outbound HTTP: every fetch() from this isolate.
const realFetch = globalThis.fetch.bind(globalThis);
globalThis.fetch = ((...args: Parameters<typeof fetch>) => {
  counts.fetches++;
  return realFetch(...args);
}) as typeof fetch;

/** Cursors of every statement; rowsWritten is summed when the counts are read, once each cursor has run. */
const cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];
const schemaCursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];

function sqlRowsWritten(): number {
  let n = 0;
  for (const c of cursors) n += c.rowsWritten;
  return n;
}

/** Nesting of the object's own method calls: only the outermost one is a request (add() calls its helpers too). */
let depth = 0;

/** TailfanStats with its SQL statements counted and every RPC method it serves counted. */
export class CountedStats extends TailfanStats {
  constructor(ctx: DurableObjectState, env: unknown) {
    // Wrapped before TailfanStats' constructor runs, so its own schema statements are counted too.
    const sql = ctx.storage.sql;
    const exec = sql.exec.bind(sql);
    sql.exec = ((query: string, ...bindings: SqlStorageValue[]) => {
      const cursor = exec(query, ...bindings);
      counts.sqlStatements++;
      (/^\s*CREATE\s/i.test(query) ? schemaCursors : cursors).push(cursor);
      return cursor;
    }) as typeof sql.exec;
    // What the constructor calls of its own methods (the migration of older tables) is not a request.
    depth++;
    try {
      super(ctx, env);
    } finally {
      depth--;
    }
  }
}

// RPC methods are looked up on the prototype: each of TailfanStats' own methods gets a counting twin.
for (const name of Object.getOwnPropertyNames(TailfanStats.prototype)) {
  const method = (TailfanStats.prototype as unknown as Obj)[name];
  if (name === "constructor" || typeof method !== "function") continue;
  Object.defineProperty(CountedStats.prototype, name, {
    configurable: true,
    writable: true,
    value(this: unknown, ...args: unknown[]) {
      if (depth === 0 && name === "alarm") counts.doAlarms++;
      else if (depth === 0) counts.doServed++;
      depth++;
      try {
        return (method as Fn).apply(this, args);
      } finally {
        depth--;
      }
    },
  });
}

/** Bytes of a queue message body, as JSON when it is not already text or bytes (an estimate of the serialized size). */
function bodyBytes(body: unknown): number {
  if (typeof body === "string") return encoder.encode(body).byteLength;
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return body.byteLength;
  try {
    return encoder.encode(JSON.stringify(body) ?? "").byteLength;
  } catch {
    return 0;
  }
}

/** A proxy that calls `hook(method, args)` before the named methods; everything else passes through. */
function counted<T extends object>(target: T, hooks: Record<string, (args: unknown[]) => void>): T {
  return new Proxy(target, {
    get(t, prop) {
      const value = Reflect.get(t, prop);
      if (typeof value !== "function") return value;
      const hook = typeof prop === "string" ? hooks[prop] : undefined;
      if (!hook) return (value as Fn).bind(t);
      return (...args: unknown[]) => {
        hook(args);
        return (value as Fn).apply(t, args);
      };
    },
  });
}

function countQueue(c: ReturnType<typeof perOrigin>, binding: string, bodies: unknown[]): void {
  c.queues[binding] ??= { calls: 0, messages: 0, bytes: 0, units: 0 };
  const q = c.queues[binding];
  q.calls++;
  for (const body of bodies) {
    const bytes = bodyBytes(body);
    q.messages++;
    q.bytes += bytes;
    q.units += Math.max(1, Math.ceil(bytes / QUEUE_OP_BYTES));
  }
}

/** A D1 statement whose results' meta.rows_written is counted. */
function countedStatement(stmt: Obj, c: ReturnType<typeof perOrigin>): Obj {
  return new Proxy(stmt, {
    get(t, prop) {
      const value = Reflect.get(t, prop);
      if (typeof value !== "function") return value;
      if (prop === "bind") return (...a: unknown[]) => countedStatement((value as Fn).apply(t, a) as Obj, c);
      if (prop === "run" || prop === "all") {
        return async (...a: unknown[]) => {
          c.d1Statements++;
          const res = (await (value as Fn).apply(t, a)) as { meta?: { rows_written?: number } };
          c.d1RowsWritten += res?.meta?.rows_written ?? 0;
          return res;
        };
      }
      return (value as Fn).bind(t);
    },
  });
}

function countedD1(db: Obj, c: ReturnType<typeof perOrigin>): Obj {
  return new Proxy(db, {
    get(t, prop) {
      const value = Reflect.get(t, prop);
      if (typeof value !== "function") return value;
      if (prop === "prepare") return (...a: unknown[]) => countedStatement((value as Fn).apply(t, a) as Obj, c);
      if (prop === "batch") {
        return async (stmts: unknown[]) => {
          c.d1Statements += stmts.length;
          const results = (await (value as Fn).call(t, stmts)) as { meta?: { rows_written?: number } }[];
          for (const r of results) c.d1RowsWritten += r?.meta?.rows_written ?? 0;
          return results;
        };
      }
      return (value as Fn).bind(t);
    },
  });
}

/** A Durable Object namespace whose stubs count every method call as one request. */
function countedNamespace(ns: Obj, c: ReturnType<typeof perOrigin>): Obj {
  const stubOf = (stub: Obj, id: string): Obj =>
    new Proxy(stub, {
      get(s, method) {
        const value = Reflect.get(s, method);
        if (typeof method !== "string" || method === "then" || typeof value !== "function") return value;
        return (...a: unknown[]) => {
          c.doRequests++;
          c.doMethods[method] = (c.doMethods[method] ?? 0) + 1;
          c.doObjects[id] = (c.doObjects[id] ?? 0) + 1;
          return (s[method] as Fn)(...a);
        };
      },
    });
  return new Proxy(ns, {
    get(t, prop) {
      const value = Reflect.get(t, prop);
      if (typeof value !== "function") return value;
      if (prop === "get" || prop === "getByName") {
        return (...a: unknown[]) => stubOf((value as Fn).apply(t, a) as Obj, String(a[0]));
      }
      return (value as Fn).bind(t);
    },
  });
}

/** Recognizes a binding by its methods and wraps it with its counter; vars pass through. */
function bump(map: Record<string, number>, key: string, n = 1): void {
  map[key] = (map[key] ?? 0) + n;
}

function countedBinding(name: string, value: unknown, c: ReturnType<typeof perOrigin>): unknown {
  if (value === null || typeof value !== "object") return value;
  const b = value as Obj;
  const has = (...m: string[]) => m.every((k) => typeof b[k] === "function");
  if (has("idFromName", "get")) return countedNamespace(b, c);
  if (has("send", "sendBatch")) {
    return counted(b, {
      send: (args) => countQueue(c, name, [args[0]]),
      sendBatch: (args) =>
        countQueue(c, name, Array.isArray(args[0]) ? args[0].map((m) => (m as { body?: unknown })?.body) : []),
    });
  }
  if (has("prepare", "batch")) return countedD1(b, c);
  if (has("writeDataPoint")) return counted(b, { writeDataPoint: () => bump(c.aePoints, name) });
  if (has("put", "head", "createMultipartUpload")) {
    return counted(b, {
      put: () => bump(c.r2Puts, name),
      createMultipartUpload: () => bump(c.r2Puts, name),
      delete: (args) => bump(c.r2Deletes, name, Array.isArray(args[0]) ? args[0].length : 1),
    });
  }
  if (has("put", "get", "list", "getWithMetadata")) {
    return counted(b, { put: () => bump(c.kvPuts, name), delete: () => bump(c.kvDeletes, name) });
  }
  return value;
}

const wrapped = {
  tail: new WeakMap<object, Env>(),
  queue: new WeakMap<object, Env>(),
  fetch: new WeakMap<object, Env>(),
};

function countingEnv(env: Env, origin: Origin): Env {
  const cached = wrapped[origin].get(env);
  if (cached) return cached;
  const c = counts.byOrigin[origin];
  const out: Env = {};
  for (const [name, value] of Object.entries(env)) out[name] = countedBinding(name, value, c);
  wrapped[origin].set(env, out);
  return out;
}

/**
 * What tailfan resolved from this env, defaults applied: the windows that set
 * how often an isolate writes, and each sink's batch limits. The stages read
 * these instead of keeping their own copies of the defaults.
 */
const resolvedOf = new WeakMap<Env, ReturnType<typeof resolve>>();
function resolved(env: Env) {
  let r = resolvedOf.get(env);
  if (r === undefined) {
    r = resolve(env);
    resolvedOf.set(env, r);
  }
  return r;
}

function resolve(env: Env) {
  const built = buildConfig(env);
  if (!built.ok) return null;
  const { bufferMs, statsFlushMs, statsShards } = built.config.delivery;
  const sinks = built.config.sinks.map((s) => ({
    name: s.name,
    type: s.type,
    maxRecords: s.batch.maxRecords,
    maxBytes: s.batch.maxBytes,
  }));
  return { bufferMs, statsFlushMs, statsShards, sinks };
}

type Handlers = Required<Pick<ExportedHandler<Env>, "fetch" | "tail" | "queue">>;
const inner = tailfan as unknown as Handlers;

export default {
  fetch(request, env, ctx) {
    if (new URL(request.url).pathname === "/__bench/cost") {
      counts.sqlRowsWritten = sqlRowsWritten();
      counts.sqlSchemaRows = schemaCursors.reduce((n, c) => n + c.rowsWritten, 0);
      return Response.json({ ...counts, config: resolved(env) });
    }
    return inner.fetch(request, countingEnv(env, "fetch"), ctx);
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
      return inner.tail(events, countingEnv(env, "tail"), spy);
    } finally {
      Promise.allSettled(works).then(() => counts.tailDone++);
    }
  },
  async queue(batch, env, ctx) {
    counts.queueCalls++;
    counts.queueMessagesIn += batch.messages.length;
    try {
      return await inner.queue(batch, countingEnv(env, "queue"), ctx);
    } finally {
      counts.queueDone++;
    }
  },
} satisfies ExportedHandler<Env>;
