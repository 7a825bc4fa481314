import * as v from "valibot";
import { describeError } from "./shared";
import { defineSink, type LogRecord } from "./types";

/** Queue limits: per message, and per sendBatch call. */
export const QUEUE_MAX_MESSAGE_BYTES = 128 * 1000;
export const QUEUE_MAX_BATCH_MESSAGES = 100;
export const QUEUE_MAX_BATCH_BYTES = 256 * 1000;
/** Room for the runtime's per-message overhead in the batch limit. */
export const MESSAGE_OVERHEAD = 100;

/** `sendBatch` calls, each within the Queue limits. */
export type QueuePayload = MessageSendRequest<LogRecord>[][];

export const queueSink = defineSink({
  type: "queue",
  description:
    "Sends each record as one JSON message to a Cloudflare Queue, in sendBatch calls within the Queue limits.",
  options: v.strictObject({
    /** Name of the Queue producer binding in wrangler.toml. Required. */
    binding: v.string(),
    /** Seconds before the messages become visible to consumers (0 to 43200). Default 0. */
    delaySeconds: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(43_200)), 0),
  }),
  batch: () => ({
    maxRecords: 1000,
    maxBytes: 2 * 1024 * 1024,
    maxRecordBytes: QUEUE_MAX_MESSAGE_BYTES - MESSAGE_OVERHEAD,
  }),
  bindings: (o) => [{ option: "binding", name: o.binding, kind: "queue" }],
  create(o, ctx) {
    const queue = ctx.env[o.binding] as Queue<LogRecord>;
    return {
      encode(batch): QueuePayload {
        const chunks: QueuePayload = [];
        let chunk: MessageSendRequest<LogRecord>[] = [];
        let bytes = 0;
        for (const item of batch) {
          const size = item.bytes + MESSAGE_OVERHEAD;
          if (chunk.length > 0 && (chunk.length >= QUEUE_MAX_BATCH_MESSAGES || bytes + size > QUEUE_MAX_BATCH_BYTES)) {
            chunks.push(chunk);
            chunk = [];
            bytes = 0;
          }
          const message: MessageSendRequest<LogRecord> = { body: item.record, contentType: "json" };
          if (o.delaySeconds > 0) message.delaySeconds = o.delaySeconds;
          chunk.push(message);
          bytes += size;
        }
        if (chunk.length > 0) chunks.push(chunk);
        return chunks;
      },
      async send(chunks, signal) {
        try {
          for (const chunk of chunks) {
            // After a timeout, stop: the retry sends the whole payload again.
            if (signal.aborted) return { outcome: "retry", reason: "timed out between sendBatch calls" };
            await queue.sendBatch(chunk);
          }
          return { outcome: "ok" };
        } catch (err) {
          return { outcome: "retry", reason: `Queue sendBatch failed: ${describeError(err)}` };
        }
      },
    };
  },
});
