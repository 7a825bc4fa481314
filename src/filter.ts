/**
 * Filters, in routes and inline on sinks: one table entry per field, holding
 * how it is written (its schema), how it matches (compile) and how the
 * dashboard words it (describe). The table is keyed by FilterSpec, so a field
 * added to FilterSpec does not compile until its entry is written.
 */
import * as v from "valibot";
import {
  EVENT_TYPES,
  type EventType,
  LEVELS,
  type Level,
  type LogRecord,
  levelRank,
  RECORD_TYPES,
  type RecordType,
} from "./record";
import { compileSample, describeSample, type SampleSpec, sampleSchema } from "./sample";
import { compileWhere, describeWhere, type WhereNode, whereSchema } from "./where";

export { sampled } from "./sample";

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
  /** A predicate on any record field: `{ key, operator, value }` leaves under `and` / `or`. */
  where?: WhereNode;
  /**
   * Fraction of invocations kept, 0 to 1, or a rate per status code, status
   * class and outcome; an invocation's records are kept or dropped together.
   */
  sample?: SampleSpec;
}

export type RecordPredicate = (record: LogRecord) => boolean;

/** One filter field: how it is written, how it matches, how it reads. */
interface FilterField<T> {
  /** The value as users write it; the output is the value the other two take. */
  schema: v.GenericSchema<unknown, T>;
  compile(value: T): RecordPredicate;
  /** The field in words for the dashboard; null when it says nothing worth showing. */
  describe(value: T): string | null;
}

type FilterFields = { [K in keyof FilterSpec]-?: FilterField<NonNullable<FilterSpec[K]>> };

/** One value or a list of them, read as a list. */
export const oneOrMany = <T extends v.GenericSchema<unknown, string>>(item: T) =>
  v.pipe(
    v.union([item, v.array(item)]),
    v.transform((x) => (Array.isArray(x) ? x : [x]) as v.InferOutput<T>[]),
  );

const quoted = (xs: readonly string[]) => xs.map((x) => `"${x}"`).join(", ");

const either = (xs: readonly string[]) => xs.join(" or ");

/** A field matching one record field against a set of values. */
function oneOf<T extends string>(
  values: readonly T[] | null,
  pick: (r: LogRecord) => string,
  word: string,
): FilterField<T[]> {
  return {
    schema: (values === null
      ? oneOrMany(v.string())
      : oneOrMany(v.picklist(values, `must be one of ${quoted(values)}`))) as v.GenericSchema<unknown, T[]>,
    compile(value) {
      const set = new Set<string>(value);
      return (r) => set.has(pick(r));
    },
    describe: (value) => (value.length > 0 ? `${word} ${either(value)}` : null),
  };
}

/** The filter fields, in the order they are checked and described. */
const FILTER_FIELDS: FilterFields = {
  outcomes: oneOf<string>(null, (r) => r.outcome, "outcome"),
  level: {
    schema: v.picklist(LEVELS, `must be one of ${quoted(LEVELS)}`),
    compile(value) {
      const min = levelRank(value);
      return (r) => levelRank(r.level) >= min;
    },
    describe: (value) => `level ≥ ${value}`,
  },
  scripts: {
    schema: oneOrMany(v.string()),
    compile(value) {
      const res = value.map(globToRegExp);
      return (r) => r.scriptName !== null && res.some((re) => re.test(r.scriptName as string));
    },
    describe: (value) => (value.length > 0 ? `script ${either(value)}` : null),
  },
  eventTypes: oneOf(EVENT_TYPES, (r) => r.eventType, "event"),
  types: oneOf(RECORD_TYPES, (r) => r.type, "record"),
  status: {
    schema: oneOrMany(
      v.pipe(
        v.union([v.string(), v.number()]),
        v.transform(String),
        v.regex(/^([1-5]xx|[1-5]\d\d)$/i, 'must be a status class like "5xx" or a code like "404"'),
      ),
    ),
    compile(value) {
      const ms = value.map(statusMatcher);
      return (r) => r.status !== undefined && ms.some((m) => m(r.status as number));
    },
    describe: (value) => (value.length > 0 ? `status ${either(value)}` : null),
  },
  where: {
    schema: whereSchema,
    compile: compileWhere,
    describe: (node) => `where ${describeWhere(node)}`,
  },
  // Last: sampling is what the router leaves out to tell a sampled-out record from a filtered one.
  sample: {
    schema: sampleSchema,
    compile: compileSample,
    describe: describeSample,
  },
};

export const FILTER_KEYS = Object.keys(FILTER_FIELDS) as (keyof FilterSpec)[];

/** Each field's schema, optional: spread into the route and sink schemas. */
export const filterEntries = Object.fromEntries(
  FILTER_KEYS.map((key) => [key, v.optional(FILTER_FIELDS[key].schema)]),
) as { [K in keyof FilterSpec]-?: v.OptionalSchema<v.GenericSchema<unknown, NonNullable<FilterSpec[K]>>, undefined> };

/** The fields that are set, each with its table entry, in table order. */
function setFields(spec: FilterSpec): [FilterField<unknown>, unknown][] {
  const out: [FilterField<unknown>, unknown][] = [];
  for (const key of FILTER_KEYS) {
    const value = spec[key];
    if (value !== undefined) out.push([FILTER_FIELDS[key] as FilterField<unknown>, value]);
  }
  return out;
}

/** Turns a filter into one predicate; an empty filter matches everything. */
export function compileFilter(spec: FilterSpec): RecordPredicate {
  return allOf(setFields(spec).map(([field, value]) => field.compile(value)));
}

/**
 * The filter without its sampling, for telling what sampling dropped from
 * what the other fields did; null when the filter does not sample.
 */
export function compileUnsampled(spec: FilterSpec): RecordPredicate | null {
  const { sample, ...rest } = spec;
  return sample === undefined ? null : compileFilter(rest);
}

function allOf(checks: RecordPredicate[]): RecordPredicate {
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0] as RecordPredicate;
  return (r) => {
    for (const check of checks) if (!check(r)) return false;
    return true;
  };
}

/** A filter in words: `outcome exception · level ≥ warn · script api-*`. */
export function describeFilter(spec: FilterSpec): string {
  const parts: string[] = [];
  for (const [field, value] of setFields(spec)) {
    const words = field.describe(value);
    if (words !== null) parts.push(words);
  }
  return parts.length === 0 ? "every record" : parts.join(" · ");
}

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
