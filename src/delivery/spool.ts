/**
 * The spool: buffered records the work queue refused (rate limit, outage),
 * kept in the dead-letter bucket under `DELIVERY.spoolPrefix` until queue()
 * or the cron (scheduled()) puts them back on the queue. One object holds
 * the message bodies of one refused send, as a JSON array of strings; the
 * bodies are marked `counted`, since the records were counted `received` and
 * `pending` when they were spooled.
 */

import type { DeliveryConfig } from "../config";
import { logError } from "../log";
import { fromMessage, packBodies, sendMessages } from "./durable";

/** Objects a drain takes at most: each is one refused send (at most one sendBatch worth of records). */
export const SPOOL_DRAIN_OBJECTS = 20;

/** The spool bucket, or null when DELIVERY names no dead-letter bucket. */
export function spoolBucket(delivery: DeliveryConfig, env: Record<string, unknown>): R2Bucket | null {
  return delivery.deadLetter === null ? null : ((env[delivery.deadLetter] as R2Bucket | undefined) ?? null);
}

/** Marks each body's header `counted`, so the consumer takes its records off `pending`. */
function markCounted(body: string): string {
  const nl = body.indexOf("\n");
  const head = { ...fromMessage(nl < 0 ? body : body.slice(0, nl)).header, counted: true };
  return JSON.stringify(head) + (nl < 0 ? "" : body.slice(nl));
}

/** Writes refused message bodies to the spool; rejects when the bucket refuses. */
export async function writeSpool(bucket: R2Bucket, prefix: string, bodies: readonly string[]): Promise<string> {
  const now = Date.now();
  // Keys sort by time, so a drain takes the oldest first.
  const key = `${prefix.replace(/\/+$/, "")}/${String(now).padStart(15, "0")}_${crypto.randomUUID()}.json`;
  await bucket.put(key, JSON.stringify(bodies.map(markCounted)), {
    httpMetadata: { contentType: "application/json" },
  });
  return key;
}

/**
 * Puts up to SPOOL_DRAIN_OBJECTS spooled sends back on the queue, oldest
 * first, deleting each object once the queue took it. Stops at the first
 * refusal (the queue is still refusing: the rest waits for the next drain).
 * Returns how many objects were drained; never throws.
 */
export async function drainSpool(delivery: DeliveryConfig, env: Record<string, unknown>): Promise<number> {
  const bucket = spoolBucket(delivery, env);
  if (bucket === null || delivery.queue === null) return 0;
  const queue = env[delivery.queue] as Queue;
  let drained = 0;
  try {
    const prefix = `${delivery.spoolPrefix.replace(/\/+$/, "")}/`;
    const { objects } = await bucket.list({ prefix, limit: SPOOL_DRAIN_OBJECTS });
    for (const o of objects) {
      const obj = await bucket.get(o.key);
      if (obj === null) continue; // another drain took it
      const bodies = JSON.parse(await obj.text()) as string[];
      await sendMessages(queue, await packBodies(bodies));
      await bucket.delete(o.key);
      drained++;
    }
  } catch (err) {
    logError(`tailfan: draining the spool stopped after ${drained} object(s): ${String(err)}`);
  }
  return drained;
}
