/**
 * Size guards: a record too large for a log backend is cut, visibly, instead
 * of being refused somewhere downstream. `limitSerialized` is the hot-path
 * entry point (it costs a length comparison for an ordinary record);
 * `limitRecord` does the same for a bare record. docs/security.md (Size
 * limits) describes LIMITS; config.ts reads it, cut.ts cuts.
 */
import { serialized } from "../json";
import type { LogRecord, SerializedRecord } from "../record";
import { utf8Length } from "../text";
import type { LimitsConfig } from "./config";
import { cutRecord } from "./cut";

export { DEFAULT_LIMITS, type LimitsConfig, parseLimitsConfig } from "./config";

/** The marks a cut record carries, declared on every record type. */
export type LimitMarks = Pick<LogRecord, "limited" | "limitedFields">;

export type LimitedRecord = LogRecord & LimitMarks;

export interface LimitResult {
  record: LogRecord;
  /** Whether anything was cut (then `record` is a new object marked `limited: true`). */
  truncated: boolean;
  /** UTF-8 bytes of content removed (strings' cut tails, dropped elements and keys, deep values); markers not deducted. */
  cutBytes: number;
}

/** Whether tailfan cut this record (now or before it was queued). */
export function isLimited(record: LogRecord): boolean {
  return (record as LimitedRecord).limited === true;
}

function messageFits(record: LogRecord, config: LimitsConfig): boolean {
  const message = (record as { message?: unknown }).message;
  return typeof message !== "string" || message.length <= config.maxMessageChars;
}

/**
 * Returns the record itself when it fits every limit, else a new record
 * (the input is never changed) whose JSON is at most `maxRecordBytes`,
 * marked `limited: true` with `limitedFields`. Context fields are never cut,
 * so a record whose context alone is over the limit stays over it.
 */
export function limitRecord(record: LogRecord, config: LimitsConfig): LimitResult {
  if (messageFits(record, config)) {
    const line = JSON.stringify(record);
    if (line.length * 3 <= config.maxRecordBytes || utf8Length(line) <= config.maxRecordBytes) {
      return { record, truncated: false, cutBytes: 0 };
    }
  }
  const cut = cutRecord(record, config);
  return cut === null
    ? { record, truncated: false, cutBytes: 0 }
    : { record: cut.record, truncated: true, cutBytes: cut.cutBytes };
}

/**
 * The hot path, after serialization: the same item when it fits (decided by
 * the line's length alone for most records, by its measured size for the
 * rest), else a new item holding the cut record and its line.
 */
export function limitSerialized(item: SerializedRecord, config: LimitsConfig): SerializedRecord {
  const max = config.maxRecordBytes;
  const length = item.line.length;
  if (messageFits(item.record, config) && (length * 3 <= max || (length <= max && item.bytes <= max))) return item;
  const cut = cutRecord(item.record, config);
  return cut === null ? item : serialized(cut.record, cut.line, cut.bytes);
}
