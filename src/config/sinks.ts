/**
 * SINKS: each entry's identity, filter and scrubbing, and its options
 * checked by its sink type's schema, with `${NAME}` references and the
 * type's usual secrets resolved.
 */
import * as v from "valibot";
import type { AnySinkDefinition, BatchLimits } from "../../sinks/index";
import {
  compileFilter,
  compileUnsampled,
  FILTER_KEYS,
  type FilterSpec,
  filterEntries,
  type RecordPredicate,
} from "../filter";
import { type ConfigError, issuesToErrors } from "../issues";
import { compileScrubber, parseScrubConfig, type Scrubber, type ScrubConfig } from "../scrub";
import { compileShape, readShape, SHAPE_KEYS, type Shape } from "../shape";
import { checkBinding } from "./bindings";
import { readList, resolveRefs, type SecretBook } from "./env";

/** The sink types a config may name, keyed by type. */
export type SinkRegistry = Readonly<Record<string, AnySinkDefinition>>;

export interface ResolvedSink {
  name: string;
  type: string;
  definition: AnySinkDefinition;
  /** Validated options with defaults applied and secrets resolved. Never echo these. */
  options: unknown;
  /** The options as written, `${NAME}` references unresolved: safe to show. */
  publicOptions: Record<string, unknown>;
  filter: FilterSpec;
  accepts: RecordPredicate;
  /** The inline filter without its sampling; null when it does not sample. */
  unsampled: RecordPredicate | null;
  batch: BatchLimits;
  /** Opted in to the runtime's unredacted request URL and headers (scrubbing still applies). */
  unredacted: boolean;
  /** This sink's own scrubbing (its `scrub` option); undefined: the global SCRUB applies. */
  scrubber?: Scrubber | null;
  /** Its shaping (`fields`, `exclude`, `rename`, `add`), compiled; undefined when it has none. */
  shape?: Shape;
}

/** Where a sink entry is read: its env, the registry, the errors so far and the secrets found. */
export interface SinkContext {
  env: Record<string, unknown>;
  registry: SinkRegistry;
  errors: ConfigError[];
  secrets: SecretBook;
}

const sinkHead = v.looseObject({
  unredacted: v.optional(v.boolean()),
  name: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1 to 64 letters, digits, '_', '.' or '-'")),
  type: v.string(),
  ...filterEntries,
});

type SinkHead = v.InferOutput<typeof sinkHead>;

/** Keys every sink takes besides its own options: identity, filters, and what it may see. */
const RESERVED = new Set<string>(["name", "type", "unredacted", "scrub", ...SHAPE_KEYS, ...FILTER_KEYS]);

export function scrubberOf(config: ScrubConfig | null): Scrubber | null {
  if (config === null || config.enabled === false) return null;
  return compileScrubber(config);
}

/**
 * Reads SINKS: the sinks that are valid, and every name with its position
 * (names of invalid entries too, so routes naming them get no second error).
 */
export function readSinks(raw: unknown, ctx: SinkContext): { sinks: ResolvedSink[]; seen: Map<string, number> } {
  const rawSinks = readList(
    "SINKS",
    raw,
    ctx.errors,
    'write a JSON array like [{"name":"all","type":"r2","binding":"LOGS"}] or use a TOML array of tables in [vars]',
  );
  if (rawSinks === null && ctx.errors.length === 0) {
    ctx.errors.push({
      variable: "SINKS",
      path: "",
      message:
        'is not set; tailfan needs at least one sink, e.g. SINKS = [{ name = "archive", type = "r2", binding = "LOGS_R2" }] in [vars]',
    });
  }
  const sinks: ResolvedSink[] = [];
  const seen = new Map<string, number>();
  for (const [i, entry] of (rawSinks ?? []).entries()) {
    const sink = readSink(entry, i, seen, ctx);
    if (sink) sinks.push(sink);
  }
  return { sinks, seen };
}

/** One SINKS entry; null when it has an error (pushed to `ctx.errors`). */
function readSink(raw: unknown, i: number, seen: Map<string, number>, ctx: SinkContext): ResolvedSink | null {
  const at = `[${i}]`;
  const head = v.safeParse(sinkHead, raw);
  if (!head.success) {
    ctx.errors.push(...issuesToErrors("SINKS", at, head.issues));
    return null;
  }
  const definition = identify(head.output, at, i, seen, ctx);
  if (!definition) return null;
  const { publicOptions, defaulted } = publicOptionsOf(raw as Record<string, unknown>, definition, ctx.env);
  const options = parseOptions(publicOptions, defaulted, definition, at, ctx);
  if (options === undefined) return null;
  const sinkScrubber = ownScrubber((raw as Record<string, unknown>).scrub, at, ctx);
  if (sinkScrubber === false) return null;
  const shape = shapeOf(raw as Record<string, unknown>, definition, options, at, ctx);
  if (shape === false) return null;
  const filter = filterOf(head.output);
  return {
    name: head.output.name,
    type: head.output.type,
    definition,
    ...(sinkScrubber === undefined ? {} : { scrubber: sinkScrubber }),
    ...(shape === undefined ? {} : { shape }),
    options,
    publicOptions,
    filter,
    accepts: compileFilter(filter),
    unsampled: compileUnsampled(filter),
    batch: definition.batch(options),
    unredacted: head.output.unredacted === true,
  };
}

