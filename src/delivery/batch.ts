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
  let current: SerializedRecord[] = [];
  let bytes = 0;
  for (const item of items) {
    if (item.bytes > maxRecordBytes) {
      oversized.push(item);
      continue;
    }
    const size = item.bytes + 1;
    if (current.length > 0 && (current.length >= limits.maxRecords || bytes + size > limits.maxBytes)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return { batches, oversized };
}
