/**
 * The durable path: work messages on a Queue (buffered records and retries),
 * and the dead-letter bucket for what runs out of attempts.
 *
 * A message body is one JSON header line, then the records as NDJSON, the
 * same lines the sinks send, so nothing is serialized again. A body larger
 * than PACK_FROM_BYTES travels gzipped (a `bytes` message): the Queue bills
 * per 64 KB, and record NDJSON shrinks about tenfold.
 */
import {
  MESSAGE_OVERHEAD,
  QUEUE_MAX_BATCH_BYTES,
  QUEUE_MAX_BATCH_MESSAGES,
  QUEUE_MAX_MESSAGE_BYTES,
} from "../../sinks/queue";
import { datedKey, putNdjson } from "../../sinks/r2";
import { gzip } from "../../sinks/shared";
import { serialized } from "../json";
import type { SerializedRecord } from "../record";
import { splitBatches } from "./batch";

export type WorkHeader =
  | {
      v: 1;
      kind: "records";
      at: number;
      /** Records of the invocations that no sink wanted, for every sink's `droppedFilter`. */
      unrouted?: number;
      /** Of those, per sink, the records only sampling dropped (its `droppedSample`). */
      sampled?: Record<string, number>;
      /** Already counted (`received`, and `pending` while spooled): the consumer takes them off `pending` instead. */
      counted?: true;
    }
  | {
      v: 1;
      kind: "retry";
      /** The one sink these records are for. */
      sink: string;
      /** Deliveries from the queue so far (1 for the first retry). */
      attempt: number;
      /** Send attempts so far, all deliveries together. */
      tries: number;
      status?: number;
      reason: string;
      /** When the records first failed, epoch ms. */
      since: number;
    };

export interface WorkMessage {
  header: WorkHeader;
  items: SerializedRecord[];
}

/** A message body's room: the Queue's message limit less the runtime's per-message overhead. */
export const MESSAGE_BYTES = QUEUE_MAX_MESSAGE_BYTES - MESSAGE_OVERHEAD;

/**
 * Cuts records into message bodies within the Queue's message limit (the
 * header line included). A record too large for any message is returned in
 * `oversized`.
 */
export function toMessages(
  header: WorkHeader,
  items: readonly SerializedRecord[],
): { bodies: string[]; oversized: SerializedRecord[] } {
  const head = JSON.stringify(header);
  const room = MESSAGE_BYTES - head.length * 3 - 1;
  const { batches, oversized } = splitBatches(items, { maxRecords: 10_000, maxBytes: room, maxRecordBytes: room });
  const bodies = batches.map((batch) => {
    let body = head;
    for (const item of batch) body += `\n${item.line}`;
    return body;
  });
  return { bodies, oversized };
}

/** Reads a message body back; throws with a reason when it is not one of ours. */
export function fromMessage(body: unknown): WorkMessage {
  if (typeof body !== "string") throw new Error(`expected a text message, got ${typeof body}`);
  const lines = body.split("\n");
  const header = JSON.parse(lines[0] ?? "") as WorkHeader;
  if (header?.v !== 1 || (header.kind !== "records" && header.kind !== "retry")) {
    throw new Error("not a tailfan work message");
  }
  const items: SerializedRecord[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === "") continue;
    items.push(serialized(JSON.parse(line), line));
  }
  return { header, items };
}

/** A body at least this large is gzipped before it is sent: below it, gzip's set-up costs more than it saves. */
export const PACK_FROM_BYTES = 8 * 1024;

/** A message body as it is sent: text, or gzipped text. */
export type PackedBody = string | Uint8Array;

async function gunzipText(bytes: ArrayBuffer | ArrayBufferView): Promise<string> {
  const view =
    bytes instanceof ArrayBuffer
      ? new Uint8Array(bytes)
      : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stream = new Blob([view]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).text();
}

/** Splits a body in two at a record line; the header's counts (`unrouted`, `sampled`) stay with the first half only. */
function halves(body: string): [string, string] | null {
  const lines = body.split("\n");
  if (lines.length < 3) return null;
  const head = lines[0] as string;
  const mid = 1 + Math.floor((lines.length - 1) / 2);
  const { unrouted: _u, sampled: _s, ...rest } = JSON.parse(head) as { unrouted?: number; sampled?: unknown };
  return [lines.slice(0, mid).join("\n"), [JSON.stringify(rest), ...lines.slice(mid)].join("\n")];
}

