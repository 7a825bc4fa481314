/**
 * DELIVERY: how records travel from tail() to the sinks. Its defaults are
 * written here once; the delivery code's per-attempt options derive from them.
 */

import * as v from "valibot";
import type { DeliveryOptions } from "../delivery/deliver";
import { type ConfigError, issuesToErrors } from "../issues";
import { intIn } from "../schema";
import { checkBinding, checkDurableObject } from "./bindings";
import { readVar } from "./env";

/** DELIVERY as resolved: how records travel from tail() to the sinks. */
export interface DeliveryConfig {
  /** `direct`: tail() delivers; `buffered`: tail() only enqueues and queue() delivers in large batches. */
  mode: "direct" | "buffered";
  /** Per-attempt timeout, ms. */
  timeoutMs: number;
  /** Attempts per batch inside one invocation. */
  attempts: number;
  /** First backoff, ms; doubles, full jitter. */
  backoffMs: number;
  /** Time budget for one sink's delivery inside one invocation, ms. */
  budgetMs: number;
  /** Queue producer binding for buffered records and durable retries; null: best effort only. */
  queue: string | null;
  /** Deliveries from the queue (retries) before a batch is dead-lettered. */
  retries: number;
  /** Delay before the first retry from the queue, seconds; doubles each time. */
  retryDelaySeconds: number;
  /** R2 binding that receives dead letters; null: they are logged and counted as failed. */
  deadLetter: string | null;
  /** Key prefix of dead-letter objects. */
  deadLetterPrefix: string;
  /** Name of the queue-level dead_letter_queue that tailfan consumes into the dead-letter bucket. */
  deadLetterQueue: string | null;
  /** Durable Object binding of the counters; null: counters are not kept. */
  stats: string | null;
  /** Latest records kept beside the counters for the dashboard; 0: none. */
  recent: number;
  /** How long an isolate's shared delivery (direct; 250 ms by default) or work message (buffered; 1000 ms) stays open for more invocations, ms; 0: one per tail(). */
  bufferMs: number;
  /** Key prefix, in the dead-letter bucket, of buffered records the queue refused (the spool). */
  spoolPrefix: string;
  /** How long an isolate sums counter deltas before one write, ms; 0: a write per invocation. */
  statsFlushMs: number;
  /** Counters objects the isolates spread their writes over (each isolate picks one); reads sum them all. */
  statsShards: number;
}

export const DEFAULT_DELIVERY_CONFIG: DeliveryConfig = {
  mode: "direct",
  timeoutMs: 5_000,
  attempts: 3,
  backoffMs: 1_000,
  budgetMs: 20_000,
  queue: null,
  retries: 5,
  retryDelaySeconds: 30,
  deadLetter: null,
  deadLetterPrefix: "dead-letter",
  deadLetterQueue: null,
  stats: null,
  recent: 200,
  bufferMs: 250,
  spoolPrefix: "spool",
  statsFlushMs: 5_000,
  statsShards: 8,
};

/** Sends in flight at once across all sinks: the runtime allows 6 connections. */
export const MAX_CONNECTIONS = 6;

/** The per-attempt knobs of a delivery config, for the delivery code. */
export function deliveryOptions(d: DeliveryConfig, override?: Partial<DeliveryOptions>): DeliveryOptions {
  return {
    timeoutMs: d.timeoutMs,
    maxAttempts: d.attempts,
    backoffMs: d.backoffMs,
    budgetMs: d.budgetMs,
    maxConnections: MAX_CONNECTIONS,
    ...override,
  };
}

/** The per-attempt knobs when DELIVERY is not set. */
export const DEFAULT_DELIVERY: DeliveryOptions = deliveryOptions(DEFAULT_DELIVERY_CONFIG);

/**
 * `bufferMs` in buffered mode when not set: records wait for the queue
 * consumer's batch anyway (`max_batch_timeout`, seconds). A busy isolate
 * fills its 512 KiB message long before the window ends and sends it then;
 * the window only decides for a quiet one, which sends one message per
 * window whatever it holds: at 5 s, a fifth of the messages (and of their
 * queue operations) that 1 s windows cost an isolate of 10 invocations/s,
 * and 2,000 messages/s at the queue instead of 10,000 when 100,000
 * invocations/s are spread over 10,000 such isolates.
 */
