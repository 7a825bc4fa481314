/** The accumulator: one invocation's counter deltas and recent records, collected for a single write at its end. */
import type { LogRecord } from "../record";
import type { Counter, RecentRecord, SinkDelta } from "./types";

const MESSAGE_CHARS = 300;
const RECORD_CHARS = 16_384;

function toRecent(record: LogRecord, line: string | null, sinks: string[]): RecentRecord {
  // A record no sink took was never serialized; records are plain JSON, so this cannot throw.
  const json = line ?? JSON.stringify(record);
  return {
    id: record.id,
    at: record.timestamp,
    type: record.type,
    level: record.level,
    outcome: record.outcome,
    script: record.scriptName,
    eventType: record.eventType,
    status: typeof record.status === "number" ? record.status : null,
    message: record.message.length > MESSAGE_CHARS ? `${record.message.slice(0, MESSAGE_CHARS)}…` : record.message,
    sinks,
    line: json.length <= RECORD_CHARS ? json : null,
  };
}

/** Collects deltas during one invocation, for a single write at its end. */
export class StatsBatch {
  private readonly deltas = new Map<string, SinkDelta>();
  private seen: { record: LogRecord; line: string | null; sinks: string[] }[] = [];
  private keep = 0;

  /**
   * Notes a routed record for the latest-records view; only the last `keep`
   * of an invocation are kept, and nothing is built until the write.
   */
  see(record: LogRecord, line: string | null, sinks: string[], keep: number): void {
    if (keep <= 0) return;
    this.keep = keep;
    this.seen.push({ record, line, sinks });
    if (this.seen.length >= 2 * keep) this.seen = this.seen.slice(-keep);
  }

  /** The records noted by `see`, oldest first, as the stats object stores them. */
  recent(): RecentRecord[] {
    return this.seen.slice(-this.keep).map((s) => toRecent(s.record, s.line, s.sinks));
  }

  /** How many records the write keeps at most (0: none noted). */
  get recentKeep(): number {
    return this.seen.length === 0 ? 0 : this.keep;
  }

  private of(sink: string): SinkDelta {
    let d = this.deltas.get(sink);
    if (!d) {
      d = { sink, counts: {} };
      this.deltas.set(sink, d);
    }
    return d;
  }

  add(sink: string, counter: Counter, n: number): void {
    if (n === 0) return;
    const d = this.of(sink);
    d.counts[counter] = (d.counts[counter] ?? 0) + n;
  }

  error(sink: string, message: string, status?: number, at = Date.now()): void {
    this.of(sink).lastError = status === undefined ? { at, message } : { at, message, status };
  }

  merge(other: StatsBatch): void {
    for (const s of other.seen) this.see(s.record, s.line, s.sinks, other.keep);
    for (const d of other.list()) {
      for (const [counter, n] of Object.entries(d.counts)) this.add(d.sink, counter as Counter, n);
      if (d.lastError) this.of(d.sink).lastError = d.lastError;
    }
  }

  get size(): number {
    return this.deltas.size;
  }

  list(): SinkDelta[] {
    return [...this.deltas.values()];
  }
}
