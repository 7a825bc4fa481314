/**
 * Helpers for the sink tests: realistic records (built by the real normalizer
 * from TraceItem-shaped objects), sink instances from raw options, the real
 * local bindings, and the local HTTP receiver.
 */
import { env } from "cloudflare:workers";
import * as v from "valibot";
import { inject } from "vitest";
import type { AnySinkDefinition, BatchLimits, Sink } from "../../sinks/index";
import { serializeRecord } from "../../src/json";
import { normalizeTraceItems } from "../../src/normalize";
import type { LogRecord, SerializedRecord } from "../../src/record";
import type { ReceivedRequest } from "../support/received";

/** The real local bindings from wrangler.toml. */
export const bindings = env as unknown as {
  LOGS_KV: KVNamespace;
  LOGS_R2: R2Bucket;
  LOGS_QUEUE: Queue<unknown>;
};

let counter = 0;
/** A label unique to this run and call, safe in URLs, keys and script names. */
export function uid(prefix = "t"): string {
  counter++;
  return `${prefix}-${Date.now().toString(36)}-${counter.toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

export interface LogSpec {
  level: "debug" | "info" | "log" | "warn" | "error";
  message: unknown[];
  /** Offset from the event timestamp, in ms. Default: position in the list. */
  at?: number;
}

export interface TraceSpec {
  script?: string;
  path?: string;
  method?: string;
  status?: number;
  outcome?: string;
  /** Epoch ms. Default: a fixed time, so keys are predictable. */
  eventTimestamp?: number;
  logs?: LogSpec[];
  exceptions?: { name: string; message: string; at?: number }[];
}

/** A fixed instant: 2025-03-14 15:09:26.535 UTC. */
export const T0 = Date.UTC(2025, 2, 14, 15, 9, 26, 535);

/** A TraceItem shaped like the one the runtime hands to tail(). */
export function traceItem(spec: TraceSpec = {}): Record<string, unknown> {
  const ts = spec.eventTimestamp ?? T0;
  const logs = spec.logs ?? [{ level: "log", message: ["handled request"] }];
  return {
    event: {
      request: {
        url: `https://shop.example.com${spec.path ?? "/cart"}`,
        method: spec.method ?? "GET",
        headers: {},
        cf: { colo: "DFW", country: "US" },
      },
      response: { status: spec.status ?? 200 },
    },
    eventTimestamp: ts,
    logs: logs.map((l, i) => ({ level: l.level, message: l.message, timestamp: ts + (l.at ?? i + 1) })),
    exceptions: (spec.exceptions ?? []).map((e, i) => ({
      name: e.name,
      message: e.message,
      stack: `${e.name}: ${e.message}\n    at handler (worker.js:${10 + i}:5)`,
      timestamp: ts + (e.at ?? 50 + i),
    })),
    diagnosticsChannelEvents: [],
    scriptName: spec.script ?? "shop-api",
    outcome: spec.outcome ?? "ok",
    executionModel: "stateless",
    truncated: false,
    cpuTime: 1,
    wallTime: 2,
  };
}

/** Normalizes TraceItems (one tail() batch) into serialized records. */
export function serialized(items: Record<string, unknown>[]): SerializedRecord[] {
  return normalizeTraceItems(items).map(serializeRecord);
}

/** `n` ordinary invocations of one script, each with a couple of records. */
export function someRecords(n: number, script = "shop-api", path = "/cart"): SerializedRecord[] {
  const items: Record<string, unknown>[] = [];
  for (let i = 0; i < n; i++) {
    items.push(
      traceItem({
        script,
        path: `${path}/${i}`,
        eventTimestamp: T0 + i * 1000,
        logs: [{ level: "info", message: ["item", i, { sku: `SKU-${i}` }] }],
      }),
    );
  }
  return serialized(items);
}

/** Records whose JSON is about `bytes` long each (one invocation per record, log records only). */
export function bigRecords(n: number, bytes: number, script = "shop-api"): SerializedRecord[] {
  const out: SerializedRecord[] = [];
  for (let i = 0; i < n; i++) {
    const recs = serialized([
      traceItem({ script, path: `/big/${i}`, eventTimestamp: T0 + i, logs: [{ level: "warn", message: ["x"] }] }),
    ]);
    const log = recs[1] as SerializedRecord;
    const pad = Math.max(0, bytes - log.bytes);
    out.push(serializeRecord({ ...log.record, message: "x".repeat(pad + 1) } as LogRecord));
  }
  return out;
}

/** Resolves raw options with the sink's schema and creates the sink against the real env. */
export function makeSink<P = unknown>(
  def: AnySinkDefinition,
  raw: Record<string, unknown>,
  name = "under-test",
): { options: Record<string, unknown>; sink: Sink<P>; limits: BatchLimits } {
  const options = v.parse(def.options, raw) as Record<string, unknown>;
  return {
    options,
    sink: def.create(options, { name, env: env as unknown as Record<string, unknown> }),
    limits: def.batch(options),
  };
}

/** The local HTTP receiver's base URL (no trailing slash). */
export function receiverUrl(): string {
  return inject("receiverUrl");
}

/** Requests the receiver recorded under `label`. */
export async function received(label: string): Promise<ReceivedRequest[]> {
  const res = await fetch(`${receiverUrl()}/__received?label=${encodeURIComponent(label)}`);
  return (await res.json()) as ReceivedRequest[];
}

/** Parses NDJSON text strictly: one JSON object per line, and a trailing newline. */
export function parseNdjson(text: string): unknown[] {
  if (text === "") return [];
  if (!text.endsWith("\n")) throw new Error("NDJSON without a trailing newline");
  return text
    .slice(0, -1)
    .split("\n")
    .map((line) => JSON.parse(line));
}

/** The records as plain JSON values, as any consumer would see them. */
export function asJson(items: readonly SerializedRecord[]): unknown[] {
  return items.map((i) => JSON.parse(i.line));
}

/** Gunzips with the runtime's DecompressionStream. */
export async function gunzipText(body: ReadableStream | ArrayBuffer | Uint8Array): Promise<string> {
  const stream = body instanceof ReadableStream ? body : new Blob([body]).stream();
  return new Response(stream.pipeThrough(new DecompressionStream("gzip"))).text();
}

/** Freezes a value and everything under it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** UTF-8 byte length. */
export function utf8(s: string): number {
  return new TextEncoder().encode(s).byteLength;
}

/** The value, or a test failure naming what was missing (instead of a non-null assertion). */
export function must<T>(value: T | null | undefined, what = "value"): T {
  if (value === null || value === undefined) throw new Error(`expected ${what} to be present`);
  return value;
}
