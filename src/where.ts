/**
 * `where`: a predicate on any record field, in Logpush's filter shape:
 * `{ key, operator, value }` leaves under `and` / `or` (nestable). Checked
 * when the config loads (every mistake with its path), compiled once into
 * closures, so a record costs a few property reads and comparisons, never a
 * walk of the tree. `explainWhere` evaluates every leaf for /routes/test.
 */
import * as v from "valibot";
import type { LogRecord } from "./record";

/** Every operator, positive ones first; `!op` is always the negation of `op`. */
export const OPERATORS = [
  "eq",
  "!eq",
  "lt",
  "leq",
  "gt",
  "geq",
  "startsWith",
  "endsWith",
  "contains",
  "!contains",
  "in",
  "!in",
  "exists",
  "!exists",
] as const;

export type Operator = (typeof OPERATORS)[number];
export type WhereScalar = string | number | boolean;

export interface WhereLeaf {
  key: string;
  operator: Operator;
  value?: WhereScalar | WhereScalar[];
}

export type WhereNode = WhereLeaf | { and: WhereNode[] } | { or: WhereNode[] };

type KeysOfUnion<T> = T extends T ? keyof T : never;

/** What a record field holds: scalars are type-checked against the value, `json` fields are open. */
type FieldType = "string" | "number" | "boolean" | "strings" | "json";

/** Every top-level record field and what it holds; the compiler insists a new field is listed. */
const FIELD_TYPES: Record<KeysOfUnion<LogRecord>, FieldType> = {
  id: "string",
  type: "string",
  timestamp: "number",
  level: "string",
  message: "string",
  traceId: "string",
  spanId: "string",
  limited: "boolean",
  limitedFields: "strings",
  invocationId: "string",
  scriptName: "string",
  scriptVersion: "json",
  entrypoint: "string",
  executionModel: "string",
  dispatchNamespace: "string",
  scriptTags: "strings",
  durableObjectId: "string",
  outcome: "string",
  eventType: "string",
  eventTimestamp: "number",
  cpuTime: "number",
  wallTime: "number",
  truncated: "boolean",
  method: "string",
  url: "string",
  status: "number",
  colo: "string",
  country: "string",
  cron: "string",
  scheduledTime: "number",
  queue: "string",
  batchSize: "number",
  mailFrom: "string",
  rcptTo: "string",
  rawSize: "number",
  rpcMethod: "string",
  webSocketEventType: "string",
  webSocketCode: "number",
  webSocketClean: "boolean",
  hibernateReason: "string",
  tailScripts: "strings",
  event: "json",
  logCount: "number",
  exceptionCount: "number",
  diagnosticCount: "number",
  tailAttributes: "json",
  preview: "json",
  extra: "json",
  logLevel: "string",
  args: "json",
  errors: "json",
  exceptionName: "string",
  stack: "string",
  channel: "string",
  data: "json",
  parentSpanId: "string",
  name: "string",
  kind: "string",
  startTime: "number",
  endTime: "number",
  durationMs: "number",
  spanOutcome: "string",
  statusCode: "string",
  statusMessage: "string",
  attributes: "json",
};

/** Known fields inside `json` fields. */
const NESTED_TYPES: Record<string, FieldType> = {
  "scriptVersion.id": "string",
  "scriptVersion.tag": "string",
  "scriptVersion.message": "string",
};

export const RECORD_FIELDS = Object.keys(FIELD_TYPES);

/** The type of a dotted key: known, null inside open JSON, or why the key cannot exist. */
function keyType(key: string): { type: FieldType | null } | { error: string } {
  const segs = key.split(".");
  const top = segs[0] as string;
  const type = Object.hasOwn(FIELD_TYPES, top) ? FIELD_TYPES[top as keyof typeof FIELD_TYPES] : undefined;
  // The name given is not repeated: a value that is none of the choices is never echoed.
  if (type === undefined) return { error: `starts with no record field; fields are: ${RECORD_FIELDS.join(", ")}` };
  if (segs.length === 1) return { type };
  if (type !== "json") return { error: `"${top}" holds ${wordOf(type)}; it has no fields` };
  return { type: NESTED_TYPES[key] ?? null };
}

// ---- checking ----

type PathItem = v.ObjectPathItem;

interface Problem {
  path: (string | number)[];
  message: string;
}

const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === "object" && !Array.isArray(x);
const isScalar = (x: unknown): x is WhereScalar =>
  typeof x === "string" || typeof x === "boolean" || (typeof x === "number" && Number.isFinite(x));

