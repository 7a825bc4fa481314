/**
 * Aggregation for direct mode: a sink that sums records (`otlp_metrics`,
 * whose sinks have an `aggregate`) is sent one request per window per
 * isolate, not one per invocation. Each tail() folds its records for such a
 * sink into the isolate's open aggregate, which keeps the sums and not the
 * records, and counts them `pending`.
 *
 * No record depends on another request's context (the rule of coalesce.ts
 * and src/stats/flush.ts): the invocation that opens a window waits for its
 * end on its own timer, inside its own waitUntil, then encodes the window
 * and sends it with its own sink, attempt by attempt as every batch is sent
 * (src/delivery/deliver.ts: the per-attempt timeout, backoff with jitter,
 * Retry-After, DELIVERY's attempts and budget), and settles every record folded in:
 * `sent` on a 2xx, else `failed` with the reason. The others fold theirs in
 * and return at once, awaiting nothing another request made.
 *
 * Bounds: the opener waits at most MAX_WAIT_MS after its start and sends
 * until SEND_DEADLINE_MS after it at the latest, so the send, its retries
 * and the counters write after them end inside the waitUntil that the
 * runtime cuts about 30 s after the invocation.
 *
 * A window that could not be sent is not queued for a retry or
 * dead-lettered: its records are not kept, only their sums.
 *
 * Should an opener's context end before its send (the bounds are there so
 * it does not), its window would stay open: the first invocation more than
 * STALE_MS after it opened takes it over, as its opener with a timer of its
 * own. The old opener's own records are then not settled by anyone: its
 * counters, which would have counted them, are written after its send and so
 * were never written either.
 */
import type { Aggregate, Aggregation, Sink } from "../../sinks/index";
import {
  attempt,
  type DeliveryOptions,
  Limiter,
  minAttemptMs,
  type SinkReport,
  type SinkTarget,
} from "../delivery/deliver";
import type { SettleContext } from "../delivery/settle";
import { logError } from "../log";
import type { SerializedRecord } from "../record";

/** The longest an opener waits for its window's end, from its start, ms. */
export const MAX_WAIT_MS = 15_000;
/** When the opener's send must be done, from its start, ms: its counters write (3 s at most) comes after it. */
export const SEND_DEADLINE_MS = 25_000;
/** A window still open this long after it opened has lost its opener, ms. */
export const STALE_MS = 30_000;

interface Share {
  records: number;
  bytes: number;
}

interface Window {
  readonly aggregate: Aggregate<unknown>;
  openedAt: number;
  /** The invocation that sends it. */
  owner: symbol;
  /** The opener's own records, and the others', all counted `pending` in their own counters. */
  own: Share;
  others: Share;
}

/** The open window per sink (and its options), shared by every request of the isolate. */
const windows = new Map<string, Window>();

