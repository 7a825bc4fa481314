/**
 * The benchmark Worker: generates deterministic synthetic TraceItems and
 * times, interleaved in the same isolate, Cloudflare's example tail worker
 * (`JSON.stringify(events)`) against the tailfan pipeline up to the encoded
 * payloads (nothing is sent). Driven by bench/run.mjs; the same bundle also
 * runs in Node as a fallback when the runtime's clock cannot time sync code.
 */
import { buildConfig, type ResolvedConfig } from "../src/config";
import { splitBatches } from "../src/delivery/batch";
import { RecordSerializer } from "../src/json";
import { normalizeTraceItems } from "../src/normalize";
import { planDelivery, prepareRecords } from "../src/pipeline";
import type { LogRecord, SerializedRecord } from "../src/record";
import { routeRecord } from "../src/router";
import { StatsBatch } from "../src/stats";
import { checkWhere, compileWhere, type WhereNode } from "../src/where";

type Env = Record<string, unknown>;
type Obj = Record<string, unknown>;

/** The config the benchmark routes with: every sink type, with the filters a real setup would use. */
export const BENCH_SINKS = [
  { name: "archive", type: "r2", binding: "LOGS_R2", prefix: "logs" },
  { name: "recent-problems", type: "kv", binding: "LOGS_KV", level: "warn", ttl: 604800 },
  { name: "exceptions", type: "queue", binding: "LOGS_QUEUE", types: ["exception"] },
  { name: "collector", type: "http", url: "https://logs.example.com/ingest", format: "json" },
];

/**
 * The `where` stage: a four-leaf `where` that every record passes (a header,
 * the URL, the script name, a number), on each of the four sinks, so the
 * routing and the bytes stay those of BENCH_SINKS and only the predicate costs.
 */
export const BENCH_WHERE = {
  and: [
    { key: "event.request.headers.user-agent", operator: "!contains", value: "never-a-bot" },
    { key: "url", operator: "!contains", value: "/never/" },
    { key: "scriptName", operator: "!in", value: ["healthcheck", "canary"] },
    { key: "cpuTime", operator: "geq", value: 0 },
  ],
};
const WHERE_LEAVES = BENCH_WHERE.and.length;
const WHERE_SINKS = BENCH_SINKS.map((s) => ({ ...s, where: BENCH_WHERE }));
/** The same sinks with the collector shaped as a backend that bills by the byte would be: what shaping costs and saves. */
export const SHAPED_SINKS = BENCH_SINKS.map((s) =>
  s.name === "collector" ? { ...s, exclude: ["event.request.headers", "event.request.cf"], add: { env: "prod" } } : s,
);

// ---------------------------------------------------------------------------
// Synthetic TraceItems

/** mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Gen {
  rnd: () => number;
  int(lo: number, hi: number): number;
  pick<T>(xs: readonly T[]): T;
  hex(n: number): string;
}

function gen(seed: number): Gen {
  const rnd = prng(seed);
  return {
    rnd,
    int: (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)] as T,
    hex(n) {
      let s = "";
      for (let i = 0; i < n; i++) s += "0123456789abcdef"[Math.floor(rnd() * 16)];
      return s;
    },
  };
}

const SCRIPTS = ["api-gateway", "api-gateway", "api-gateway", "auth-service", "image-resizer", "checkout"];
const HOSTS = ["api.example.com", "www.example.com", "auth.example.com"];
const PATHS = [
  "/v1/users/{id}",
  "/v1/orders/{id}/items",
  "/v1/search?q=running+shoes&page=2",
  "/login",
  "/assets/app.{hex}.js",
  "/images/{hex}.webp?w=640&q=75",
  "/v1/cart",
  "/healthz",
];
const METHODS = ["GET", "GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "OPTIONS"];
const AGENTS = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
  "curl/8.7.1",
  "okhttp/4.12.0",
];
const PLACES = [
  {
    colo: "FRA",
    country: "DE",
    city: "Frankfurt am Main",
    continent: "EU",
    region: "Hesse",
    regionCode: "HE",
    postalCode: "60313",
    tz: "Europe/Berlin",
    lat: "50.11520",
    lon: "8.68420",
    asn: 3320,
    org: "Deutsche Telekom AG",
    eu: true,
  },
  {
    colo: "CDG",
    country: "FR",
    city: "Paris",
    continent: "EU",
    region: "Île-de-France",
    regionCode: "IDF",
    postalCode: "75001",
    tz: "Europe/Paris",
    lat: "48.85340",
    lon: "2.34880",
    asn: 3215,
    org: "Orange",
    eu: true,
  },
  {
    colo: "IAD",
    country: "US",
    city: "Ashburn",
    continent: "NA",
    region: "Virginia",
    regionCode: "VA",
    postalCode: "20147",
    tz: "America/New_York",
    lat: "39.04370",
    lon: "-77.48750",
    asn: 701,
    org: "Verizon Business",
    eu: false,
  },
  {
    colo: "SJC",
    country: "US",
    city: "San Jose",
    continent: "NA",
    region: "California",
    regionCode: "CA",
    postalCode: "95113",
    tz: "America/Los_Angeles",
    lat: "37.33940",
    lon: "-121.89500",
    asn: 7922,
    org: "Comcast Cable",
    eu: false,
  },
  {
    colo: "NRT",
    country: "JP",
    city: "Tokyo",
    continent: "AS",
    region: "Tokyo",
    regionCode: "13",
    postalCode: "100-0001",
    tz: "Asia/Tokyo",
    lat: "35.68950",
    lon: "139.69170",
    asn: 2516,
    org: "KDDI CORPORATION",
    eu: false,
  },
  {
    colo: "GRU",
    country: "BR",
    city: "São Paulo",
    continent: "SA",
    region: "São Paulo",
    regionCode: "SP",
    postalCode: "01000-000",
    tz: "America/Sao_Paulo",
    lat: "-23.54750",
    lon: "-46.63610",
    asn: 28573,
    org: "Claro NXT",
    eu: false,
  },
];
const CIPHERS = [
  "AEAD-AES128-GCM-SHA256",
  "AEAD-AES256-GCM-SHA384",
  "AEAD-CHACHA20-POLY1305-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
];
const LOG_LINES = [
  "cache miss for {path}",
  "cache hit",
  "upstream responded in {n} ms",
  "validated request body",
  "session refreshed",
  "rate limit bucket at {pct}%",
  "feature flag new-checkout=on",
];
const WARN_LINES = [
  "slow upstream: {n} ms",
  "retrying upstream request (attempt 2)",
  "deprecated query parameter used: page",
];
const ERROR_LINES = ["upstream returned 502", "failed to verify token signature", "payment provider timeout"];

function stackOf(g: Gen, name: string, message: string): string {
  const frames = [];
  const n = g.int(3, 8);
  for (let i = 0; i < n; i++) {
    frames.push(
      `    at ${g.pick(["handleRequest", "fetch", "loadUser", "Router.match", "validate", "async Promise.all"])} (index.js:${g.int(1, 4000)}:${g.int(1, 80)})`,
    );
  }
  return `${name}: ${message}\n${frames.join("\n")}`;
}

function fill(g: Gen, template: string, path = "/"): string {
  return template
    .replace("{n}", String(g.int(1, 2500)))
    .replace("{pct}", String(g.int(1, 100)))
    .replace("{path}", path);
}

function fetchEvent(g: Gen, status: number | null): Obj {
  const place = g.pick(PLACES);
  const method = g.pick(METHODS);
  const host = g.pick(HOSTS);
  const path = g
    .pick(PATHS)
    .replace("{id}", String(g.int(1, 999_999)))
    .replace("{hex}", g.hex(8));
  const ip = `${g.int(1, 223)}.${g.int(0, 255)}.${g.int(0, 255)}.${g.int(1, 254)}`;
  const ray = `${g.hex(16)}-${place.colo}`;
  const headers: Record<string, string> = {
    accept: g.pick(["*/*", "application/json", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"]),
    "accept-encoding": "gzip, br",
    "accept-language": g.pick(["en-US,en;q=0.9", "de-DE,de;q=0.9,en;q=0.8", "fr-FR,fr;q=0.9", "ja-JP"]),
    "cf-connecting-ip": ip,
    "cf-ipcountry": place.country,
    "cf-ray": ray,
    "cf-visitor": '{"scheme":"https"}',
    host,
    "user-agent": g.pick(AGENTS),
    "x-forwarded-proto": "https",
    "x-real-ip": ip,
  };
  if (method === "POST" || method === "PUT") {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(g.int(20, 4000));
  }
  const score = g.int(1, 99);
  const cf: Obj = {
    asn: place.asn,
    asOrganization: place.org,
    botManagement: {
      corporateProxy: false,
      verifiedBot: score > 97,
      jsDetection: { passed: score > 30 },
      staticResource: path.startsWith("/assets") || path.startsWith("/images"),
      detectionIds: score < 10 ? [33554817] : [],
      score,
      ja3Hash: g.hex(32),
      ja4: `t13d1516h2_${g.hex(12)}_${g.hex(12)}`,
    },
    city: place.city,
    clientAcceptEncoding: "gzip, deflate, br",
    clientTcpRtt: g.int(1, 180),
    colo: place.colo,
    continent: place.continent,
    country: place.country,
    edgeRequestKeepAliveStatus: 1,
    httpProtocol: g.pick(["HTTP/2", "HTTP/3", "HTTP/1.1"]),
    isEUCountry: place.eu ? "1" : undefined,
    latitude: place.lat,
    longitude: place.lon,
    metroCode: place.country === "US" ? String(g.int(500, 881)) : undefined,
    postalCode: place.postalCode,
    region: place.region,
    regionCode: place.regionCode,
    requestPriority: "weight=256;exclusive=1",
    timezone: place.tz,
    tlsCipher: g.pick(CIPHERS),
    tlsClientAuth: {
      certPresented: "0",
      certVerified: "NONE",
      certRevoked: "0",
      certIssuerDN: "",
      certSubjectDN: "",
      certNotBefore: "",
      certNotAfter: "",
      certSerial: "",
      certFingerprintSHA1: "",
      certFingerprintSHA256: "",
    },
    tlsClientCiphersSha1: `${g.hex(27)}=`,
    tlsClientExtensionsSha1: `${g.hex(27)}=`,
    tlsClientExtensionsSha1Le: `${g.hex(27)}=`,
    tlsClientHelloLength: String(g.int(250, 1800)),
    tlsClientRandom: `${g.hex(43)}=`,
    tlsExportedAuthenticator: {
      clientFinished: g.hex(96),
      clientHandshake: g.hex(96),
      serverHandshake: g.hex(96),
      serverFinished: g.hex(96),
    },
    tlsVersion: "TLSv1.3",
    verifiedBotCategory: "",
  };
  const event: Obj = { request: { url: `https://${host}${path}`, method, headers, cf } };
  if (status !== null) event.response = { status };
  return event;
}

