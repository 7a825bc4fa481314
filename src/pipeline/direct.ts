/**
 * Direct mode (the default): tail() routes, serializes, delivers and settles
 * its own records inside waitUntil. Rules:
 * - every sink sees its own view (unredacted, or its own scrub);
 * - a batch that fails after its attempts goes to the retry queue when
 *   `DELIVERY.queue` is set, else to the dead letter, else it is counted as failed;
 * - a sink that sums records (metrics) is folded into the isolate's window
 *   instead, and sent once per window (src/pipeline/aggregate.ts);
 * - the counters are written once, at the end of the invocation.
 */

import type { SinkReport, SinkTarget } from "../delivery/deliver";
import { aggregateAndSettle } from "./aggregate";
import { deliverAndSettle, firstDelivery } from "./deliver";
import type { DeliveryMode } from "./modes";
import { planDelivery } from "./plan";

export const directMode: DeliveryMode = {
  async fromTail({ records, views }, { config, env, stats, options }) {
    const startedAt = Date.now();
    const targets = planDelivery(records, config, env, stats, views);
    const sc = firstDelivery(config, env, stats);
    const sent: SinkTarget[] = [];
    const summed: Promise<SinkReport>[] = [];
    for (const t of targets) {
      const aggregation = t.sink.aggregate;
      if (aggregation === undefined) sent.push(t);
      else summed.push(aggregateAndSettle(t, aggregation, sc, options, startedAt));
    }
    const [reports, sums] = await Promise.all([deliverAndSettle(sent, sc, options), Promise.all(summed)]);
    return [...reports, ...sums];
  },
};