const NUMERIC = new Set<Operator>(["lt", "leq", "gt", "geq"]);
const TEXT = new Set<Operator>(["startsWith", "endsWith", "contains", "!contains"]);
const LISTS = new Set<Operator>(["in", "!in"]);
const BARE = new Set<Operator>(["exists", "!exists"]);

/** The value type a scalar field compares with; null when any scalar goes. */
function scalarOf(type: FieldType | null): "string" | "number" | "boolean" | null {
  if (type === "strings") return "string";
  if (type === "json" || type === null) return null;
  return type;
}

function checkLeaf(node: Record<string, unknown>, at: (string | number)[], out: Problem[]): WhereLeaf | null {
  for (const k of Object.keys(node)) {
    if (k !== "key" && k !== "operator" && k !== "value") {
      out.push({ path: [...at, k], message: "unknown option; a leaf has key, operator and value" });
    }
  }
  const { key, operator, value } = node;
  let ok = out.length;
  if (typeof key !== "string" || key === "") {
    out.push({
      path: [...at, "key"],
      message: 'must be a dotted path into the record, like "url" or "event.request.method"',
    });
  } else if (key.split(".").some((s) => s === "")) {
    out.push({ path: [...at, "key"], message: "has an empty part; write dotted paths like event.request.method" });
  }
  if (typeof operator !== "string" || !(OPERATORS as readonly string[]).includes(operator)) {
    out.push({
      path: [...at, "operator"],
      message: `${operator === undefined ? "is required" : "unknown operator"}; expected one of ${OPERATORS.join(", ")}`,
    });
  }
  if (out.length > ok) return null;
  ok = out.length;
  const op = operator as Operator;
  const typed = keyType(key as string);
  if ("error" in typed) {
    out.push({ path: [...at, "key"], message: typed.error });
    return null;
  }
  const known = typed.type;
  const vat = [...at, "value"];
  if (BARE.has(op)) {
    if (value !== undefined) out.push({ path: vat, message: `${op} takes no value` });
  } else if (value === undefined) {
    out.push({ path: vat, message: "is required" });
  } else if (NUMERIC.has(op)) {
    if (typeof value !== "number" || !Number.isFinite(value))
      out.push({ path: vat, message: `${op} compares numbers: must be a number` });
    else if (known !== null && known !== "number" && known !== "json") {
      out.push({ path: [...at, "operator"], message: `${op} compares numbers; "${key}" holds ${wordOf(known)}` });
    }
  } else if (TEXT.has(op)) {
    if (typeof value !== "string") out.push({ path: vat, message: `${op} compares text: must be a string` });
    else if (known === "number" || known === "boolean") {
      out.push({ path: [...at, "operator"], message: `${op} compares text; "${key}" holds ${wordOf(known)}` });
    }
  } else if (LISTS.has(op)) {
    if (!Array.isArray(value) || value.length === 0) {
      out.push({ path: vat, message: `${op} takes a non-empty list of strings, numbers or booleans` });
    } else {
      for (const [i, x] of value.entries()) checkScalar(x, scalarOf(known), key as string, [...vat, i], out);
    }
  } else {
    checkScalar(value, scalarOf(known), key as string, vat, out);
  }
  if (out.length > ok) return null;
  return value === undefined
    ? { key: key as string, operator: op }
    : { key: key as string, operator: op, value: value as WhereLeaf["value"] };
}

function wordOf(type: FieldType): string {
  return type === "strings" ? "a list of strings" : type === "json" ? "JSON" : `a ${type}`;
}

function checkScalar(
  x: unknown,
  want: "string" | "number" | "boolean" | null,
  key: string,
  at: (string | number)[],
  out: Problem[],
) {
  if (!isScalar(x)) out.push({ path: at, message: "must be a string, a number or a boolean" });
  else if (want !== null && typeof x !== want)
    out.push({ path: at, message: `must be a ${want}: "${key}" holds ${want}s` });
}

const SHAPE = "must be a leaf { key, operator, value } or { and = [...] } or { or = [...] }";