function logLine(g: Gen, t: number, path: string): Obj {
  const r = g.rnd();
  if (r < 0.08) {
    const message = fill(g, g.pick(ERROR_LINES), path);
    const log: Obj = { message: [message], level: "error", timestamp: t };
    if (g.rnd() < 0.5) {
      const name = g.pick(["Error", "TypeError", "FetchError"]);
      log.errorInfo = [{ name, message, stack: stackOf(g, name, message) }];
    }
    return log;
  }
  if (r < 0.2) return { message: [fill(g, g.pick(WARN_LINES), path)], level: "warn", timestamp: t };
  if (r < 0.45) {
    const obj = {
      requestId: g.hex(16),
      userId: g.int(1, 999_999),
      elapsedMs: g.int(1, 900),
      cached: g.rnd() < 0.5,
      tags: ["edge", g.pick(["eu", "us", "ap"])],
    };
    return { message: [fill(g, g.pick(LOG_LINES), path), obj], level: g.pick(["log", "info"]), timestamp: t };
  }
  return { message: [fill(g, g.pick(LOG_LINES), path)], level: g.pick(["log", "log", "info", "debug"]), timestamp: t };
}

/** `count` TraceItems as the runtime hands them to tail(): mostly fetch, some scheduled and queue events. */
export function makeTraceItems(count: number, seed = 0x7a11fa): Obj[] {
  const g = gen(seed);
  const items: Obj[] = [];
  let now = Date.UTC(2025, 10, 20, 9, 0, 0);
  for (let i = 0; i < count; i++) {
    now += g.int(5, 400);
    const kind = g.rnd();
    const threw = g.rnd() < 0.05;
    let event: Obj;
    let path = "/";
    if (kind < 0.9) {
      const s = g.rnd();
      const status = threw ? null : s < 0.85 ? 200 : s < 0.9 ? g.pick([201, 204, 301, 304]) : s < 0.97 ? 404 : 500;
      event = fetchEvent(g, status);
      path = new URL(String((event.request as Obj).url)).pathname;
    } else if (kind < 0.95) {
      event = { cron: g.pick(["*/5 * * * *", "0 * * * *", "30 2 * * *"]), scheduledTime: now - (now % 60_000) };
    } else {
      event = { queue: g.pick(["jobs", "emails", "webhooks"]), batchSize: g.int(1, 100) };
    }
    const logs: Obj[] = [];
    const nLogs = g.int(0, 8);
    for (let j = 0; j < nLogs; j++) logs.push(logLine(g, now + j * g.int(0, 30), path));
    const exceptions: Obj[] = [];
    if (threw) {
      const name = g.pick(["TypeError", "Error", "RangeError"]);
      const message = g.pick([
        "Cannot read properties of undefined (reading 'id')",
        "Network connection lost.",
        "Invalid array length",
      ]);
      exceptions.push({ name, message, timestamp: now + 40, stack: stackOf(g, name, message) });
    }
    const cpuTime = g.int(0, 40);
    items.push({
      scriptName: g.pick(SCRIPTS),
      entrypoint: undefined,
      scriptVersion: { id: `${g.hex(8)}-${g.hex(4)}-4${g.hex(3)}-a${g.hex(3)}-${g.hex(12)}` },
      dispatchNamespace: undefined,
      scriptTags: [],
      executionModel: "stateless",
      event,
      eventTimestamp: now,
      logs,
      exceptions,
      diagnosticsChannelEvents: [],
      outcome: threw ? "exception" : g.rnd() < 0.003 ? "exceededCpu" : "ok",
      truncated: false,
      cpuTime,
      wallTime: cpuTime + g.int(0, 600),
    });
  }
  return items;
}

