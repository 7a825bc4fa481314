import type { BatchLimits } from "../../sinks/index";
import type { SerializedRecord } from "../record";

export interface Batches {
  batches: SerializedRecord[][];
  /** Records larger than the sink can take at all. */
  oversized: SerializedRecord[];
}

/**
 * Cuts records into batches of at most `maxRecords` and `maxBytes` (record
 * JSON plus one separator each), keeping their order. A record over
 * `maxRecordBytes` is set aside; one over `maxBytes` but within the record
 * limit travels alone.
 */
export function splitBatches(items: readonly SerializedRecord[], limits: BatchLimits): Batches {
  const batches: SerializedRecord[][] = [];
  const oversized: SerializedRecord[] = [];
  const maxRecordBytes = limits.maxRecordBytes ?? Number.POSITIVE_INFINITY;
  const { maxBytes, maxRecords } = limits;
  let current: SerializedRecord[] = [];
  // UTF-8 bytes lie between a line's length and three times it; the exact
  // size is measured only when the bounds cannot decide.
  let lower = 0;
  let upper = 0;
  let exact = -1;
  for (const item of items) {
    const len = item.line.length;
    if (len > maxRecordBytes || (len * 3 > maxRecordBytes && item.bytes > maxRecordBytes)) {
      oversized.push(item);
      continue;
    }
    let fits: boolean;
    if (current.length === 0) fits = true;
    else if (current.length >= maxRecords || lower + len + 1 > maxBytes) fits = false;
    else if (exact < 0 && upper + len * 3 + 1 <= maxBytes) fits = true;
    else {
      if (exact < 0) exact = current.reduce((n, it) => n + it.bytes + 1, 0);
      fits = exact + item.bytes + 1 <= maxBytes;
    }
    if (!fits) {
      batches.push(current);
      current = [];
      lower = upper = 0;
      exact = -1;
    }
    current.push(item);
    lower += len + 1;
    upper += len * 3 + 1;
    if (exact >= 0) exact += item.bytes + 1;
  }
  if (current.length > 0) batches.push(current);
  return { batches, oversized };
}
