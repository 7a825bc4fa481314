/**
 * Direct delivery: each sink's records are cut into batches, encoded and
 * sent with a per-attempt timeout, and retried with backoff inside a time
 * budget. Sinks run side by side, so one slow or failing sink never holds
 * back another; at most `maxConnections` sends are in flight at once.
 */
import type { BatchLimits, SendResult, Sink } from "../../sinks/index";
import { DEFAULT_DELIVERY } from "../config";
import type { SerializedRecord } from "../record";
import { splitBatches } from "./batch";

export interface DeliveryOptions {
  /** Per-attempt timeout. */
  timeoutMs: number;
  /** Attempts per batch, the first included. */
  maxAttempts: number;
  /** First backoff; doubles each retry, with full jitter. */
  backoffMs: number;
  /** Wall-clock budget for one sink's whole delivery. */
  budgetMs: number;
  /** Sends in flight at once across all sinks (the runtime allows 6 connections). */
  maxConnections: number;
  /**
   * How long tail() holds records for more invocations before delivering
   * them together; DELIVERY.bufferMs when not given (the API's /replay
   * passes 0 to deliver its records on their own).
   */
  bufferMs?: number;
}

export interface SinkTarget {
  name: string;
  sink: Sink<unknown>;
  batch: BatchLimits;
  items: SerializedRecord[];
}

export interface SinkReport {
  sink: string;
  /** Records routed to this sink. */
  records: number;
  /** Records in batches the sink accepted. */
  delivered: number;
  /**
   * Records in batches that failed for good or ran out of attempts. Once the
   * report is settled, only those lost: the ones queued for a retry move to
   * `pending`, the dead-lettered ones to `deadLettered`.
   */
  failed: number;
  /** Records handed to the retry queue when the report was settled. */
  pending?: number;
  /** Records written to the dead-letter bucket when the report was settled. */
  deadLettered?: number;
  /** Records larger than the sink can take. */
  oversized: number;
  /** Send attempts made. */
  requests: number;
  /** Bytes of record JSON in accepted batches (before compression). */
  bytes: number;
  errors: string[];
  /** The batches that did not get through, for the durable retry path. */
  failures: FailedBatch[];
}

export interface FailedBatch {
  items: SerializedRecord[];
  /** The last answer was retryable (timeout, 429, 5xx, network), not a permanent refusal. */
  retryable: boolean;
  status?: number;
  reason: string;
  attempts: number;
  /** The backend's last `Retry-After`, in ms: the queued retry waits at least this long. */
  retryAfterMs?: number;
}

/**
 * The invocation's connections, shared fairly: at most `limit` holders at
 * once, and a freed connection goes to the sink with work that holds the
 * fewest (round robin among equals), so a sink whose sends hang cannot take
 * the connections of another one by one. Grants are made a microtask after a
 * request, so the sinks that start together share the first ones too.
 */
export class Limiter {
  private active = 0;
  /** Connections held per key. */
  private readonly held = new Map<string, number>();
  /** Waiters per key; Map order is the round robin among equals (a served key moves to the end). */
  private readonly waiting = new Map<string, (() => void)[]>();
  private scheduled = false;
  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>, key = ""): Promise<T> {
    await new Promise<void>((resolve) => {
      const queue = this.waiting.get(key);
      if (queue) queue.push(resolve);
      else this.waiting.set(key, [resolve]);
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => {
          this.scheduled = false;
          this.grant();
        });
      }
    });
    try {
      return await fn();
    } finally {
      this.active--;
      this.held.set(key, (this.held.get(key) ?? 1) - 1);
      this.grant();
    }
  }

  private grant(): void {
    while (this.active < this.limit && this.waiting.size > 0) {
      let key = "";
      let fewest = Number.POSITIVE_INFINITY;
      for (const k of this.waiting.keys()) {
        const n = this.held.get(k) ?? 0;
        if (n < fewest) {
          fewest = n;
          key = k;
        }
      }
      const queue = this.waiting.get(key) as (() => void)[];
      const next = queue.shift() as () => void;
      this.waiting.delete(key);
      if (queue.length > 0) this.waiting.set(key, queue);
      this.active++;
      this.held.set(key, fewest + 1);
      next();
    }
  }
}