// ---------------------------------------------------------------------------
// The variants, each over the whole set in per-invocation tail() batches

type Variant = (batches: readonly Obj[][]) => number | Promise<number>;

/** A number that depends on the payload, so the work cannot be optimised away. */
function weigh(payload: unknown): number {
  if (Array.isArray(payload)) return payload.length;
  if (payload !== null && typeof payload === "object" && "body" in payload) return String((payload as Obj).body).length;
  return 1;
}

// As deployed: counters and the dashboard's latest records kept (DELIVERY.stats set, recent = 200).
const asDeployed = (config: ResolvedConfig): ResolvedConfig => ({
  ...config,
  delivery: { ...config.delivery, stats: "TAILFAN_STATS", recent: 200 },
});

/**
 * The whole pipeline up to the payloads, as tail() runs it: normalize, scrub (the default
 * detectors), then planDelivery (route, serialize once, shape, size limits), splitBatches and encode per sink.
 */
async function runPipeline(batches: readonly Obj[][], counted: ResolvedConfig, env: Env): Promise<number> {
  let n = 0;
  for (const events of batches) {
    const { records, views } = await prepareRecords(normalizeTraceItems(events), counted);
    const stats = new StatsBatch();
    const targets = planDelivery(records, counted, env, stats, views);
    for (const target of targets) {
      for (const batch of splitBatches(target.items, target.batch).batches) n += weigh(target.sink.encode(batch));
    }
    // What flushStats hands to the counters object: the deltas and the latest records (the RPC itself is I/O).
    n += stats.list().length + stats.recent().length;
  }
  return n;
}

function makeVariants(
  config: ResolvedConfig,
  env: Env,
  shapedConfig: ResolvedConfig,
  whereConfig: ResolvedConfig,
): Record<string, Variant> {
  const counted = asDeployed(config);
  const shaped = asDeployed(shapedConfig);
  const countedWhere = asDeployed(whereConfig);
  const where = compileWhere(checkWhere(BENCH_WHERE).where as WhereNode);
  // The records, normalized once outside the timed loop, for the predicate alone.
  let normalized: LogRecord[] | undefined;
  return {
    /** Cloudflare's example tail worker: the body it POSTs. */
    baseline(batches) {
      let n = 0;
      for (const events of batches) n += JSON.stringify(events).length;
      return n;
    },
    normalize(batches) {
      let n = 0;
      for (const events of batches) n += normalizeTraceItems(events).length;
      return n;
    },
    /** normalize + route + serialize once, as planDelivery does, without creating sinks. */
    serialize(batches) {
      let n = 0;
      for (const events of batches) {
        const serializer = new RecordSerializer();
        for (const record of normalizeTraceItems(events)) {
          if (routeRecord(record, config.table).length > 0) n += serializer.serialize(record).line.length;
        }
      }
      return n;
    },
    pipeline: (batches) => runPipeline(batches, counted, env),
    /** The same, with the collector's records shaped (SHAPED_SINKS). */
    shaped: (batches) => runPipeline(batches, shaped, env),
    /** The same pipeline with BENCH_WHERE on every sink: the difference is what `where` costs in place. */
    where: (batches) => runPipeline(batches, countedWhere, env),
    /** BENCH_WHERE alone, compiled, once per record (records normalized beforehand). */
    whereOnly(batches) {
      normalized ??= batches.flatMap((events) => normalizeTraceItems(events));
      let n = 0;
      for (const r of normalized) if (where(r)) n++;
      return n;
    },
  };
}

