import { hash53 } from "./json";
import { type EventType, type Level, type LogRecord, levelRank, type RecordType } from "./record";

/**
 * A filter as users write it, in a route or inline on a sink. Every field
 * that is set must match (AND); a list matches when any entry does (OR).
 */
export interface FilterSpec {
  /** Invocation outcomes: `ok`, `exception`, `exceededCpu`, `canceled`, ... */
  outcomes?: string[];
  /** Minimum level: debug < info = log < warn < error. */
  level?: Level;
  /** Script name globs (`*` any run, `?` one character). */
  scripts?: string[];
  /** Event types: `fetch`, `scheduled`, `alarm`, `queue`, ... */
  eventTypes?: EventType[];
  /** Record types: `invocation`, `log`, `exception`, `diagnostic`. */
  types?: RecordType[];
  /** HTTP status classes or codes: `5xx`, `404`. Records without a status never match. */
  status?: string[];
  /** Fraction of invocations kept, 0 to 1; an invocation's records are kept or dropped together. */
  sample?: number;
}

export const FILTER_KEYS = ["outcomes", "level", "scripts", "eventTypes", "types", "status", "sample"] as const;

export type RecordPredicate = (record: LogRecord) => boolean;

/** Compiles a glob (`*`, `?`) to an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  let re = "^";
  for (const ch of glob) {
    if (ch === "*") re += ".*";
    else if (ch === "?") re += ".";
    else re += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`${re}$`);
}

function statusMatcher(spec: string): (status: number) => boolean {
  const cls = /^([1-5])xx$/i.exec(spec);
  if (cls) {
    const base = Number(cls[1]) * 100;
    return (s) => s >= base && s < base + 100;
  }
  const code = Number(spec);
  return (s) => s === code;
}

/** Deterministic per-invocation sample: the same invocation is always in or always out. */
export function sampled(invocationId: string, rate: number): boolean {
  if (rate >= 1) return true;
  if (rate <= 0) return false;
  return hash53(invocationId, 0x5eed) / 2 ** 53 < rate;
}

/** Turns a filter into one predicate; an empty filter matches everything. */
export function compileFilter(spec: FilterSpec): RecordPredicate {
  const checks: RecordPredicate[] = [];
  if (spec.outcomes) {
    const set = new Set(spec.outcomes);
    checks.push((r) => set.has(r.outcome));
  }
  if (spec.level) {
    const min = levelRank(spec.level);
    checks.push((r) => levelRank(r.level) >= min);
  }
  if (spec.scripts) {
    const res = spec.scripts.map(globToRegExp);
    checks.push((r) => r.scriptName !== null && res.some((re) => re.test(r.scriptName as string)));
  }
  if (spec.eventTypes) {
    const set = new Set<string>(spec.eventTypes);
    checks.push((r) => set.has(r.eventType));
  }
  if (spec.types) {
    const set = new Set<string>(spec.types);
    checks.push((r) => set.has(r.type));
  }
  if (spec.status) {
    const ms = spec.status.map(statusMatcher);
    checks.push((r) => r.status !== undefined && ms.some((m) => m(r.status as number)));
  }
  if (spec.sample !== undefined) {
    const rate = spec.sample;
    checks.push((r) => sampled(r.invocationId, rate));
  }
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0] as RecordPredicate;
  return (r) => {
    for (const check of checks) if (!check(r)) return false;
    return true;
  };
}

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
