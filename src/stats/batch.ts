/** The accumulator: counter deltas and a sample of recent records, collected for one write. */
import { LEVELS, type Level, type LogRecord, levelRank } from "../record";
import type { Counter, RecentRecord, SinkDelta } from "./types";

/**
 * Latest records one counters write carries at most: they make one page of
 * the stats object's ring (one row), so the dashboard gets a sample, not
 * every record.
 */
export const RECENT_PER_FLUSH = 5;

const WARN_RANK = levelRank("warn");

function loud(record: LogRecord): boolean {
  return (LEVELS as readonly string[]).includes(record.level) && levelRank(record.level as Level) >= WARN_RANK;
}

interface Seen {
  record: LogRecord;
  line: string | null;
  sinks: string[];
  order: number;
}

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

/** Collects deltas during one or more invocations, for a single write. */
export class StatsBatch {
  private readonly deltas = new Map<string, SinkDelta>();
  // The newest warn/error records and the newest others, each at most RECENT_PER_FLUSH.
  private loud: Seen[] = [];
  private quiet: Seen[] = [];
  private order = 0;
  private keep = 0;

  /**
   * Notes a routed record for the latest-records view. A write carries at
   * most RECENT_PER_FLUSH of them (warn and error first, then the newest),
   * and nothing is built until the write.
   */
  see(record: LogRecord, line: string | null, sinks: string[], keep: number): void {
    if (keep <= 0) return;
    this.keep = keep;
    const list = loud(record) ? this.loud : this.quiet;
    list.push({ record, line, sinks, order: this.order++ });
    if (list.length > RECENT_PER_FLUSH) list.shift();
  }

  /** The sample noted by `see`, oldest first, as the stats object stores them. */
  recent(): RecentRecord[] {
    const n = Math.min(this.keep, RECENT_PER_FLUSH);
    const loudest = this.loud.slice(-n);
    const rest = n - loudest.length;
    const picked = [...loudest, ...(rest > 0 ? this.quiet.slice(-rest) : [])];
    return picked.sort((a, b) => a.order - b.order).map((s) => toRecent(s.record, s.line, s.sinks));
  }

  /** How many records the write keeps at most (0: none noted). */
  get recentKeep(): number {
    return this.loud.length + this.quiet.length === 0 ? 0 : this.keep;
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
    const theirs = [...other.loud, ...other.quiet].sort((a, b) => a.order - b.order);
    for (const s of theirs) this.see(s.record, s.line, s.sinks, other.keep);
    for (const d of other.list()) {
      for (const [counter, n] of Object.entries(d.counts)) this.add(d.sink, counter as Counter, n);
      if (d.lastError) this.of(d.sink).lastError = d.lastError;
    }
  }

  get size(): number {
    return this.deltas.size;
  }

  /** Records routed to any sink in these deltas: what is missing from the counts if they are lost. */
  get received(): number {
    let n = 0;
    for (const d of this.deltas.values()) n += d.counts.received ?? 0;
    return n;
  }

  list(): SinkDelta[] {
    return [...this.deltas.values()];
  }
}