// ---------------------------------------------------------------------------
// Clock

function spin(ms: number): number {
  // Busy work that stops by iteration count, not by the (maybe frozen) clock.
  let x = 0;
  for (let i = 0; i < ms * 200_000; i++) x = (x * 31 + i) | 0;
  return x;
}

/**
 * Whether performance.now() advances inside synchronous code (production
 * workerd freezes it until the next I/O), and the smallest step it moves by.
 */
function probeClock(): Obj {
  const t0 = performance.now();
  const d0 = Date.now();
  const sink = spin(50);
  const syncMs = performance.now() - t0;
  const syncDateMs = Date.now() - d0;
  let resolutionMs = Number.POSITIVE_INFINITY;
  let last = performance.now();
  for (let i = 0; i < 2_000_000 && resolutionMs > 0.001; i++) {
    const t = performance.now();
    if (t !== last) {
      resolutionMs = Math.min(resolutionMs, t - last);
      last = t;
    }
  }
  return { syncMs, syncDateMs, resolutionMs: Number.isFinite(resolutionMs) ? resolutionMs : null, sink };
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

// ---------------------------------------------------------------------------
// The benchmark

export interface BenchParams {
  items: number;
  rounds: number;
  warmup: number;
  /** Each timed sample repeats the whole set until the baseline takes at least this long (the clock may be coarse). */
  minSampleMs: number;
}

async function timeReps(fn: Variant, batches: readonly Obj[][], reps: number): Promise<{ ms: number; out: number }> {
  let out = 0;
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) out = (out + (await fn(batches))) | 0;
  return { ms: performance.now() - t0, out };
}

function eventTypeOf(item: Obj): string {
  const e = item.event as Obj;
  return "request" in e ? "fetch" : "cron" in e ? "scheduled" : "queue" in e ? "queue" : "other";
}

/** Counts and sizes, outside the timed loops. */
function sizes(items: readonly Obj[], batches: readonly Obj[][], config: ResolvedConfig, env: Env) {
  const enc = new TextEncoder();
  const count = (m: Record<string, number>, k: string, n = 1) => {
    m[k] = (m[k] ?? 0) + n;
  };
  const events: Record<string, number> = {};
  let logs = 0;
  let exceptions = 0;
  for (const item of items) {
    count(events, eventTypeOf(item));
    logs += (item.logs as unknown[]).length;
    exceptions += (item.exceptions as unknown[]).length;
  }
  let baselineBytes = 0;
  for (const b of batches) baselineBytes += enc.encode(JSON.stringify(b)).byteLength;
  const records: Record<string, number> = {};
  let routed = 0;
  let lineBytes = 0;
  let payloadBytesTotal = 0;
  const perSink: Record<string, { records: number; payloads: number; bytes: number }> = {};
  for (const b of batches) {
    const recs = normalizeTraceItems(b);
    for (const r of recs) count(records, r.type);
    const seen = new Set<SerializedRecord>();
    for (const target of planDelivery(recs, config, env)) {
      const s = perSink[target.name] ?? { records: 0, payloads: 0, bytes: 0 };
      perSink[target.name] = s;
      s.records += target.items.length;
      for (const item of target.items) {
        if (seen.has(item)) continue;
        seen.add(item);
        routed++;
        lineBytes += item.bytes;
      }
      for (const batch of splitBatches(target.items, target.batch).batches) {
        const n = payloadBytes(target.sink.encode(batch), batch, enc);
        s.payloads++;
        s.bytes += n;
        payloadBytesTotal += n;
      }
    }
  }
  return {
    events,
    logs,
    exceptions,
    baselineBytes,
    records,
    routed,
    lineBytes,
    payloadBytes: payloadBytesTotal,
    perSink,
  };
}

