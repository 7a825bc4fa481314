/**
 * Configuration from env vars: SINKS and ROUTES in, a checked ResolvedConfig
 * out, built once per isolate. Every mistake becomes one ConfigError that
 * names the variable, the path inside it and what was expected.
 */
import * as v from "valibot";

export type { ConfigError } from "./issues";

import {
  type AnySinkDefinition,
  type BatchLimits,
  type BindingKind,
  type SendResult,
  SINK_TYPES,
} from "../sinks/index";
import { partsKey, sizeConfig } from "./config-size";
import { readVar, resolveRefs, SecretBook, withoutSecrets } from "./env";
import { type ConfigError, issuesToErrors, typeName } from "./issues";
import { type LimitsConfig, parseLimitsConfig } from "./limits";
import { EVENT_TYPES, LEVELS, RECORD_TYPES } from "./record";
import { compileFilter, FILTER_KEYS, type FilterSpec, type RecordPredicate, type RoutingTable } from "./router";
import {
  compileScrubber,
  DEFAULT_SCRUB,
  maskText,
  parseScrubConfig,
  reasonScrubber,
  type Scrubber,
  type ScrubConfig,
} from "./scrub";

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
  batch: BatchLimits;
  /** Opted in to the runtime's unredacted request URL and headers (scrubbing still applies). */
  unredacted: boolean;
  /** This sink's own scrubbing (its `scrub` option); undefined: the global SCRUB applies. */
  scrubber?: Scrubber | null;
}

/** DELIVERY as resolved: how records travel from tail() to the sinks. */
export interface DeliveryConfig {
  /** `direct`: tail() delivers; `buffered`: tail() only enqueues and queue() delivers in large batches. */
  mode: "direct" | "buffered";
  /** Per-attempt timeout, ms. */
  timeoutMs: number;
  /** Attempts per batch inside one invocation. */
  attempts: number;
  /** First backoff, ms; doubles, full jitter. */
  backoffMs: number;
  /** Time budget for one sink's delivery inside one invocation, ms. */
  budgetMs: number;
  /** Queue producer binding for buffered records and durable retries; null: best effort only. */
  queue: string | null;
  /** Deliveries from the queue (retries) before a batch is dead-lettered. */
  retries: number;
  /** Delay before the first retry from the queue, seconds; doubles each time. */
  retryDelaySeconds: number;
  /** R2 binding that receives dead letters; null: they are logged and counted as failed. */
  deadLetter: string | null;
  /** Key prefix of dead-letter objects. */
  deadLetterPrefix: string;
  /** Name of the queue-level dead_letter_queue that tailfan consumes into the dead-letter bucket. */
  deadLetterQueue: string | null;
  /** Durable Object binding of the counters; null: counters are not kept. */
  stats: string | null;
  /** Latest records kept beside the counters for the dashboard; 0: none. */
  recent: number;
}

export const DEFAULT_DELIVERY_CONFIG: DeliveryConfig = {
  mode: "direct",
  timeoutMs: 5_000,
  attempts: 3,
  backoffMs: 1_000,
  budgetMs: 20_000,
  queue: null,
  retries: 5,
  retryDelaySeconds: 30,
  deadLetter: null,
  deadLetterPrefix: "dead-letter",
  deadLetterQueue: null,
  stats: null,
  recent: 200,
};

export interface ResolvedConfig {
  /** Size limits per record (LIMITS). */
  limits: LimitsConfig;
  /** The global scrubbing (SCRUB, on by default); null when turned off. */
  scrubber: Scrubber | null;
  /** This Worker's own script name: TraceItems from it are dropped, so tailfan never tails itself in a loop. */
  selfName: string;
  delivery: DeliveryConfig;
  sinks: ResolvedSink[];
  routes: { sinks: string[]; filter: FilterSpec; matches: RecordPredicate }[] | null;
  table: RoutingTable;
  /** Things that work but are probably not meant, such as a sink no route names. */
  warnings: string[];
  /** Every secret value the config resolved (and ADMIN_TOKEN). */
  secrets: SecretBook;
  /**
   * Makes a text tailfan writes about a failure safe to keep and show: each
   * resolved secret value becomes `${NAME}`, then what the scrub detectors
   * find is masked. Sinks' failure reasons pass through it before they are
   * logged, counted or dead-lettered.
   */
  redact: (text: string) => string;
}

export type ConfigResult = { ok: true; config: ResolvedConfig } | { ok: false; errors: ConfigError[] };

/**
 * A valid config as it is safe to show (GET /status, POST /config/check, the
 * dashboard): each sink's options as written, secrets as `${NAME}`.
 */
