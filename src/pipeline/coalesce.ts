/**
 * Coalescing: the tail() calls of one isolate add their serialized records
 * to one open chunk, which is sent when it is full or when its window
 * (`DELIVERY.bufferMs`) ends, so one send carries many invocations. In
 * buffered mode a chunk is one work message (gzipped, see
 * src/delivery/durable.ts); in direct mode it is one delivery to the sinks.
 *
 * No record depends on another request's context. Each tail() keeps its own
 * waitUntil alive until every message holding its records has settled, and
 * watches them only with timers of its own:
 * - when its message's window ends and the message is still open, it sends
 *   the message itself, in its own context;
 * - while another request's send of that message is in flight, it does not
 *   await that request's promise: it looks again after POLL_MS, on its own
 *   timer, until the send has settled;
 * - if that send failed, or has not settled after `stallMs` (the sending
 *   request's context may be gone), it sends its own records again itself.
 *
 * Why not await the other request's promise: workerd ties every promise to
 * the request (IoContext) that created it. With the compatibility flag
 * `handle_cross_request_promise_resolution` (on by default since
 * 2024-10-14) a continuation is run in the context it belongs to if that is
 * still alive and dropped with a warning if not; and I/O started by a
 * request is cancelled when that request's context ends, so its promise may
 * never settle at all. A waiter awaiting it could hang until its own
 * waitUntil is cut off. Plain fields on a shared object (the state below) are
 * safe to read from any request.
 */
import { MESSAGE_BYTES } from "../delivery/durable";
import type { SerializedRecord } from "../record";
import { addSampled, type SampledCounts, sampledField } from "./plan";

/** How often a waiting tail() looks at a message another request is sending. */
export const POLL_MS = 25;
/** Room left in a message body for its header line. */
const HEADER_ROOM = 256;
/** The largest record a work message carries; a larger one is delivered directly. */
export const RECORD_BYTES = MESSAGE_BYTES - HEADER_ROOM;
/**
 * The most record bytes (a line and its newline each) one chunk carries by
 * default: a work message gzips 512 KiB of record NDJSON to well under the
 * Queue's 128 KB (one that does not is cut in two when it is sent).
 */
export const CHUNK_BYTES = 512 * 1024;

export type ChunkState = "open" | "sending" | "sent" | "failed";

/** One open (or sent) chunk of the isolate: records of many invocations. */
export interface Chunk<T = SerializedRecord> {
  readonly items: T[];
  bytes: number;
  /** Records of its invocations that no sink wanted (every sink's `droppedFilter`). */
  unrouted: number;
  /** Of those, per sink, the ones only sampling dropped (`droppedSample`). */
  sampled?: SampledCounts;
  readonly openedAt: number;
  state: ChunkState;
  sendingSince: number;
}

/** Sends one chunk, in the calling request's context; rejects when it could not be sent. */
export type SendChunk<T = SerializedRecord> = (chunk: Chunk<T>) => Promise<void>;

export interface CoalesceOptions<T = SerializedRecord> {
  /** The buffer this tail() joins: one per work queue binding, or per config in direct mode. */
  key: string;
  /** How long a message stays open for more invocations, ms; 0 sends at once. */
  windowMs: number;
  /** How long to wait for another request's send before sending one's own records again, ms. */
  stallMs: number;
  /** Record bytes a chunk carries at most; CHUNK_BYTES when not given. */
  chunkBytes?: number;
  /** An item's bytes; a serialized record's line and newline when not given. */
  size?: (item: T) => number;
  send: SendChunk<T>;
}

/** The open chunk per key, shared by every request of the isolate. */
// biome-ignore lint/suspicious/noExplicitAny: each key holds chunks of one item type, the one its callers pass.
const openChunks = new Map<string, Chunk<any>>();

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function newChunk<T>(): Chunk<T> {
  return { items: [], bytes: 0, unrouted: 0, openedAt: Date.now(), state: "open", sendingSince: 0 };
}

/** The open chunks of the isolate's buffers (for tests: nothing may be left open once every tail() resolved). */
export function openChunkCount(): number {
  return openChunks.size;
}

