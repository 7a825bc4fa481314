/**
 * What happens to records after a delivery attempt: counted as sent, handed
 * to the retry queue, dead-lettered, or counted as failed with a logged
 * reason. Every record routed to a sink ends in exactly one of those, so the
 * counters always add up.
 */
import type { DeliveryConfig } from "../config";
import { logError } from "../log";
import type { SerializedRecord } from "../record";
import { queuedLine } from "../shape";
import type { StatsBatch } from "../stats";
import type { FailedBatch, SinkReport } from "./deliver";
import {
  type DeadLetterInfo,
  MAX_DELAY_SECONDS,
  retryDelay,
  sendMessages,
  toMessages,
  writeDeadLetter,
} from "./durable";

export interface SettleContext {
  env: Record<string, unknown>;
  delivery: DeliveryConfig;
  stats: StatsBatch;
  /** The records were already waiting in the queue (buffered or retrying): leaving it lowers `pending`. */
  fromQueue: boolean;
  /** Queue deliveries these records have had so far (0 in tail()). */
  queueAttempts: number;
  /** When they first failed, for retry messages. */
  since?: number;
  /** Send attempts these records had before this delivery. */
  priorTries?: number;
}

function log(message: string): void {
  logError(`tailfan: ${message}`);
}

/** What settling did with a report's failed records. */
interface Settled {
  pending: number;
  deadLettered: number;
}

/**
 * Writes to the dead-letter bucket, or counts the records as failed when
 * there is none or it refuses. Returns how many were dead-lettered.
 */
export async function deadLetter(
  sc: SettleContext,
  info: DeadLetterInfo,
  items: readonly SerializedRecord[],
): Promise<number> {
  const n = items.length;
  if (n === 0) return 0;
  if (sc.fromQueue) sc.stats.add(info.sink, "pending", -n);
  const binding = sc.delivery.deadLetter;
  if (binding !== null) {
    try {
      await writeDeadLetter(sc.env[binding] as R2Bucket, sc.delivery.deadLetterPrefix, info, items);
      sc.stats.add(info.sink, "deadLettered", n);
      log(
        `sink "${info.sink}": ${n} record(s) dead-lettered to ${binding} after ${info.attempts} attempt(s): ${info.reason}`,
      );
      return n;
    } catch (err) {
      log(
        `sink "${info.sink}": the dead letter ${binding} refused ${n} record(s) (${String(err)}); they are lost: ${info.reason}`,
      );
    }
  } else {
    log(`sink "${info.sink}" lost ${n} record(s) after ${info.attempts} attempt(s): ${info.reason}`);
  }
  sc.stats.add(info.sink, "failed", n);
  return 0;
}

/**
 * Seconds before a queued retry: the schedule's delay, or the backend's
 * `Retry-After` when that is longer, at most the Queue's 12 hours.
 */
export function queuedRetryDelay(baseSeconds: number, attempt: number, retryAfterMs?: number): number {
  return Math.min(MAX_DELAY_SECONDS, Math.max(retryDelay(baseSeconds, attempt), Math.ceil((retryAfterMs ?? 0) / 1000)));
}

/** Hands a failed batch to the retry queue; what cannot be queued is dead-lettered. */
async function requeue(sc: SettleContext, sink: string, failure: FailedBatch, tries: number): Promise<Settled> {
  const done: Settled = { pending: 0, deadLettered: 0 };
  const queueBinding = sc.delivery.queue as string;
  const attempt = sc.queueAttempts + 1;
  const header = {
    v: 1 as const,
    kind: "retry" as const,
    sink,
    attempt,
    tries,
    reason: failure.reason,
    since: sc.since ?? Date.now(),
    ...(failure.status === undefined ? {} : { status: failure.status }),
  };
  // A shaped record travels as it was before shaping; queue() shapes it again for the sink.
  const lines = failure.items.map(queuedLine);
  const { bodies, oversized: tooLarge } = toMessages(header, lines);
  const large = new Set(tooLarge);
  const oversized = failure.items.filter((_, k) => large.has(lines[k] as SerializedRecord));
  const info: DeadLetterInfo = { sink, reason: failure.reason, attempts: tries };
  if (failure.status !== undefined) info.status = failure.status;
  const queued = failure.items.length - oversized.length;
  try {
    await sendMessages(
      sc.env[queueBinding] as Queue,
      bodies,
      queuedRetryDelay(sc.delivery.retryDelaySeconds, attempt, failure.retryAfterMs),
    );
    sc.stats.add(sink, "retried", queued);
    if (!sc.fromQueue) sc.stats.add(sink, "pending", queued);
    done.pending += queued;
  } catch (err) {
    log(`sink "${sink}": could not queue ${queued} record(s) for retry (${String(err)})`);
    done.deadLettered += await deadLetter(
      sc,
      { ...info, reason: `${failure.reason}; retry queue refused: ${String(err)}` },
      failure.items.filter((i) => !oversized.includes(i)),
    );
  }
  if (oversized.length > 0) {
    done.deadLettered += await deadLetter(
      sc,
      { ...info, reason: `${failure.reason}; too large for a queue message` },
      oversized,
    );
  }
  return done;
}

/**
 * Counts a sink's delivery and settles its failures; the report then says
 * where its failed records went (`pending`, `deadLettered`, `failed`: lost).
 */
export async function settleReport(sc: SettleContext, report: SinkReport): Promise<void> {
  const { sink } = report;
  const { stats } = sc;
  stats.add(sink, "sent", report.delivered);
  stats.add(sink, "bytes", report.bytes);
  stats.add(sink, "requests", report.requests);
  if (report.oversized > 0) {
    stats.add(sink, "droppedLimit", report.oversized);
    if (sc.fromQueue) stats.add(sink, "pending", -report.oversized);
    log(`sink "${sink}": ${report.oversized} record(s) larger than the sink accepts were dropped`);
  }
  if (sc.fromQueue) stats.add(sink, "pending", -report.delivered);
  const last = report.failures[report.failures.length - 1];
  if (last) stats.error(sink, last.reason, last.status);
  for (const failure of report.failures) {
    const tries = (sc.priorTries ?? 0) + failure.attempts;
    const canRetry = failure.retryable && sc.delivery.queue !== null && sc.queueAttempts < sc.delivery.retries;
    let done: Settled = { pending: 0, deadLettered: 0 };
    if (canRetry) done = await requeue(sc, sink, failure, tries);
    else {
      const info: DeadLetterInfo = {
        sink,
        reason:
          failure.retryable && sc.delivery.queue === null
            ? `${failure.reason} (no retry queue configured)`
            : failure.reason,
        attempts: tries,
      };
      if (failure.status !== undefined) info.status = failure.status;
      done.deadLettered = await deadLetter(sc, info, failure.items);
    }
    report.pending = (report.pending ?? 0) + done.pending;
    report.deadLettered = (report.deadLettered ?? 0) + done.deadLettered;
    report.failed -= done.pending + done.deadLettered;
  }
}

/** Settles every sink's report; never throws. */
export async function settleAll(sc: SettleContext, reports: readonly SinkReport[]): Promise<void> {
  await Promise.all(
    reports.map((r) =>
      settleReport(sc, r).catch((err: unknown) => log(`settling sink "${r.sink}" failed unexpectedly: ${String(err)}`)),
    ),
  );
}