function checkNode(node: unknown, at: (string | number)[], out: Problem[], depth: number): WhereNode | null {
  if (!isObject(node)) {
    out.push({ path: at, message: SHAPE });
    return null;
  }
  if (depth > 16) {
    out.push({ path: at, message: "is nested more than 16 levels deep" });
    return null;
  }
  const keys = Object.keys(node);
  if (keys.length === 0) {
    out.push({ path: at, message: SHAPE });
    return null;
  }
  const join = keys.includes("and") ? "and" : keys.includes("or") ? "or" : null;
  if (join === null) return checkLeaf(node, at, out);
  if (keys.length !== 1) {
    out.push({ path: at, message: `${SHAPE}, with nothing beside its and or or` });
    return null;
  }
  const list = node[join];
  if (!Array.isArray(list) || list.length === 0) {
    out.push({ path: [...at, join], message: "must be a non-empty list of conditions" });
    return null;
  }
  const before = out.length;
  const children = list.map((child, i) => checkNode(child, [...at, join, i], out, depth + 1));
  if (out.length > before) return null;
  return { [join]: children as WhereNode[] } as WhereNode;
}

/** Checks a `where` tree; the problems carry paths relative to it. */
export function checkWhere(raw: unknown): { where: WhereNode | null; problems: Problem[] } {
  const problems: Problem[] = [];
  const where = checkNode(raw, [], problems, 0);
  return { where: problems.length > 0 ? null : where, problems };
}

/** `where` as a filter field schema: each mistake an issue at its own path. */
export const whereSchema = v.pipe(
  v.unknown(),
  v.rawTransform<unknown, WhereNode>(({ dataset, addIssue, NEVER }) => {
    const { where, problems } = checkWhere(dataset.value);
    for (const p of problems) {
      const path = p.path.map(
        (key) => ({ type: "object", origin: "value", input: {}, key, value: undefined }) as unknown as PathItem,
      );
      addIssue({ message: p.message, ...(path.length > 0 ? { path: path as [PathItem, ...PathItem[]] } : {}) });
    }
    return where ?? NEVER;
  }),
) as v.GenericSchema<unknown, WhereNode>;

// ---- reading records ----

interface Seg {
  /** The key as written (lower-cased below `headers`), then joined with the following segments, longest last. */
  names: string[];
  /** A header name: matched case-insensitively. */
  header: boolean;
  /** A whole number: an index when the value is a list. */
  index: number | null;
}

function segsOf(key: string): Seg[] {
  const parts = key.split(".");
  const segs: Seg[] = [];
  for (let i = 0; i < parts.length; i++) {
    const header = i > 0 && parts[i - 1] === "headers";
    const rest = parts.slice(i).map((p, j) => (j === 0 && header ? p.toLowerCase() : p));
    const names: string[] = [];
    for (let j = 1; j <= rest.length; j++) names.push(rest.slice(0, j).join("."));
    segs.push({ names, header, index: /^\d+$/.test(parts[i] as string) ? Number(parts[i]) : null });
  }
  return segs;
}

/** The child of `obj` at segment `i`: its value and how many segments it took (keys may hold dots, like span attributes). */
function child(obj: Record<string, unknown>, seg: Seg): [unknown, number] {
  const first = seg.names[0] as string;
  if (Object.hasOwn(obj, first)) return [obj[first], 1];
  for (let j = 1; j < seg.names.length; j++) {
    const name = seg.names[j] as string;
    if (Object.hasOwn(obj, name)) return [obj[name], j + 1];
  }
  if (seg.header) {
    for (const k of Object.keys(obj)) if (k.toLowerCase() === first) return [obj[k], 1];
  }
  return [undefined, 1];
}

/** The value at `segs[i..]` below `x`; a list met on the way fans out, giving a list of what each entry holds. */
function resolve(x: unknown, segs: readonly Seg[], i: number): unknown {
  while (i < segs.length) {
    if (x === null || typeof x !== "object") return undefined;
    const seg = segs[i] as Seg;
    if (Array.isArray(x)) {
      if (seg.index !== null) {
        x = x[seg.index];
        i++;
        continue;
      }
      const out: unknown[] = [];
      for (const el of x) {
        const y = resolve(el, segs, i);
        if (Array.isArray(y)) out.push(...y);
        else if (y !== undefined && y !== null) out.push(y);
      }
      return out;
    }
    const [y, took] = child(x as Record<string, unknown>, seg);
    x = y;
    i += took;
  }
  return x;
}

type Getter = (r: LogRecord) => unknown;

function getterOf(key: string): Getter {
  if (!key.includes(".")) return (r) => (r as unknown as Record<string, unknown>)[key];
  const segs = segsOf(key);
  return (r) => resolve(r, segs, 0);
}

// ---- compiling ----

type Test = (x: unknown) => boolean;