/**
 * The shortest per-attempt timeout worth an attempt: a batch whose remaining
 * budget is below it goes to the retry path unsent instead of being sent
 * with a timeout no backend could meet.
 */
export function minAttemptMs(timeoutMs: number): number {
  return Math.min(timeoutMs, 1_000);
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One send with the per-attempt timeout; resolves to what it came to, never throws. */
export async function attempt(sink: Sink<unknown>, payload: unknown, timeoutMs: number): Promise<SendResult> {
  const controller = new AbortController();
  // No custom reason: workerd also cancels the request body's upload with the abort reason, and a
  // reason of our own is then reported as an uncaught exception of the invocation (a queue()
  // batch would be delivered again); its own AbortError is not.
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const timeout = new Promise<SendResult>((resolve) => {
      controller.signal.addEventListener("abort", () =>
        resolve({ outcome: "retry", reason: `timed out after ${timeoutMs} ms` }),
      );
    });
    return await Promise.race([sink.send(payload, controller.signal), timeout]);
  } catch (err) {
    // send() must not throw; if one does, it is a bug in that sink, not a reason to retry.
    return { outcome: "fail", reason: `sink threw: ${messageOf(err)}` };
  } finally {
    clearTimeout(timer);
  }
}

function emptyReport(target: SinkTarget): SinkReport {
  return {
    sink: target.name,
    records: target.items.length,
    delivered: 0,
    failed: 0,
    oversized: 0,
    requests: 0,
    bytes: 0,
    errors: [],
    failures: [],
  };
}

/** Counts records that did not get through, with the reason and what the retry path needs. */
function addFailure(report: SinkReport, items: SerializedRecord[], failure: Omit<FailedBatch, "items">, why: string) {
  if (items.length === 0) return;
  report.failed += items.length;
  report.errors.push(why);
  report.failures.push({ items, ...failure });
}

/** A failed attempt's answer as the retry path keeps it: status, and the backend's `Retry-After` if retryable. */
function failureOf(result: Exclude<SendResult, { outcome: "ok" }>, retryable: boolean, attempts: number) {
  const failure: Omit<FailedBatch, "items"> = { retryable, reason: result.reason, attempts };
  if (result.status !== undefined) failure.status = result.status;
  if (retryable && "retryAfterMs" in result && result.retryAfterMs !== undefined) {
    failure.retryAfterMs = result.retryAfterMs;
  }
  return failure;
}

/**
 * The backend took part of a batch: counts what it accepted, sets aside
 * what it refused, and returns the records to send again.
 */
function takePartial(
  report: SinkReport,
  batch: readonly SerializedRecord[],
  result: Extract<SendResult, { outcome: "partial" }>,
  attempts: number,
): SerializedRecord[] {
  const retry = new Set(result.retry);
  const refused = new Set(result.fail);
  const next: SerializedRecord[] = [];
  const failed: SerializedRecord[] = [];
  batch.forEach((item, i) => {
    if (refused.has(i)) failed.push(item);
    else if (retry.has(i)) next.push(item);
    else {
      report.delivered++;
      report.bytes += item.bytes;
    }
  });
  addFailure(report, failed, failureOf(result, false, attempts), `refused: ${result.reason}`);
  return next;
}

/** Encodes a batch; null (the batch counted as failed for good) when the sink's encoder throws. */
function encodeOrFail(target: SinkTarget, report: SinkReport, batch: SerializedRecord[], attempts: number) {
  try {
    return { payload: target.sink.encode(batch) };
  } catch (err) {
    const reason = `encode failed: ${messageOf(err)}`;
    addFailure(report, batch, { retryable: false, reason, attempts }, reason);
    return null;
  }
}