/** Bytes a payload puts on the wire before gzip: its body or KV values; for queue messages, the record JSON. */
function payloadBytes(payload: unknown, batch: readonly SerializedRecord[], enc: TextEncoder): number {
  if (payload !== null && typeof payload === "object" && "body" in payload)
    return enc.encode(String((payload as Obj).body)).byteLength;
  if (Array.isArray(payload) && payload.every((e) => e !== null && typeof e === "object" && "value" in e)) {
    let n = 0;
    for (const e of payload as Obj[]) n += enc.encode(String(e.value)).byteLength;
    return n;
  }
  let n = 0;
  for (const item of batch) n += item.bytes;
  return n;
}

/** Runs every variant `warmup + rounds` times, interleaved and in rotating order; reports medians. */
export async function runBench(env: Env, params: BenchParams): Promise<Obj> {
  const built = buildConfig({ ...env, SINKS: JSON.stringify(BENCH_SINKS) });
  if (!built.ok) throw new Error(`bench config invalid: ${JSON.stringify(built.errors)}`);
  const config = built.config;
  const shapedBuilt = buildConfig({ ...env, SINKS: JSON.stringify(SHAPED_SINKS) });
  if (!shapedBuilt.ok) throw new Error(`bench shaped config invalid: ${JSON.stringify(shapedBuilt.errors)}`);
  const withWhere = buildConfig({ ...env, SINKS: JSON.stringify(WHERE_SINKS) });
  if (!withWhere.ok) throw new Error(`bench where config invalid: ${JSON.stringify(withWhere.errors)}`);
  const items = makeTraceItems(params.items);
  // The runtime calls tail() once per invocation: one TraceItem per batch.
  const batches = items.map((item) => [item]);
  const variants = makeVariants(config, env, shapedBuilt.config, withWhere.config);
  const names = Object.keys(variants);
  const times: Record<string, number[]> = {};
  for (const name of names) times[name] = [];
  let checksum = 0;
  let reps = 1;
  for (let round = 0; round < params.warmup + params.rounds; round++) {
    if (round === params.warmup) {
      // Warm now: size the samples so that the coarse clock's step is a small part of the fastest one.
      const probe = await timeReps(variants.baseline as Variant, batches, 1);
      reps = Math.min(200, Math.max(1, Math.ceil(params.minSampleMs / Math.max(probe.ms, 0.25))));
    }
    const order = names.map((_, i) => names[(i + round) % names.length] as string);
    for (const name of order) {
      const { ms, out } = await timeReps(variants[name] as Variant, batches, round < params.warmup ? 1 : reps);
      checksum = (checksum + out) | 0;
      if (round >= params.warmup) (times[name] as number[]).push(ms / reps);
    }
  }
  const perThousand = 1000 / params.items;
  const medians: Record<string, number> = {};
  const spread: Record<string, [number, number]> = {};
  for (const name of names) {
    const xs = times[name] as number[];
    medians[name] = median(xs) * perThousand;
    spread[name] = [Math.min(...xs) * perThousand, Math.max(...xs) * perThousand];
  }
  const shapedSizes = sizes(items, batches, shapedBuilt.config, env);
  const shape = {
    records: shapedSizes.perSink.collector?.records ?? 0,
    bytes: shapedSizes.perSink.collector?.bytes ?? 0,
  };
  return {
    params,
    reps,
    medians,
    spread,
    checksum,
    shape,
    whereLeaves: WHERE_LEAVES,
    ...sizes(items, batches, config, env),
  };
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const q = (k: string, d: number) => Number(url.searchParams.get(k) ?? d);
    try {
      if (url.pathname === "/probe") return Response.json(probeClock());
      if (url.pathname === "/bench") {
        const params = {
          items: q("items", 1000),
          rounds: q("rounds", 15),
          warmup: q("warmup", 3),
          minSampleMs: q("minSampleMs", 50),
        };
        return Response.json(await runBench(env, params));
      }
      if (url.pathname === "/sample") return Response.json(makeTraceItems(q("items", 3)));
      return new Response("not found", { status: 404 });
    } catch (err) {
      return new Response(err instanceof Error ? (err.stack ?? err.message) : String(err), { status: 500 });
    }
  },
};
