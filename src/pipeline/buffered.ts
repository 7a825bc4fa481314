/**
 * Buffered mode (`DELIVERY.mode = "buffered"` with a `queue`): tail() only
 * routes and serializes; the records go to the work queue and queue()
 * delivers them in large batches (src/pipeline/consume.ts). Rules:
 * - the tail() calls of an isolate share work messages (src/pipeline/coalesce.ts):
 *   one message carries many invocations (up to 512 KiB of records, gzipped),
 *   sent when full or after `bufferMs`;
 * - no counters write per tail(): the records enter the counters when queue()
 *   first routes them; each message carries how many records of its
 *   invocations no sink wanted, so `droppedFilter` stays complete;
 * - messages carry the globally scrubbed, redacted records, so the config
 *   refuses `unredacted` and a sink's own `scrub` in this mode, and a buffered
 *   queue is required (the config's cross-check);
 * - a record too large for a queue message is delivered directly;
 * - overflow never multiplies load: a refused send is tried again after a
 *   short pause, then spooled to the dead-letter bucket (counted `received`
 *   and `pending` there) for queue() or the cron to put back on the queue;
 *   only with neither success nor a spool are the records delivered directly.
 */
import type { ResolvedConfig } from "../config";
import { packBodies, sendMessages, toMessages } from "../delivery/durable";
import { spoolBucket, writeSpool } from "../delivery/spool";
import { logError } from "../log";
import type { SerializedRecord } from "../record";
import { StatsBatch } from "../stats";
import { chunkBody, coalesce, RECORD_BYTES } from "./coalesce";
import { deliverAndSettle, firstDelivery } from "./deliver";
import type { DeliveryMode } from "./modes";
import { countUnrouted, planDelivery, type SampledCounts, sampledField } from "./plan";

/** Sends to the work queue per refused send: the first try and this many more. */
export const QUEUE_SEND_ATTEMPTS = 3;
/** Pause before the second try, ms; doubles, full jitter. */
export const QUEUE_RETRY_PAUSE_MS = 100;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Counts spooled records as the consumer would have, and as `pending` while they wait in the spool. */
function countSpooled(
  items: readonly SerializedRecord[],
  unrouted: number,
  sampled: SampledCounts | undefined,
  config: ResolvedConfig,
  env: Record<string, unknown>,
  stats: StatsBatch,
): void {
  for (const t of planDelivery(items, config, env, stats, undefined, false))
    stats.add(t.name, "pending", t.items.length);
  countUnrouted(stats, config, unrouted, sampled);
}

/**
 * Puts message bodies on the work queue (gzipped where that pays), trying
 * again after a short pause, then into the spool; rejects only when neither
 * took them.
 */
async function enqueue(
  bodies: readonly string[],
  config: ResolvedConfig,
  env: Record<string, unknown>,
  onSpooled: () => void,
): Promise<void> {
  const queue = env[config.delivery.queue as string] as Queue;
  const packed = await packBodies(bodies);
  let last: unknown;
  for (let attempt = 1; attempt <= QUEUE_SEND_ATTEMPTS; attempt++) {
    try {
      await sendMessages(queue, packed);
      return;
    } catch (err) {
      last = err;
      if (attempt < QUEUE_SEND_ATTEMPTS) await sleep(Math.random() * QUEUE_RETRY_PAUSE_MS * 2 ** (attempt - 1));
    }
  }
  const bucket = spoolBucket(config.delivery, env);
  if (bucket === null) throw new Error(`${String(last)}; no spool (DELIVERY.deadLetter is not set)`);
  try {
    await writeSpool(bucket, config.delivery.spoolPrefix, bodies);
  } catch (err) {
    throw new Error(`${String(last)}; the spool refused too: ${String(err)}`);
  }
  onSpooled();
}

/** Bodies for one invocation's own records, sent again by itself; the first header carries its unrouted count. */
function ownBodies(items: readonly SerializedRecord[], unrouted: number, sampled: SampledCounts | undefined): string[] {
  const { bodies } = toMessages({ v: 1, kind: "records", at: Date.now() }, items);
  const head = JSON.stringify({ v: 1, kind: "records", at: Date.now(), unrouted, ...sampledField(sampled) });
  if (bodies.length === 0) return unrouted > 0 ? [head] : [];
  const first = bodies[0] as string;
  if (unrouted > 0) bodies[0] = head + first.slice(first.indexOf("\n"));
  return bodies;
}

export const bufferedMode: DeliveryMode = {
  async fromTail({ records }, { config, env, stats, options }) {
    const started = Date.now();
    // Unshaped: the queue carries one line per record for every sink; queue() shapes them per sink.
    const sampledCounts: SampledCounts = {};
    const targets = planDelivery(records, config, env, new StatsBatch(), undefined, false, sampledCounts);
    const unique = new Set<SerializedRecord>();
    for (const t of targets) for (const item of t.items) unique.add(item);
    const fits: SerializedRecord[] = [];
    const direct: SerializedRecord[] = [];
    for (const item of unique) (item.bytes + 1 > RECORD_BYTES ? direct : fits).push(item);

    const d = config.delivery;
    const unroutedCount = records.length - unique.size;
    // Records no sink took travel as counts; the ones sampling alone dropped are told apart per sink.
    const sampled = Object.keys(sampledCounts).length > 0 ? sampledCounts : undefined;
    const left = await coalesce(
      fits,
      unroutedCount,
      {
        key: d.queue as string,
        windowMs: d.bufferMs,
        stallMs: d.budgetMs / 2,
        // Runs in the context of the request whose timer (or a full message) started the send.
        send: (chunk) =>
          enqueue([chunkBody(chunk)], config, env, () =>
            countSpooled(chunk.items, chunk.unrouted, chunk.sampled, config, env, stats),
          ),
      },
      sampled,
    );
    let unrouted = 0;
    let unroutedSampled: SampledCounts | undefined;
    if (left.items.length > 0 || left.unrouted > 0) {
      // The shared message failed or stalled: this invocation sends its own records again itself.
      try {
        await enqueue(ownBodies(left.items, left.unrouted, left.sampled), config, env, () =>
          countSpooled(left.items, left.unrouted, left.sampled, config, env, stats),
        );
      } catch (err) {
        logError(
          `tailfan: the buffer queue refused ${left.items.length} record(s) (${String(err)}); delivering them directly`,
        );
        for (const item of left.items) direct.push(item);
        unrouted = left.unrouted;
        unroutedSampled = left.sampled;
      }
    }
    if (direct.length === 0 && unrouted === 0) return [];
    // Counted as queue() would have: per sink, what it received and what it did not.
    const plan = planDelivery(direct, config, env, stats);
    countUnrouted(stats, config, unrouted, unroutedSampled);
    const budgetMs = Math.max(1_000, options.budgetMs - (Date.now() - started));
    return deliverAndSettle(plan, firstDelivery(config, env, stats), { ...options, budgetMs });
  },
};
