/**
 * Buffered mode (`DELIVERY.mode = "buffered"` with a `queue`): tail() only
 * routes and serializes; the records go to the work queue and queue()
 * delivers them in large batches (src/pipeline/consume.ts). Rules:
 * - one queue send and no counters write per tail(): the records enter the
 *   counters when queue() first routes them; the first message carries how
 *   many records no sink wanted, so `droppedFilter` stays complete;
 * - messages carry the globally scrubbed, redacted records, so the config
 *   refuses `unredacted` and a sink's own `scrub` in this mode, and a buffered
 *   queue is required (the config's cross-check);
 * - a record too large for a queue message is delivered directly;
 * - if the queue refuses, this invocation is delivered directly: nothing is lost.
 */
import type { SinkTarget } from "../delivery/deliver";
import { sendMessages, toMessages } from "../delivery/durable";
import { logError } from "../log";
import type { SerializedRecord } from "../record";
import { StatsBatch } from "../stats";
import { deliverAndSettle, firstDelivery } from "./deliver";
import type { DeliveryMode } from "./modes";
import { planDelivery } from "./plan";

/** Message bodies for the routed records; the first one's header counts the records no sink wanted. */
function bufferMessages(targets: readonly SinkTarget[], total: number) {
  const unique = new Set<SerializedRecord>();
  for (const t of targets) for (const item of t.items) unique.add(item);
  const unrouted = total - unique.size;
  const { bodies, oversized } = toMessages({ v: 1, kind: "records", at: Date.now() }, [...unique]);
  if (unrouted > 0 && bodies.length > 0) {
    const first = bodies[0] as string;
    const nl = first.indexOf("\n");
    const head = JSON.stringify({ v: 1, kind: "records", at: Date.now(), unrouted });
    bodies[0] = nl < 0 ? head : head + first.slice(nl);
  }
  return { bodies, oversized, queued: unique.size };
}

export const bufferedMode: DeliveryMode = {
  async fromTail({ records }, { config, env, stats, options }) {
    const routing = new StatsBatch();
    const targets = planDelivery(records, config, env, routing);
    const { bodies, oversized, queued } = bufferMessages(targets, records.length);
    let direct = targets;
    try {
      await sendMessages(env[config.delivery.queue as string] as Queue, bodies);
      const tooBig = new Set(oversized);
      direct = targets
        .map((t) => ({ ...t, items: t.items.filter((i) => tooBig.has(i)) }))
        .filter((t) => t.items.length > 0);
      if (direct.length === 0) return [];
      for (const t of direct) stats.add(t.name, "received", t.items.length);
    } catch (err) {
      logError(`tailfan: the buffer queue refused ${queued} record(s) (${String(err)}); delivering directly`);
      stats.merge(routing);
    }
    return deliverAndSettle(direct, firstDelivery(config, env, stats), options);
  },
};