/** Open windows of this isolate (for tests: none may be left once every tail() resolved). */
export function openWindowCount(): number {
  return windows.size;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Folds records in and counts them in `share`; what an aggregate that throws did not take is returned. */
function fold(window: Window, share: Share, items: readonly SerializedRecord[]): { refused: number; reason: string } {
  let i = 0;
  try {
    for (; i < items.length; i++) {
      const item = items[i] as SerializedRecord;
      window.aggregate.add(item.record);
      share.bytes += item.bytes;
      share.records++;
    }
    return { refused: 0, reason: "" };
  } catch (err) {
    return {
      refused: items.length - i,
      reason: `could not sum a record: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}

/** Counts what fold refused as failed, with the reason. */
function refuse(name: string, sc: SettleContext, out: SinkReport, refused: { refused: number; reason: string }) {
  if (refused.refused === 0) return;
  sc.stats.add(name, "pending", -refused.refused);
  sc.stats.add(name, "failed", refused.refused);
  sc.stats.error(name, refused.reason);
  out.failed += refused.refused;
  out.errors.push(refused.reason);
  logError(`tailfan: sink "${name}" lost ${refused.refused} record(s): ${refused.reason}`);
}

function report(sink: string, records: number): SinkReport {
  return { sink, records, delivered: 0, failed: 0, oversized: 0, requests: 0, bytes: 0, errors: [], failures: [] };
}

/**
 * Folds one invocation's records for an aggregating sink into the
 * isolate's window; the invocation that opens it waits for its end and
 * sends it. Resolves to this invocation's report: its records `pending`,
 * or for the opener what the window's send made of them; never rejects.
 */
export async function aggregateAndSettle(
  target: SinkTarget,
  aggregation: Aggregation<unknown>,
  sc: SettleContext,
  options: DeliveryOptions,
  startedAt = Date.now(),
): Promise<SinkReport> {
  const { name, sink, items } = target;
  const key = `${name}\u0000${aggregation.key}`;
  const now = Date.now();
  sc.stats.add(name, "pending", items.length);
  let window = windows.get(key);
  if (window !== undefined && now - window.openedAt <= STALE_MS) {
    const joined = { ...report(name, items.length), pending: items.length };
    const refused = fold(window, window.others, items);
    joined.pending -= refused.refused;
    refuse(name, sc, joined, refused);
    return joined;
  }
  const me = Symbol(name);
  if (window === undefined) {
    const empty = () => ({ records: 0, bytes: 0 });
    window = { aggregate: aggregation.open(), openedAt: now, owner: me, own: empty(), others: empty() };
    windows.set(key, window);
  } else {
    window.owner = me;
    window.openedAt = now;
    window.own = { records: 0, bytes: 0 };
  }
  const refused = fold(window, window.own, items);
  await sleep(Math.max(0, Math.min(aggregation.windowMs, startedAt + MAX_WAIT_MS - Date.now())));
  if (window.owner !== me) {
    const left = { ...report(name, items.length), pending: items.length - refused.refused };
    refuse(name, sc, left, refused);
    return left;
  }
  if (windows.get(key) === window) windows.delete(key);
  const sent = await send(name, sink, window, sc, options, startedAt);
  // This invocation's own part of the window's outcome; the counters have the whole window's.
  const own = window.own.records;
  const out: SinkReport = { ...sent, records: items.length, delivered: sent.delivered > 0 ? own : 0 };
  out.failed = sent.failed > 0 ? own : 0;
  out.bytes = sent.delivered > 0 ? window.own.bytes : 0;
  refuse(name, sc, out, refused);
  return out;
}

/** Sends a closed window and settles its records; never throws. */
async function send(
  name: string,
  sink: Sink<unknown>,
  window: Window,
  sc: SettleContext,
  options: DeliveryOptions,
  startedAt: number,
): Promise<SinkReport> {
  const records = window.own.records + window.others.records;
  const out = report(name, records);
  if (records === 0) return out;
  const { stats } = sc;
  const settle = (reason: string | null, attempts: number, status?: number) => {
    stats.add(name, "pending", -records);
    stats.add(name, "requests", out.requests);
    if (reason === null) {
      out.delivered = records;
      out.bytes = window.own.bytes + window.others.bytes;
      stats.add(name, "sent", records);
      stats.add(name, "bytes", out.bytes);
      return out;
    }
    out.failed = records;
    out.errors.push(reason);
    stats.add(name, "failed", records);
    stats.error(name, reason, status);
    logError(
      `tailfan: sink "${name}" lost ${records} summed record(s) after ${attempts} attempt(s): ${reason} (a window of sums is not queued for a retry)`,
    );
    return out;
  };
  let payload: unknown;
  try {
    payload = window.aggregate.encode();
  } catch (err) {
    return settle(`encode failed: ${err instanceof Error ? err.message : String(err)}`, 0);
  }
  const deadline = Math.min(Date.now() + options.budgetMs, startedAt + SEND_DEADLINE_MS);
  const limiter = new Limiter(options.maxConnections);
  for (let n = 1; ; n++) {
    const timeoutMs = Math.min(options.timeoutMs, deadline - Date.now());
    if (timeoutMs < minAttemptMs(options.timeoutMs)) {
      return settle("not sent: the delivery budget ran out", n - 1);
    }
    out.requests++;
    const result = await limiter.run(() => attempt(sink, payload, timeoutMs), name);
    if (result.outcome === "ok") return settle(null, n);
    // A metrics request is one whole: a partial answer is treated as a retryable one.
    const status = result.status;
    if (result.outcome === "fail") return settle(`failed: ${result.reason}`, n, status);
    const backoff = Math.random() * options.backoffMs * 2 ** (n - 1);
    const wait = Math.max(backoff, result.retryAfterMs ?? 0);
    if (n >= options.maxAttempts || Date.now() + wait >= deadline) {
      return settle(`gave up after ${n} attempt(s): ${result.reason}`, n, status);
    }
    await sleep(wait);
  }
}