export function summarizeConfig(config: ResolvedConfig) {
  return {
    sinks: config.sinks.map((s) => ({ name: s.name, type: s.type, options: s.publicOptions, filter: s.filter })),
    routes: config.routes?.map((r) => ({ sinks: r.sinks, filter: r.filter })) ?? null,
    warnings: config.warnings,
  };
}

/** Formats errors as lines like `SINKS[0].url: must be an absolute http(s) URL`. */
export function formatConfigErrors(errors: readonly ConfigError[]): string {
  return errors.map((e) => `${e.variable}${e.path}: ${e.message}`).join("\n");
}

const oneOrMany = <T extends v.GenericSchema<unknown, string>>(item: T) =>
  v.pipe(
    v.union([item, v.array(item)]),
    v.transform((x) => (Array.isArray(x) ? x : [x]) as v.InferOutput<T>[]),
  );

const quoted = (xs: readonly string[]) => xs.map((x) => `"${x}"`).join(", ");

/** Filter fields, shared by routes and inline sink filters. */
const filterEntries = {
  outcomes: v.optional(oneOrMany(v.string())),
  level: v.optional(v.picklist(LEVELS, `must be one of ${quoted(LEVELS)}`)),
  scripts: v.optional(oneOrMany(v.string())),
  eventTypes: v.optional(oneOrMany(v.picklist(EVENT_TYPES, `must be one of ${quoted(EVENT_TYPES)}`))),
  types: v.optional(oneOrMany(v.picklist(RECORD_TYPES, `must be one of ${quoted(RECORD_TYPES)}`))),
  status: v.optional(
    oneOrMany(
      v.pipe(
        v.union([v.string(), v.number()]),
        v.transform(String),
        v.regex(/^([1-5]xx|[1-5]\d\d)$/i, 'must be a status class like "5xx" or a code like "404"'),
      ),
    ),
  ),
  sample: v.optional(v.pipe(v.number(), v.minValue(0, "must be from 0 to 1"), v.maxValue(1, "must be from 0 to 1"))),
};

const sinkHead = v.looseObject({
  unredacted: v.optional(v.boolean()),
  name: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1 to 64 letters, digits, '_', '.' or '-'")),
  type: v.string(),
  ...filterEntries,
});

const routeSchema = v.strictObject({
  sinks: oneOrMany(v.string()),
  ...filterEntries,
});

const int = (min: number, max: number, unit: string) =>
  v.pipe(
    v.number(),
    v.integer(),
    v.minValue(min, `must be at least ${min} ${unit}`),
    v.maxValue(max, `must be at most ${max} ${unit}`),
  );
const d = DEFAULT_DELIVERY_CONFIG;

const deliverySchema = v.strictObject({
  mode: v.optional(v.picklist(["direct", "buffered"], 'must be "direct" or "buffered"'), d.mode),
  timeoutMs: v.optional(int(100, 30_000, "ms"), d.timeoutMs),
  attempts: v.optional(int(1, 10, "attempts"), d.attempts),
  backoffMs: v.optional(int(0, 30_000, "ms"), d.backoffMs),
  budgetMs: v.optional(int(1_000, 28_000, "ms (waitUntil ends about 30 s after the invocation)"), d.budgetMs),
  queue: v.optional(v.nullable(v.string()), d.queue),
  retries: v.optional(int(0, 100, "retries"), d.retries),
  retryDelaySeconds: v.optional(int(0, 43_200, "seconds"), d.retryDelaySeconds),
  deadLetter: v.optional(v.nullable(v.string()), d.deadLetter),
  deadLetterPrefix: v.optional(v.string(), d.deadLetterPrefix),
  deadLetterQueue: v.optional(v.nullable(v.string()), d.deadLetterQueue),
  stats: v.optional(v.nullable(v.string()), d.stats),
  recent: v.optional(int(0, 1_000, "records"), d.recent),
});

/** Keys every sink takes besides its own options: identity, filters, and what it may see. */
const RESERVED = new Set<string>(["name", "type", "unredacted", "scrub", ...FILTER_KEYS]);

/** Reads a list-valued var: a TOML array (the runtime hands an array) or a JSON string. */
function readList(variable: string, raw: unknown, errors: ConfigError[], example: string): unknown[] | null {
  const read = readVar(raw, variable, `write a JSON array like ${example} or use a TOML array of tables in [vars]`);
  if (!read.ok) {
    errors.push(read.error);
    return null;
  }
  const value = read.value;
  if (value === undefined) return null;
  if (!Array.isArray(value)) {
    if (value !== null && typeof value === "object") return [value];
    errors.push({ variable, path: "", message: `expected a list of tables, got ${typeName(value)}` });
    return null;
  }
  return value;
}

