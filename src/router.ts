/** Routing: which sinks a record goes to, given the compiled filters of routes and sinks. */
import type { RecordPredicate } from "./filter";
import type { LogRecord } from "./record";

/** What the router needs to know of the config. */
export interface RoutingTable {
  /** Sink names in config order, each with its inline filter. */
  sinks: readonly { name: string; accepts: RecordPredicate }[];
  /** Routes in config order; null when ROUTES is not set. */
  routes: readonly { sinks: readonly string[]; matches: RecordPredicate }[] | null;
}

/**
 * The sinks a record goes to. Without ROUTES: every sink whose inline filter
 * accepts it. With ROUTES: the sinks of every matching route, each still
 * subject to its own inline filter.
 */
export function routeRecord(record: LogRecord, table: RoutingTable): string[] {
  if (table.routes === null) {
    const out: string[] = [];
    for (const sink of table.sinks) if (sink.accepts(record)) out.push(sink.name);
    return out;
  }
  const wanted = new Set<string>();
  for (const route of table.routes) {
    if (route.matches(record)) for (const name of route.sinks) wanted.add(name);
  }
  const out: string[] = [];
  for (const sink of table.sinks) if (wanted.has(sink.name) && sink.accepts(record)) out.push(sink.name);
  return out;
}