/**
 * Bodies as they go on the queue: small ones as text, larger ones gzipped,
 * each within the Queue's message limit (a body that does not compress
 * enough is cut in halves at record lines). A single record that cannot fit
 * even gzipped is an error: callers cut records to MESSAGE_BYTES before.
 */
export async function packBodies(bodies: readonly string[]): Promise<PackedBody[]> {
  const out: PackedBody[] = [];
  const pack = async (body: string): Promise<void> => {
    if (body.length < PACK_FROM_BYTES / 3) {
      out.push(body);
      return;
    }
    const bytes = await gzip(body);
    if (bytes.byteLength <= MESSAGE_BYTES) {
      out.push(bytes);
      return;
    }
    const two = halves(body);
    if (two === null) throw new Error(`a work message of ${bytes.byteLength} gzipped bytes exceeds the Queue's limit`);
    await pack(two[0]);
    await pack(two[1]);
  };
  for (const body of bodies) await pack(body);
  return out;
}

/** A received message body as text: gzipped bodies are unpacked, text passes through. */
export async function unpackBody(body: unknown): Promise<unknown> {
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return gunzipText(body);
  return body;
}

/** Sends message bodies with sendBatch, within its message-count and byte limits (overhead included). */
export async function sendMessages(queue: Queue, bodies: readonly PackedBody[], delaySeconds = 0): Promise<void> {
  let chunk: MessageSendRequest[] = [];
  let bytes = 0;
  const flush = async () => {
    if (chunk.length > 0) await queue.sendBatch(chunk);
    chunk = [];
    bytes = 0;
  };
  for (const body of bodies) {
    const size =
      MESSAGE_OVERHEAD +
      (typeof body !== "string"
        ? body.byteLength
        : body.length * 3 > MESSAGE_BYTES
          ? new TextEncoder().encode(body).length
          : body.length * 3);
    if (chunk.length >= QUEUE_MAX_BATCH_MESSAGES || bytes + size > QUEUE_MAX_BATCH_BYTES) await flush();
    const message: MessageSendRequest =
      typeof body === "string" ? { body, contentType: "text" } : { body, contentType: "bytes" };
    if (delaySeconds > 0) message.delaySeconds = delaySeconds;
    chunk.push(message);
    bytes += size;
  }
  await flush();
}

/** The longest delay a Queue message can be given: 12 hours. */
export const MAX_DELAY_SECONDS = 43_200;

/** Delay before retry number `attempt` (1-based): the base doubling, at most 12 hours. */
export function retryDelay(baseSeconds: number, attempt: number): number {
  return Math.min(MAX_DELAY_SECONDS, Math.round(baseSeconds * 2 ** Math.max(0, attempt - 1)));
}

export interface DeadLetterInfo {
  sink: string;
  status?: number;
  reason: string;
  attempts: number;
}

/**
 * Writes records that ran out of attempts to R2 as gzip NDJSON, one line per
 * record: `{"sink","status","reason","attempts","deadLetteredAt","record"}`.
 */
export async function writeDeadLetter(
  bucket: R2Bucket,
  prefix: string,
  info: DeadLetterInfo,
  items: readonly SerializedRecord[],
  now = Date.now(),
): Promise<void> {
  if (items.length === 0) return;
  const meta = JSON.stringify({
    sink: info.sink,
    status: info.status ?? null,
    reason: info.reason,
    attempts: info.attempts,
    deadLetteredAt: now,
  }).slice(0, -1);
  let body = "";
  for (const item of items) body += `${meta},"record":${item.line}}\n`;
  const sink = info.sink.replace(/[^A-Za-z0-9_.-]/g, "_");
  const first = items[0]?.record.id ?? "none";
  const key = datedKey(`${prefix.replace(/\/+$/, "")}/${sink}`, now, `${now}_${first}.ndjson.gz`, false);
  await putNdjson(bucket, key, body, {
    sink: info.sink,
    count: String(items.length),
    attempts: String(info.attempts),
    status: String(info.status ?? ""),
    reason: info.reason.slice(0, 500),
  });
}