const BINDING_SHAPE: Record<BindingKind, { methods: string[]; toml: (name: string) => string }> = {
  kv: { methods: ["get", "put", "list"], toml: (n) => `[[kv_namespaces]] binding = "${n}"` },
  r2: { methods: ["get", "put", "head"], toml: (n) => `[[r2_buckets]] binding = "${n}"` },
  queue: { methods: ["send", "sendBatch"], toml: (n) => `[[queues.producers]] binding = "${n}"` },
  d1: { methods: ["prepare", "batch", "exec"], toml: (n) => `[[d1_databases]] binding = "${n}"` },
  analytics_engine: {
    methods: ["writeDataPoint"],
    toml: (n) => `[[analytics_engine_datasets]] binding = "${n}"`,
  },
};

function checkBinding(env: Record<string, unknown>, name: string, kind: BindingKind): string | null {
  const shape = BINDING_SHAPE[kind];
  const binding = env[name];
  if (binding === undefined || binding === null) {
    return `no binding named "${name}"; add ${shape.toml(name)} to wrangler.toml`;
  }
  const b = binding as Record<string, unknown>;
  if (!shape.methods.every((m) => typeof b[m] === "function")) {
    return `binding "${name}" is not a ${kind} binding; declare it as ${shape.toml(name)}`;
  }
  return null;
}

function readDelivery(env: Record<string, unknown>, errors: ConfigError[]): DeliveryConfig {
  const read = readVar(
    env.DELIVERY,
    "DELIVERY",
    'write a table like { queue = "TAILFAN_QUEUE" } in [vars], or the same as JSON: {"queue":"TAILFAN_QUEUE"}',
  );
  if (!read.ok) {
    errors.push(read.error);
    return DEFAULT_DELIVERY_CONFIG;
  }
  if (read.value === undefined) return DEFAULT_DELIVERY_CONFIG;
  const parsed = v.safeParse(deliverySchema, read.value);
  if (!parsed.success) {
    errors.push(...issuesToErrors("DELIVERY", "", parsed.issues, Object.keys(deliverySchema.entries)));
    return DEFAULT_DELIVERY_CONFIG;
  }
  const delivery = parsed.output;
  const bind = (option: keyof DeliveryConfig, name: string | null, kind: BindingKind | "do") => {
    if (name === null) return;
    const problem = kind === "do" ? checkDurableObject(env, name) : checkBinding(env, name, kind);
    if (problem) errors.push({ variable: "DELIVERY", path: `.${option}`, message: problem });
  };
  bind("queue", delivery.queue, "queue");
  bind("deadLetter", delivery.deadLetter, "r2");
  bind("stats", delivery.stats, "do");
  if (delivery.mode === "buffered" && delivery.queue === null) {
    errors.push({
      variable: "DELIVERY",
      path: ".queue",
      message: 'buffered mode needs a queue: set queue = "<Queue producer binding>" and make tailfan its consumer',
    });
  }
  return delivery;
}

function checkDurableObject(env: Record<string, unknown>, name: string): string | null {
  const ns = env[name] as { idFromName?: unknown } | undefined;
  if (ns === undefined || ns === null) {
    return `no binding named "${name}"; add [[durable_objects.bindings]] name = "${name}", class_name = "TailfanStats" to wrangler.toml`;
  }
  if (typeof ns.idFromName !== "function") return `binding "${name}" is not a Durable Object namespace`;
  return null;
}

