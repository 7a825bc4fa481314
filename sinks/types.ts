/**
 * The sink contract. A sink type is one `defineSink({...})` in its own file,
 * registered in `sinks/index.ts`. Batching, timeouts, retry and fan-out live
 * in the core (`src/delivery/`); a sink only encodes and sends.
 */
import type * as v from "valibot";
import type { LogRecord, SerializedRecord } from "../src/record";

export type { LogRecord, SerializedRecord };

/**
 * What one attempt to send a payload came to. `send` returns it and never
 * throws: `retry` is worth another attempt (after `retryAfterMs` when the
 * backend said so), `fail` is permanent.
 */
export type SendResult =
  | { outcome: "ok"; status?: number }
  | { outcome: "retry"; reason: string; status?: number; retryAfterMs?: number }
  | { outcome: "fail"; reason: string; status?: number }
  | {
      /**
       * Some records were taken and some not (an Elasticsearch bulk answer with
       * `errors: true`): indices into the batch of those worth retrying and of
       * those refused for good. Every other record counts as delivered.
       */
      outcome: "partial";
      retry: readonly number[];
      fail: readonly number[];
      reason: string;
      status?: number;
      retryAfterMs?: number;
    };

/** How the core cuts a sink's records into payloads. */
export interface BatchLimits {
  /** Most records in one payload. */
  maxRecords: number;
  /** Most bytes of record JSON in one payload (before compression). */
  maxBytes: number;
  /**
   * Largest single record this sink can take at all; a larger record is
   * failed with a clear reason instead of breaking its batch.
   */
  maxRecordBytes?: number;
}

/** Kinds of Worker bindings a sink can name; the config checks they exist and are of that kind. */
export type BindingKind = "kv" | "r2" | "queue" | "d1" | "analytics_engine" | "durable_object";

export interface BindingRef {
  /** The option that names the binding, for error messages. */
  option: string;
  /** The binding name in wrangler.toml. */
  name: string;
  kind: BindingKind;
}

export interface SinkContext {
  /** The sink's `name` from SINKS. */
  name: string;
  /** The Worker's env: bindings are looked up here by name. */
  env: Record<string, unknown>;
}

export interface Sink<P> {
  /** Pure and deterministic: the same records give the same payload. */
  encode(batch: readonly SerializedRecord[]): P;
  /** Sends one payload. Never throws; honours `signal` for the per-attempt timeout. */
  send(payload: P, signal: AbortSignal): Promise<SendResult>;
  /**
   * A sink that sums records rather than sending them (metrics) says how.
   * In direct mode, tail() then folds its records into this isolate's open
   * aggregate of the sink instead of sending them, and the invocation that
   * opened it sends one payload when the window ends
   * (src/pipeline/aggregate.ts). Elsewhere (queue()) `encode` folds a whole
   * batch, and must give what folding the same records would.
   */
  aggregate?: Aggregation<P>;
}

/** How an aggregating sink folds records across invocations. */
export interface Aggregation<P> {
  /** Sinks of one name with the same key share a window: it changes with the options. */
  key: string;
  /** How long a window gathers invocations before it is sent, ms. */
  windowMs: number;
  /** A new, empty aggregate. */
  open(): Aggregate<P>;
}

/** The compact sums of a window: a record is folded in on arrival and not kept. */
export interface Aggregate<P> {
  add(record: LogRecord): void;
  /** The payload of everything folded so far; pure. */
  encode(): P;
}

export interface SinkDefinition<O = unknown, P = unknown> {
  /** The `type` users write in SINKS. */
  type: string;
  /** One line for docs and errors. */
  description: string;
  /** Options schema (without `name`, `type` and filter fields), with defaults. Strict: unknown keys are errors. */
  options: v.GenericSchema<unknown, O>;
  /** Batch limits, from the resolved options where the user may tune them. */
  batch: (options: O) => BatchLimits;
  /**
   * Options that hold credentials, with the secret each one reads when the
   * user does not set it (`{ apiKey: "DD_API_KEY" }`): the option defaults
   * to `"${DD_API_KEY}"`, resolved like any other secret reference.
   */
  defaultSecrets?: Record<string, string>;
  /**
   * The records this sink type takes at all (its default filter, applied
   * after the routes): given every record of one delivery, a test for each.
   * The others are counted `droppedFilter` for the sink instead of `sent`.
   * Without it the sink takes every record routed to it.
   */
  takes?: (records: readonly LogRecord[], options: O) => (record: LogRecord) => boolean;
  /** Bindings the options name, checked when the config is loaded. */
  bindings?: (options: O) => BindingRef[];
  /**
   * The sink writes each record's JSON line (`item.line`) into its payload,
   * so a sink's shaping (`fields`, `exclude`, `rename`, `add`) changes what it
   * sends. A function answers for the options: null when it does, else why
   * not. Without it the sink builds its payload from the record's fields,
   * and the config refuses shaping on it rather than ignore it.
   */
  writesLine?: true | ((options: O) => string | null);
  create(options: O, ctx: SinkContext): Sink<P>;
}

/**
 * Declares a sink type. Generic parameters are inferred from the schema and
 * the factory, so `create` sees fully typed options.
 */
export function defineSink<O, P>(def: SinkDefinition<O, P>): SinkDefinition<O, P> {
  return def;
}

/** The registry's view of any sink definition. */
// biome-ignore lint/suspicious/noExplicitAny: the registry holds definitions of every option and payload type.
export type AnySinkDefinition = SinkDefinition<any, any>;
