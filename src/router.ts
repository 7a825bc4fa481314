/** Routing: which sinks a record goes to, given the compiled filters of routes and sinks. */
import type { RecordPredicate } from "./filter";
import type { LogRecord } from "./record";

/** What the router needs to know of the config. */
export interface RoutingTable {
  /**
   * Sink names in config order, each with its inline filter, and that filter
   * without its sampling (absent or null when it does not sample).
   */
  sinks: readonly { name: string; accepts: RecordPredicate; unsampled?: RecordPredicate | null }[];
  /** Routes in config order; null when ROUTES is not set. */
  routes: readonly { sinks: readonly string[]; matches: RecordPredicate; unsampled?: RecordPredicate | null }[] | null;
}

/**
 * The sinks a record goes to. Without ROUTES: every sink whose inline filter
 * accepts it. With ROUTES: the sinks of every matching route, each still
 * subject to its own inline filter.
 *
 * Given `sampledOut`, adds the sinks that would have taken the record but for
 * sampling (a route's or the sink's own): what their `droppedSample` counts.
 */
export function routeRecord(record: LogRecord, table: RoutingTable, sampledOut?: string[]): string[] {
  const out: string[] = [];
  if (table.routes === null) {
    for (const sink of table.sinks) {
      if (sink.accepts(record)) out.push(sink.name);
      else if (sampledOut && sink.unsampled?.(record)) sampledOut.push(sink.name);
    }
    return out;
  }
  const wanted = new Set<string>();
  // Sinks only a sampled-out route wanted.
  let unsampled: Set<string> | undefined;
  for (const route of table.routes) {
    if (route.matches(record)) for (const name of route.sinks) wanted.add(name);
    else if (sampledOut && route.unsampled?.(record)) {
      unsampled ??= new Set();
      for (const name of route.sinks) unsampled.add(name);
    }
  }
  for (const sink of table.sinks) {
    if (wanted.has(sink.name)) {
      if (sink.accepts(record)) out.push(sink.name);
      else if (sampledOut && sink.unsampled?.(record)) sampledOut.push(sink.name);
    } else if (sampledOut && unsampled?.has(sink.name) && (sink.unsampled ?? sink.accepts)(record)) {
      sampledOut.push(sink.name);
    }
  }
  return out;
}