/** Builds and checks the config from env. Pure apart from reading env; see `loadConfig` for the cache. */
export function buildConfig(rawEnv: Record<string, unknown>): ConfigResult {
  const { env, errors: sizeErrors, warnings: sizeWarnings } = sizeConfig(rawEnv);
  const errors: ConfigError[] = [...sizeErrors];
  const secrets = new SecretBook();
  if (typeof env.ADMIN_TOKEN === "string") secrets.add("ADMIN_TOKEN", env.ADMIN_TOKEN);
  const delivery = readDelivery(env, errors);
  const globalScrub = parseScrubConfig(env.SCRUB, env, "SCRUB", secrets);
  errors.push(...globalScrub.errors);
  const scrubber = scrubberOf(globalScrub.config ?? DEFAULT_SCRUB);
  const limits = parseLimitsConfig(env.LIMITS, "LIMITS");
  errors.push(...limits.errors);
  const sinks: ResolvedSink[] = [];
  const rawSinks = readList("SINKS", env.SINKS, errors, '[{"name":"all","type":"r2","binding":"LOGS"}]');
  if (rawSinks === null && errors.length === 0) {
    errors.push({
      variable: "SINKS",
      path: "",
      message:
        'is not set; tailfan needs at least one sink, e.g. SINKS = [{ name = "archive", type = "r2", binding = "LOGS_R2" }] in [vars]',
    });
  }
  const seen = new Map<string, number>();
  for (const [i, raw] of (rawSinks ?? []).entries()) {
    const at = `[${i}]`;
    const head = v.safeParse(sinkHead, raw);
    if (!head.success) {
      errors.push(...issuesToErrors("SINKS", at, head.issues));
      continue;
    }
    const { name, type } = head.output;
    const prior = seen.get(name);
    if (prior !== undefined) {
      errors.push({
        variable: "SINKS",
        path: `${at}.name`,
        message: `duplicate sink name "${name}" (also SINKS[${prior}].name); names must be unique`,
      });
      continue;
    }
    seen.set(name, i);
    const definition = SINK_TYPES[type];
    if (!definition) {
      errors.push({
        variable: "SINKS",
        path: `${at}.type`,
        message: `unknown sink type "${type}"; known types: ${Object.keys(SINK_TYPES).join(", ")}`,
      });
      continue;
    }
    const publicOptions: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(raw as Record<string, unknown>)) if (!RESERVED.has(k)) publicOptions[k] = x;
    // A credential the user did not set reads the sink type's usual secret (DD_API_KEY, ...) when it exists;
    // when it does not, the option stays unset, and a sink that needs it says which secret to put.
    const defaulted = new Map<string, string>();
    for (const [option, secret] of Object.entries(definition.defaultSecrets ?? {})) {
      if (publicOptions[option] !== undefined) continue;
      defaulted.set(option, secret);
      if (typeof env[secret] === "string") publicOptions[option] = `\${${secret}}`;
    }
    const before = errors.length;
    const resolved = resolveRefs(publicOptions, at, { variable: "SINKS", env, errors, secrets });
    if (errors.length > before) continue;
    const parsed = v.safeParse(definition.options, resolved);
    if (!parsed.success) {
      const known = optionKeys(definition);
      for (const error of issuesToErrors("SINKS", at, parsed.issues, known)) {
        const secret = defaulted.get(error.path.slice(at.length + 1));
        if (secret !== undefined && error.message === "is required") {
          error.message = `is required: set the secret ${secret} (\`npx wrangler secret put ${secret}\`, or .dev.vars for local dev), or set this option`;
        }
        errors.push(error);
      }
      continue;
    }
    for (const ref of definition.bindings?.(parsed.output) ?? []) {
      const problem = checkBinding(env, ref.name, ref.kind);
      if (problem) errors.push({ variable: "SINKS", path: `${at}.${ref.option}`, message: problem });
    }
    const filter: FilterSpec = {};
    for (const key of FILTER_KEYS) {
      const x = head.output[key];
      if (x !== undefined) (filter as Record<string, unknown>)[key] = x;
    }
    let sinkScrubber: Scrubber | null | undefined;
    const rawScrub = (raw as Record<string, unknown>).scrub;
    if (rawScrub !== undefined) {
      const scrub = parseScrubConfig(rawScrub, env, "SINKS", secrets);
      if (scrub.errors.length > 0) {
        for (const e of scrub.errors) errors.push({ ...e, path: `${at}.scrub${e.path}` });
        continue;
      }
      sinkScrubber = scrubberOf(scrub.config);
    }
    sinks.push({
      name,
      type,
      definition,
      ...(sinkScrubber === undefined ? {} : { scrubber: sinkScrubber }),
      options: parsed.output,
      publicOptions,
      filter,
      accepts: compileFilter(filter),
      batch: definition.batch(parsed.output),
      unredacted: head.output.unredacted === true,
    });
  }

  let routes: ResolvedConfig["routes"] = null;
  const warnings: string[] = [...sizeWarnings];
  const rawRoutes = readList("ROUTES", env.ROUTES, errors, '[{"sinks":["all"]}]');
  if (rawRoutes !== null) {
    routes = [];
    const routed = new Set<string>();
    for (const [i, raw] of rawRoutes.entries()) {
      const parsed = v.safeParse(routeSchema, raw);
      if (!parsed.success) {
        errors.push(...issuesToErrors("ROUTES", `[${i}]`, parsed.issues, ["sinks", ...FILTER_KEYS]));
        continue;
      }
      const { sinks: names, ...filter } = parsed.output;
      names.forEach((n, j) => {
        routed.add(n);
        if (!seen.has(n)) {
          errors.push({
            variable: "ROUTES",
            path: `[${i}].sinks${parsed.output.sinks.length > 1 || Array.isArray((raw as { sinks?: unknown }).sinks) ? `[${j}]` : ""}`,
            message: `no sink named "${n}"; sinks are: ${[...seen.keys()].join(", ") || "(none)"}`,
          });
        }
      });
      routes.push({ sinks: names, filter, matches: compileFilter(filter) });
    }
    for (const s of sinks)
      if (!routed.has(s.name)) warnings.push(`sink "${s.name}" is named by no route, so it receives nothing`);
  }

  if (delivery.mode === "buffered") {
    sinks.forEach((sink) => {
      const at = `[${seen.get(sink.name)}]`;
      if (sink.unredacted) {
        errors.push({
          variable: "SINKS",
          path: `${at}.unredacted`,
          message: 'needs DELIVERY.mode = "direct": buffered messages carry the records as the runtime redacted them',
        });
      }
      if (sink.scrubber !== undefined) {
        errors.push({
          variable: "SINKS",
          path: `${at}.scrub`,
          message: 'needs DELIVERY.mode = "direct": buffered messages carry the records scrubbed by the global SCRUB',
        });
      }
    });
  }

  if (errors.length > 0) return { ok: false, errors: withoutSecrets(errors, secrets) };
  const masker = reasonScrubber(globalScrub.config);
  const redact = (text: string) => maskText(secrets.redact(text), masker);
  for (const sink of sinks) sink.definition = redacting(sink.definition, redact);
  return {
    ok: true,
    config: {
      secrets,
      redact,
      limits: limits.config,
      scrubber,
      selfName: typeof env.SELF_NAME === "string" && env.SELF_NAME !== "" ? env.SELF_NAME : "tailfan",
      delivery,
      sinks,
      routes,
      warnings,
      table: {
        sinks: sinks.map((s) => ({ name: s.name, accepts: s.accepts })),
        routes: routes?.map((r) => ({ sinks: r.sinks, matches: r.matches })) ?? null,
      },
    },
  };
}

