/**
 * The queue consumer: buffered records (buffered mode) and queued retries
 * (either mode) come back through queue(). Buffered records are routed and
 * delivered in large batches; a retry group is delivered to its one sink and
 * settled again with growing delays. What the queue itself gave up on (its
 * dead_letter_queue) becomes dead letters.
 */

import type { ResolvedConfig } from "../config";
import type { DeliveryOptions } from "../delivery/deliver";
import { fromMessage, unpackBody, type WorkMessage } from "../delivery/durable";
import { deadLetter, type SettleContext } from "../delivery/settle";
import { logError } from "../log";
import type { SerializedRecord } from "../record";
import type { StatsBatch } from "../stats";
import { deliverAndSettle, firstDelivery } from "./deliver";
import { addSampled, countUnrouted, planDelivery, type SampledCounts, targetFor } from "./plan";

interface RetryGroup {
  sink: string;
  attempt: number;
  tries: number;
  since: number;
  items: SerializedRecord[];
}

/** A queue batch read back: tailfan's messages, sorted into buffered records and retry groups. */
export interface QueueWork {
  /** The messages that are tailfan's, to ack or retry together. */
  messages: Message<unknown>[];
  all: WorkMessage[];
  buffered: SerializedRecord[];
  /** Buffered records back from the spool: counted `received` and `pending` when they were spooled. */
  counted: SerializedRecord[];
  /** Records of the buffered invocations that no sink wanted. */
  unrouted: number;
  /** Of those, per sink, the records only sampling dropped. */
  sampled?: SampledCounts;
  /** Retries per sink and queue attempt, so each group is one delivery. */
  retries: Map<string, RetryGroup>;
}

function addRetry(retries: Map<string, RetryGroup>, { header, items }: WorkMessage): void {
  if (header.kind !== "retry") return;
  const key = `${header.sink}\u0000${header.attempt}`;
  const group = retries.get(key);
  if (group) {
    for (const item of items) group.items.push(item);
    group.since = Math.min(group.since, header.since);
    group.tries = Math.max(group.tries, header.tries ?? 0);
  } else {
    const { sink, attempt, since } = header;
    retries.set(key, { sink, attempt, tries: header.tries ?? 0, since, items: [...items] });
  }
}

/** Reads a batch's messages (gzipped ones unpacked); one that is not tailfan's is acknowledged and logged, never retried. */
export async function readBatch(batch: MessageBatch<unknown>): Promise<QueueWork> {
  const work: QueueWork = { messages: [], all: [], buffered: [], counted: [], unrouted: 0, retries: new Map() };
  for (const msg of batch.messages) {
    let message: WorkMessage;
    try {
      message = fromMessage(await unpackBody(msg.body));
    } catch (err) {
      logError(`tailfan: acknowledging a message on ${batch.queue} that is not tailfan's: ${String(err)}`);
      msg.ack();
      continue;
    }
    work.messages.push(msg);
    work.all.push(message);
    if (message.header.kind === "records" && message.header.counted) {
      for (const item of message.items) work.counted.push(item);
    } else if (message.header.kind === "records") {
      for (const item of message.items) work.buffered.push(item);
      work.unrouted += message.header.unrouted ?? 0;
      work.sampled = addSampled(work.sampled, message.header.sampled);
    } else addRetry(work.retries, message);
  }
  return work;
}

/** Messages from the queue-level dead_letter_queue: the queue gave up on them, so they become dead letters. */
async function fromDeadLetterQueue(
  work: readonly WorkMessage[],
  config: ResolvedConfig,
  env: Record<string, unknown>,
  stats: StatsBatch,
): Promise<void> {
  const queued = { ...firstDelivery(config, env, stats), fromQueue: true };
  const reason = "the queue gave up on this message (dead_letter_queue)";
  for (const { header, items } of work) {
    if (header.kind === "retry") {
      const attempts = header.tries ?? header.attempt;
      await deadLetter(
        queued,
        { sink: header.sink, reason: `${reason}; last error: ${header.reason}`, attempts },
        items,
      );
    } else {
      // Buffered records enter the counters when queue() first routes them; these never were.
      // Spooled ones were counted received and pending when they were spooled: they leave pending.
      const fresh = firstDelivery(config, env, stats);
      for (const t of planDelivery(items, config, env, header.counted ? undefined : stats)) {
        if (header.counted) stats.add(t.name, "pending", -t.items.length);
        await deadLetter(fresh, { sink: t.name, reason, attempts: 0 }, t.items);
      }
    }
  }
}

/** One retry group: delivered to its sink again, or dead-lettered when that sink is gone. */
async function deliverRetry(
  group: RetryGroup,
  config: ResolvedConfig,
  env: Record<string, unknown>,
  stats: StatsBatch,
  options: DeliveryOptions,
): Promise<void> {
  const sc: SettleContext = {
    env,
    delivery: config.delivery,
    stats,
    fromQueue: true,
    queueAttempts: group.attempt,
    since: group.since,
    priorTries: group.tries,
  };
  const target = targetFor(config, env, group.sink, group.items);
  if (target === null) {
    const info = { sink: group.sink, reason: "the sink is no longer configured", attempts: group.tries };
    await deadLetter(sc, info, group.items);
    return;
  }
  await deliverAndSettle([target], sc, options);
}

/**
 * Delivers a batch's work: the buffered records side by side with every
 * retry group, or, on the dead_letter_queue, dead-letters all of it.
 */
export async function consume(
  work: QueueWork,
  queueName: string,
  config: ResolvedConfig,
  env: Record<string, unknown>,
  stats: StatsBatch,
  options: DeliveryOptions,
): Promise<void> {
  if (config.delivery.deadLetterQueue !== null && queueName === config.delivery.deadLetterQueue) {
    await fromDeadLetterQueue(work.all, config, env, stats);
    return;
  }
  const jobs: Promise<unknown>[] = [];
  if (work.buffered.length > 0) {
    // Buffered records enter the counters here, where they are first routed for delivery.
    const targets = planDelivery(work.buffered, config, env, stats);
    countUnrouted(stats, config, work.unrouted, work.sampled);
    jobs.push(deliverAndSettle(targets, firstDelivery(config, env, stats), options));
  }
  if (work.counted.length > 0) {
    // Back from the spool: already received, so they only leave `pending` (and are settled as usual).
    const targets = planDelivery(work.counted, config, env);
    for (const t of targets) stats.add(t.name, "pending", -t.items.length);
    jobs.push(deliverAndSettle(targets, firstDelivery(config, env, stats), options));
  }
  for (const group of work.retries.values()) jobs.push(deliverRetry(group, config, env, stats, options));
  await Promise.all(jobs);
}