function scalarTest(op: Exclude<Operator, `!${string}`>, value: WhereLeaf["value"]): Test {
  switch (op) {
    case "eq":
      return (x) => x === value;
    case "lt":
      return (x) => typeof x === "number" && x < (value as number);
    case "leq":
      return (x) => typeof x === "number" && x <= (value as number);
    case "gt":
      return (x) => typeof x === "number" && x > (value as number);
    case "geq":
      return (x) => typeof x === "number" && x >= (value as number);
    case "startsWith":
      return (x) => typeof x === "string" && x.startsWith(value as string);
    case "endsWith":
      return (x) => typeof x === "string" && x.endsWith(value as string);
    case "contains":
      return (x) => typeof x === "string" && x.includes(value as string);
    case "in": {
      const set = new Set<unknown>(value as WhereScalar[]);
      return (x) => set.has(x);
    }
    case "exists":
      return (x) => x !== undefined && x !== null;
  }
}

/** A list is tested entry by entry: true when any entry passes. A missing value (undefined, null, []) passes no test. */
function anyOf(test: Test): Test {
  return (x) => {
    if (!Array.isArray(x)) return test(x);
    for (const el of x) if (test(el)) return true;
    return false;
  };
}

function compileLeaf(leaf: WhereLeaf): (r: LogRecord) => boolean {
  const get = getterOf(leaf.key);
  const negated = leaf.operator.startsWith("!");
  const op = (negated ? leaf.operator.slice(1) : leaf.operator) as Exclude<Operator, `!${string}`>;
  const test = anyOf(scalarTest(op, leaf.value));
  return negated ? (r) => !test(get(r)) : (r) => test(get(r));
}

const isAnd = (n: WhereNode): n is { and: WhereNode[] } => "and" in n;
const isOr = (n: WhereNode): n is { or: WhereNode[] } => "or" in n;

/** Compiles a checked tree into one predicate. */
export function compileWhere(node: WhereNode): (r: LogRecord) => boolean {
  if (isAnd(node) || isOr(node)) {
    const all = isAnd(node);
    const parts = (all ? node.and : (node as { or: WhereNode[] }).or).map(compileWhere);
    if (parts.length === 1) return parts[0] as (r: LogRecord) => boolean;
    if (parts.length === 2) {
      const [a, b] = parts as [(r: LogRecord) => boolean, (r: LogRecord) => boolean];
      return all ? (r) => a(r) && b(r) : (r) => a(r) || b(r);
    }
    return all ? (r) => parts.every((p) => p(r)) : (r) => parts.some((p) => p(r));
  }
  return compileLeaf(node);
}

// ---- words ----

function leafText(leaf: WhereLeaf): string {
  return leaf.value === undefined
    ? `${leaf.key} ${leaf.operator}`
    : `${leaf.key} ${leaf.operator} ${JSON.stringify(leaf.value)}`;
}

/** The tree in one line: `url startsWith "/api" and (status geq 500 or outcome eq "exception")`. */
export function describeWhere(node: WhereNode, nested = false): string {
  if (isAnd(node) || isOr(node)) {
    const word = isAnd(node) ? "and" : "or";
    const list = isAnd(node) ? node.and : (node as { or: WhereNode[] }).or;
    const text = list.map((n) => describeWhere(n, true)).join(` ${word} `);
    return nested && list.length > 1 ? `(${text})` : text;
  }
  return leafText(node);
}

/** One leaf's result for one record. */
export interface LeafResult {
  /** Where the leaf is in the tree: `where.and[1]`. */
  at: string;
  leaf: string;
  matched: boolean;
}

/** Every leaf's result (none skipped) and the tree's, for /routes/test. Interprets the tree; not for the pipeline. */
export function explainWhere(
  node: WhereNode,
  record: LogRecord,
  at = "where",
): { matched: boolean; leaves: LeafResult[] } {
  if (isAnd(node) || isOr(node)) {
    const word = isAnd(node) ? "and" : "or";
    const list = isAnd(node) ? node.and : (node as { or: WhereNode[] }).or;
    const parts = list.map((n, i) => explainWhere(n, record, `${at}.${word}[${i}]`));
    const matched = word === "and" ? parts.every((p) => p.matched) : parts.some((p) => p.matched);
    return { matched, leaves: parts.flatMap((p) => p.leaves) };
  }
  const matched = compileLeaf(node)(record);
  return { matched, leaves: [{ at, leaf: leafText(node), matched }] };
}