/** The entry's sink type, once its name is known to be unique. */
function identify(
  head: SinkHead,
  at: string,
  i: number,
  seen: Map<string, number>,
  ctx: SinkContext,
): AnySinkDefinition | null {
  const { name, type } = head;
  const prior = seen.get(name);
  if (prior !== undefined) {
    ctx.errors.push({
      variable: "SINKS",
      path: `${at}.name`,
      message: `duplicate sink name "${name}" (also SINKS[${prior}].name); names must be unique`,
    });
    return null;
  }
  seen.set(name, i);
  const definition = Object.hasOwn(ctx.registry, type) ? ctx.registry[type] : undefined;
  if (!definition) {
    ctx.errors.push({
      variable: "SINKS",
      path: `${at}.type`,
      message: `unknown sink type "${type}"; known types: ${Object.keys(ctx.registry).join(", ")}`,
    });
    return null;
  }
  return definition;
}

/**
 * The entry's own options as written. A credential the user did not set reads
 * the sink type's usual secret (DD_API_KEY, ...) when it exists; when it does
 * not, the option stays unset, and a sink that needs it says which secret to put.
 */
function publicOptionsOf(
  raw: Record<string, unknown>,
  definition: AnySinkDefinition,
  env: Record<string, unknown>,
): { publicOptions: Record<string, unknown>; defaulted: Map<string, string> } {
  const publicOptions: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(raw)) if (!RESERVED.has(k)) publicOptions[k] = x;
  const defaulted = new Map<string, string>();
  for (const [option, secret] of Object.entries(definition.defaultSecrets ?? {})) {
    if (publicOptions[option] !== undefined) continue;
    defaulted.set(option, secret);
    if (typeof env[secret] === "string") publicOptions[option] = `\${${secret}}`;
  }
  return { publicOptions, defaulted };
}

/** The options resolved and checked by the sink type's schema; undefined when they have errors. */
function parseOptions(
  publicOptions: Record<string, unknown>,
  defaulted: Map<string, string>,
  definition: AnySinkDefinition,
  at: string,
  ctx: SinkContext,
): unknown {
  const before = ctx.errors.length;
  const resolved = resolveRefs(publicOptions, at, { variable: "SINKS", ...ctx });
  if (ctx.errors.length > before) return undefined;
  const parsed = v.safeParse(definition.options, resolved);
  if (!parsed.success) {
    for (const error of issuesToErrors("SINKS", at, parsed.issues, optionKeys(definition))) {
      const secret = defaulted.get(error.path.slice(at.length + 1));
      if (secret !== undefined && error.message === "is required") {
        error.message = `is required: set the secret ${secret} (\`npx wrangler secret put ${secret}\`, or .dev.vars for local dev), or set this option`;
      }
      ctx.errors.push(error);
    }
    return undefined;
  }
  for (const ref of definition.bindings?.(parsed.output) ?? []) {
    const problem = checkBinding(ctx.env, ref.name, ref.kind);
    if (problem) ctx.errors.push({ variable: "SINKS", path: `${at}.${ref.option}`, message: problem });
  }
  return parsed.output;
}

/** The sink's own `scrub`: undefined when it has none, false when it has errors. */
function ownScrubber(rawScrub: unknown, at: string, ctx: SinkContext): Scrubber | null | undefined | false {
  if (rawScrub === undefined) return undefined;
  const scrub = parseScrubConfig(rawScrub, ctx.env, "SINKS", ctx.secrets);
  if (scrub.errors.length > 0) {
    for (const e of scrub.errors) ctx.errors.push({ ...e, path: `${at}.scrub${e.path}` });
    return false;
  }
  return scrubberOf(scrub.config);
}

/** The sink's shaping, compiled: undefined when it has none, false when it has errors. */
function shapeOf(
  raw: Record<string, unknown>,
  definition: AnySinkDefinition,
  options: unknown,
  at: string,
  ctx: SinkContext,
): Shape | undefined | false {
  const spec = readShape(raw, at, ctx.errors);
  if (spec === undefined) return undefined;
  if (spec === null) return false;
  const writes = definition.writesLine;
  const why =
    writes === undefined
      ? `the ${definition.type} sink builds its payload from the record's fields, not from its JSON, so shaping does not apply to it`
      : writes === true
        ? null
        : writes(options);
  if (why !== null) {
    const key = SHAPE_KEYS.find((k) => raw[k] !== undefined) as string;
    ctx.errors.push({ variable: "SINKS", path: `${at}.${key}`, message: why });
    return false;
  }
  return compileShape(spec);
}

function filterOf(head: SinkHead): FilterSpec {
  const filter: FilterSpec = {};
  for (const key of FILTER_KEYS) {
    const x = head[key];
    if (x !== undefined) (filter as Record<string, unknown>)[key] = x;
  }
  return filter;
}

function optionKeys(definition: AnySinkDefinition): string[] | undefined {
  const entries = (definition.options as { entries?: Record<string, unknown> }).entries;
  return entries ? Object.keys(entries) : undefined;
}
