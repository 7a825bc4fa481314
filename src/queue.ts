/**
 * The queue handler: delivers buffered records in large batches, retries
 * failed batches for their one sink with growing delays, and turns what the
 * queue itself gave up on (its dead_letter_queue) into dead letters.
 */
import { formatConfigErrors, loadConfig, type ResolvedConfig } from "./config";
import { type DeliveryOptions, deliverAll, type SinkTarget } from "./delivery/deliver";
import { fromMessage, type WorkMessage } from "./delivery/durable";
import { deadLetter, type SettleContext, settleAll } from "./delivery/settle";
import type { SerializedRecord } from "./record";
import { flushStats, StatsBatch } from "./stats";
import { deliveryOptions, planDelivery } from "./tail";

interface RetryGroup {
  sink: string;
  attempt: number;
  tries: number;
  since: number;
  items: SerializedRecord[];
}

function sinkTarget(
  config: ResolvedConfig,
  env: Record<string, unknown>,
  name: string,
  items: SerializedRecord[],
): SinkTarget | null {
  const s = config.sinks.find((x) => x.name === name);
  if (!s) return null;
  return { name, sink: s.definition.create(s.options, { name, env }), batch: s.batch, items };
}

/** Messages from the queue-level dead_letter_queue: the queue gave up on them, so they become dead letters. */
async function fromDeadLetterQueue(
  work: WorkMessage[],
  config: ResolvedConfig,
  env: Record<string, unknown>,
  stats: StatsBatch,
): Promise<void> {
  const base = { env, delivery: config.delivery, stats, fromQueue: true, queueAttempts: 0 };
  for (const { header, items } of work) {
    const reason = "the queue gave up on this message (dead_letter_queue)";
    if (header.kind === "retry") {
      await deadLetter(
        base,
        {
          sink: header.sink,
          reason: `${reason}; last error: ${header.reason}`,
          attempts: header.tries ?? header.attempt,
        },
        items,
      );
    } else {
      // Buffered records enter the counters when queue() first routes them; these never were.
      const fresh = { ...base, fromQueue: false };
      for (const t of planDelivery(items, config, env, stats)) {
        await deadLetter(fresh, { sink: t.name, reason, attempts: 0 }, t.items);
      }
    }
  }
}

export async function handleQueue(
  batch: MessageBatch<unknown>,
  env: Record<string, unknown>,
  override?: Partial<DeliveryOptions>,
): Promise<void> {
  const loaded = loadConfig(env);
  if (!loaded.ok) {
    console.error(
      `tailfan: configuration is invalid; ${batch.messages.length} queued message(s) will be retried in 5 minutes. Fix these and redeploy:\n${formatConfigErrors(loaded.errors)}`,
    );
    batch.retryAll({ delaySeconds: 300 });
    return;
  }
  const { config } = loaded;
  const stats = new StatsBatch();
  const options = deliveryOptions(config.delivery, override);
  const buffered: SerializedRecord[] = [];
  let unrouted = 0;
  const retries = new Map<string, RetryGroup>();
  const all: WorkMessage[] = [];
  const settled: Message<unknown>[] = [];
  for (const msg of batch.messages) {
    let work: WorkMessage;
    try {
      work = fromMessage(msg.body);
    } catch (err) {
      console.error(`tailfan: acknowledging a message on ${batch.queue} that is not tailfan's: ${String(err)}`);
      msg.ack();
      continue;
    }
    settled.push(msg);
    all.push(work);
    const { header, items } = work;
    if (header.kind === "records") {
      for (const item of items) buffered.push(item);
      unrouted += header.unrouted ?? 0;
    } else {
      const key = `${header.sink}\u0000${header.attempt}`;
      const group = retries.get(key);
      if (group) {
        for (const item of items) group.items.push(item);
        group.since = Math.min(group.since, header.since);
        group.tries = Math.max(group.tries, header.tries ?? 0);
      } else {
        retries.set(key, {
          sink: header.sink,
          attempt: header.attempt,
          tries: header.tries ?? 0,
          since: header.since,
          items: [...items],
        });
      }
    }
  }

  try {
    if (config.delivery.deadLetterQueue !== null && batch.queue === config.delivery.deadLetterQueue) {
      await fromDeadLetterQueue(all, config, env, stats);
    } else {
      const jobs: Promise<void>[] = [];
      if (buffered.length > 0) {
        jobs.push(
          (async () => {
            // Buffered records enter the counters here, where they are first routed for delivery.
            const reports = await deliverAll(planDelivery(buffered, config, env, stats), options);
            for (const s of config.sinks) stats.add(s.name, "droppedFilter", unrouted);
            await settleAll({ env, delivery: config.delivery, stats, fromQueue: false, queueAttempts: 0 }, reports);
          })(),
        );
      }
      for (const group of retries.values()) {
        const sc: SettleContext = {
          env,
          delivery: config.delivery,
          stats,
          fromQueue: true,
          queueAttempts: group.attempt,
          since: group.since,
          priorTries: group.tries,
        };
        const target = sinkTarget(config, env, group.sink, group.items);
        if (target === null) {
          jobs.push(
            deadLetter(
              sc,
              { sink: group.sink, reason: "the sink is no longer configured", attempts: group.tries },
              group.items,
            ).then(() => {}),
          );
          continue;
        }
        jobs.push(deliverAll([target], options).then((reports) => settleAll(sc, reports)));
      }
      await Promise.all(jobs);
    }
    for (const msg of settled) msg.ack();
  } catch (err) {
    console.error(`tailfan: queue batch failed unexpectedly, retrying it: ${String(err)}`);
    for (const msg of settled) msg.retry({ delaySeconds: 60 });
  }
  await flushStats(env, config.delivery.stats, stats);
}