export const BUFFERED_BUFFER_MS = 5_000;

const int = intIn;
const d = DEFAULT_DELIVERY_CONFIG;

const deliverySchema = v.strictObject({
  mode: v.optional(v.picklist(["direct", "buffered"], 'must be "direct" or "buffered"'), d.mode),
  timeoutMs: v.optional(int(100, 30_000, "ms"), d.timeoutMs),
  attempts: v.optional(int(1, 10, "attempts"), d.attempts),
  backoffMs: v.optional(int(0, 30_000, "ms"), d.backoffMs),
  budgetMs: v.optional(int(1_000, 28_000, "ms (waitUntil ends about 30 s after the invocation)"), d.budgetMs),
  queue: v.optional(v.nullable(v.string()), d.queue),
  retries: v.optional(int(0, 100, "retries"), d.retries),
  retryDelaySeconds: v.optional(int(0, 43_200, "seconds"), d.retryDelaySeconds),
  deadLetter: v.optional(v.nullable(v.string()), d.deadLetter),
  deadLetterPrefix: v.optional(v.string(), d.deadLetterPrefix),
  deadLetterQueue: v.optional(v.nullable(v.string()), d.deadLetterQueue),
  stats: v.optional(v.nullable(v.string()), d.stats),
  recent: v.optional(int(0, 1_000, "records"), d.recent),
  // Its default depends on the mode: resolved in readDelivery.
  bufferMs: v.optional(int(0, 5_000, "ms")),
  spoolPrefix: v.optional(v.pipe(v.string(), v.minLength(1, "must not be empty")), d.spoolPrefix),
  statsFlushMs: v.optional(int(0, 20_000, "ms"), d.statsFlushMs),
  statsShards: v.optional(int(1, 64, "objects"), d.statsShards),
});

/** Reads DELIVERY (unset: the defaults) and checks the bindings it names. */
export function readDelivery(raw: unknown, env: Record<string, unknown>, errors: ConfigError[]): DeliveryConfig {
  const read = readVar(
    raw,
    "DELIVERY",
    'write a table like { queue = "TAILFAN_QUEUE" } in [vars], or the same as JSON: {"queue":"TAILFAN_QUEUE"}',
  );
  if (!read.ok) {
    errors.push(read.error);
    return DEFAULT_DELIVERY_CONFIG;
  }
  if (read.value === undefined) return DEFAULT_DELIVERY_CONFIG;
  const parsed = v.safeParse(deliverySchema, read.value);
  if (!parsed.success) {
    errors.push(...issuesToErrors("DELIVERY", "", parsed.issues, Object.keys(deliverySchema.entries)));
    return DEFAULT_DELIVERY_CONFIG;
  }
  const delivery: DeliveryConfig = {
    ...parsed.output,
    bufferMs: parsed.output.bufferMs ?? (parsed.output.mode === "buffered" ? BUFFERED_BUFFER_MS : d.bufferMs),
  };
  checkDeliveryBindings(delivery, env, errors);
  return delivery;
}

function checkDeliveryBindings(delivery: DeliveryConfig, env: Record<string, unknown>, errors: ConfigError[]): void {
  const bind = (option: keyof DeliveryConfig, name: string | null, kind: "queue" | "r2" | "do") => {
    if (name === null) return;
    const problem = kind === "do" ? checkDurableObject(env, name) : checkBinding(env, name, kind);
    if (problem) errors.push({ variable: "DELIVERY", path: `.${option}`, message: problem });
  };
  bind("queue", delivery.queue, "queue");
  bind("deadLetter", delivery.deadLetter, "r2");
  bind("stats", delivery.stats, "do");
  if (delivery.mode === "buffered" && delivery.queue === null) {
    errors.push({
      variable: "DELIVERY",
      path: ".queue",
      message: 'buffered mode needs a queue: set queue = "<Queue producer binding>" and make tailfan its consumer',
    });
  }
}