/** Sends a still open chunk in the caller's context; its outcome is written to the chunk, never thrown. */
async function sendChunk<T>(key: string, chunk: Chunk<T>, send: SendChunk<T>): Promise<void> {
  if (chunk.state !== "open") return;
  chunk.state = "sending";
  chunk.sendingSince = Date.now();
  if (openChunks.get(key) === chunk) openChunks.delete(key);
  try {
    await send(chunk);
    chunk.state = "sent";
  } catch {
    chunk.state = "failed";
  }
}

/** Waits, on this request's own timers, until the chunk has settled; true when its send succeeded. */
async function settled<T>(key: string, chunk: Chunk<T>, o: CoalesceOptions<T>): Promise<boolean> {
  for (;;) {
    if (chunk.state === "open") {
      const wait = chunk.openedAt + o.windowMs - Date.now();
      if (wait > 0) await sleep(wait);
      else await sendChunk(key, chunk, o.send);
    } else if (chunk.state === "sending") {
      if (Date.now() - chunk.sendingSince > o.stallMs) return false;
      await sleep(POLL_MS);
    } else return chunk.state === "sent";
  }
}

/**
 * Adds one invocation's records (and its count of records no sink wanted)
 * to the isolate's open message, sending messages that fill up, and resolves
 * once every message holding them has settled. Resolves to what of it sat
 * in a message that failed or stalled: the caller sends that again itself.
 * Never rejects.
 */
export async function coalesce<T = SerializedRecord>(
  items: readonly T[],
  unrouted: number,
  o: CoalesceOptions<T>,
  sampled?: SampledCounts,
): Promise<{ items: T[]; unrouted: number; sampled?: SampledCounts }> {
  if (items.length === 0 && unrouted === 0) return { items: [], unrouted: 0 };
  const mine = new Map<Chunk<T>, T[]>();
  const full: Promise<void>[] = [];
  const sizeOf = o.size ?? ((item: T) => (item as SerializedRecord).bytes + 1);
  const join = (): Chunk<T> => {
    let chunk: Chunk<T> | undefined = openChunks.get(o.key);
    if (chunk === undefined) {
      chunk = newChunk<T>();
      openChunks.set(o.key, chunk);
    }
    if (!mine.has(chunk)) mine.set(chunk, []);
    return chunk;
  };
  const most = o.chunkBytes ?? CHUNK_BYTES;
  for (const item of items) {
    let chunk = join();
    const bytes = sizeOf(item);
    if (chunk.items.length > 0 && chunk.bytes + bytes > most) {
      full.push(sendChunk(o.key, chunk, o.send));
      chunk = join();
    }
    chunk.items.push(item);
    chunk.bytes += bytes;
    mine.get(chunk)?.push(item);
  }
  // The count travels with the last message this invocation joined (a header-only message when it had no records).
  const counted = join();
  counted.unrouted += unrouted;
  if (sampled) counted.sampled = addSampled(counted.sampled, sampled);
  if (o.windowMs === 0) {
    const last = openChunks.get(o.key);
    if (last !== undefined) full.push(sendChunk(o.key, last, o.send));
  }
  await Promise.all(full);
  const again: { items: T[]; unrouted: number; sampled?: SampledCounts } = { items: [], unrouted: 0 };
  for (const [chunk, own] of mine) {
    if (await settled(o.key, chunk, o)) continue;
    for (const item of own) again.items.push(item);
    if (chunk === counted) {
      again.unrouted = unrouted;
      if (sampled) again.sampled = sampled;
    }
  }
  return again;
}

/** The message body of a chunk: the records header, then its record lines. */
export function chunkBody(chunk: Chunk, extra: { counted?: true } = {}): string {
  const header = {
    v: 1,
    kind: "records",
    at: Date.now(),
    ...(chunk.unrouted > 0 ? { unrouted: chunk.unrouted } : {}),
    ...sampledField(chunk.sampled),
  };
  let body = JSON.stringify({ ...header, ...extra });
  for (const item of chunk.items) body += `\n${item.line}`;
  return body;
}