/** Sends one batch: attempts with a timeout each, backoff between them, all within the sink's deadline. */
async function sendBatch(
  target: SinkTarget,
  first: SerializedRecord[],
  report: SinkReport,
  limiter: Limiter,
  options: DeliveryOptions,
  deadline: number,
): Promise<void> {
  let batch = first;
  const encoded = encodeOrFail(target, report, batch, 0);
  if (encoded === null) return;
  let { payload } = encoded;
  for (let n = 1; ; n++) {
    // The attempt's timeout starts when it has a connection, not while it waits for one.
    const result = await limiter.run(async (): Promise<SendResult | null> => {
      const timeoutMs = Math.min(options.timeoutMs, deadline - Date.now());
      if (timeoutMs < minAttemptMs(options.timeoutMs)) return null;
      report.requests++;
      return attempt(target.sink, payload, timeoutMs);
    }, target.name);
    if (result === null) {
      const reason = "not sent: the delivery budget ran out while waiting for a connection";
      addFailure(report, batch, { retryable: true, reason, attempts: n - 1 }, reason);
      return;
    }
    if (result.outcome === "ok") {
      report.delivered += batch.length;
      for (const item of batch) report.bytes += item.bytes;
      return;
    }
    if (result.outcome === "fail") {
      addFailure(report, batch, failureOf(result, false, n), `failed: ${result.reason}`);
      return;
    }
    if (result.outcome === "partial") {
      batch = takePartial(report, batch, result, n);
      if (batch.length === 0) return;
      try {
        payload = target.sink.encode(batch);
      } catch (err) {
        addFailure(report, batch, failureOf(result, false, n), `encode failed: ${messageOf(err)}: ${result.reason}`);
        return;
      }
    }
    const backoff = Math.random() * options.backoffMs * 2 ** (n - 1);
    const wait = Math.max(backoff, result.retryAfterMs ?? 0);
    if (n >= options.maxAttempts || Date.now() + wait >= deadline) {
      addFailure(report, batch, failureOf(result, true, n), `gave up after ${n} attempt(s): ${result.reason}`);
      return;
    }
    await sleep(wait);
  }
}

/** Delivers one sink's records; never throws. */
export async function deliverToSink(
  target: SinkTarget,
  limiter: Limiter,
  options: DeliveryOptions = DEFAULT_DELIVERY,
): Promise<SinkReport> {
  const report = emptyReport(target);
  const { batches, oversized } = splitBatches(target.items, target.batch);
  if (oversized.length > 0) {
    report.oversized = oversized.length;
    report.errors.push(
      `${oversized.length} record(s) larger than the sink's limit of ${target.batch.maxRecordBytes} bytes were not sent`,
    );
  }
  const deadline = Date.now() + options.budgetMs;
  await Promise.all(batches.map((batch) => sendBatch(target, batch, report, limiter, options, deadline)));
  return report;
}

/** Delivers to every sink side by side; one sink's failure never affects another's. */
export async function deliverAll(
  targets: readonly SinkTarget[],
  options: DeliveryOptions = DEFAULT_DELIVERY,
): Promise<SinkReport[]> {
  const limiter = new Limiter(options.maxConnections);
  const settled = await Promise.allSettled(targets.map((t) => deliverToSink(t, limiter, options)));
  return settled.map((s, i) => {
    if (s.status === "fulfilled") return s.value;
    const target = targets[i] as SinkTarget;
    // A bug, not a backend's answer: the records go the retry path (or to the dead letter) with the reason.
    const reason = `delivery crashed: ${messageOf(s.reason)}`;
    return {
      sink: target.name,
      records: target.items.length,
      delivered: 0,
      failed: target.items.length,
      oversized: 0,
      requests: 0,
      bytes: 0,
      errors: [reason],
      failures: target.items.length === 0 ? [] : [{ items: target.items, retryable: true, reason, attempts: 0 }],
    };
  });
}
