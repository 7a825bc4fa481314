/**
 * Direct mode (the default): tail() routes, serializes, delivers and settles
 * its own records inside waitUntil. Rules:
 * - every sink sees its own view (unredacted, or its own scrub);
 * - a batch that fails after its attempts goes to the retry queue when
 *   `DELIVERY.queue` is set, else to the dead letter, else it is counted as failed;
 * - the counters are written once, at the end of the invocation.
 */

import { deliverAndSettle, firstDelivery } from "./deliver";
import type { DeliveryMode } from "./modes";
import { planDelivery } from "./plan";

export const directMode: DeliveryMode = {
  fromTail({ records, views }, { config, env, stats, options }) {
    const targets = planDelivery(records, config, env, stats, views);
    return deliverAndSettle(targets, firstDelivery(config, env, stats), options);
  },
};