/**
 * The sink type with every failure reason its sinks give passed through
 * `redact`: a backend's error body may quote the credentials it was sent.
 * The one place reasons enter tailfan, so logs, counters, /status, the
 * dashboard and dead letters all see the redacted text.
 */
function redacting(definition: AnySinkDefinition, redact: (text: string) => string): AnySinkDefinition {
  const message = (err: unknown) => redact(err instanceof Error ? err.message : String(err));
  return {
    ...definition,
    create(options, ctx) {
      const sink = definition.create(options, ctx);
      return {
        encode(batch) {
          try {
            return sink.encode(batch);
          } catch (err) {
            throw new Error(message(err));
          }
        },
        async send(payload, signal): Promise<SendResult> {
          let result: SendResult;
          try {
            result = await sink.send(payload, signal);
          } catch (err) {
            return { outcome: "fail", reason: `sink threw: ${message(err)}` };
          }
          // Anything but a failure with a reason passes as it came: the core judges a malformed result itself.
          if (typeof result !== "object" || result === null || result.outcome === "ok") return result;
          return typeof result.reason === "string" ? { ...result, reason: redact(result.reason) } : result;
        },
      };
    },
  };
}

function optionKeys(definition: AnySinkDefinition): string[] | undefined {
  const entries = (definition.options as { entries?: Record<string, unknown> }).entries;
  return entries ? Object.keys(entries) : undefined;
}

function scrubberOf(config: ScrubConfig | null): Scrubber | null {
  if (config === null || config.enabled === false) return null;
  return compileScrubber(config);
}

let cache: { key: string; result: ConfigResult } | undefined;

function cacheKey(env: Record<string, unknown>): string {
  const part = (x: unknown) => (typeof x === "string" ? x : (JSON.stringify(x) ?? ""));
  return `${part(env.SINKS)}\u0000${part(env.ROUTES)}\u0000${part(env.DELIVERY)}\u0000${part(env.SELF_NAME)}\u0000${part(env.SCRUB)}\u0000${part(env.LIMITS)}\u0000${partsKey(env)}`;
}

/**
 * The config for this isolate: built on first use and whenever the raw
 * SINKS/ROUTES values change, otherwise served from memory.
 */
export function loadConfig(env: Record<string, unknown>): ConfigResult {
  const key = cacheKey(env);
  if (cache?.key === key) return cache.result;
  const result = buildConfig(env);
  cache = { key, result };
  return result;
}
