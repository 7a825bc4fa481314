/**
 * Configuration from env vars: SINKS, ROUTES, DELIVERY, SCRUB, LIMITS in, a
 * checked ResolvedConfig out, built once per isolate. Every mistake becomes
 * one ConfigError that names the variable, the path inside it and what was
 * expected. Each var has its reader beside it (sinks.ts, routes.ts,
 * delivery.ts; SCRUB and LIMITS with their own code), check.ts checks them
 * against each other.
 */
import { SINK_TYPES } from "../../sinks/index";
import type { ConfigError } from "../issues";
import { type LimitsConfig, parseLimitsConfig } from "../limits";
import type { RoutingTable } from "../router";
import { DEFAULT_SCRUB, maskText, parseScrubConfig, reasonScrubber, type Scrubber } from "../scrub";
import { checkBufferedSinks, unroutedSinks } from "./check";
import { type DeliveryConfig, readDelivery } from "./delivery";
import { SecretBook, withoutSecrets } from "./env";
import { redacting } from "./redact";
import { type ResolvedRoute, readRoutes } from "./routes";
import { type ResolvedSink, readSinks, type SinkRegistry, scrubberOf } from "./sinks";
import { partsKey, sizeConfig, varText } from "./size";
import { CONFIG_VARS, type ConfigVar } from "./vars";

export type { ConfigError } from "../issues";
export { DEFAULT_DELIVERY, DEFAULT_DELIVERY_CONFIG, type DeliveryConfig, deliveryOptions } from "./delivery";
export type { ResolvedRoute } from "./routes";
export type { ResolvedSink, SinkRegistry } from "./sinks";
export { CONFIG_VARS } from "./vars";

export interface ResolvedConfig {
  /** Size limits per record (LIMITS). */
  limits: LimitsConfig;
  /** The global scrubbing (SCRUB, on by default); null when turned off. */
  scrubber: Scrubber | null;
  /** This Worker's own script name: TraceItems from it are dropped, so tailfan never tails itself in a loop. */
  selfName: string;
  delivery: DeliveryConfig;
  sinks: ResolvedSink[];
  routes: ResolvedRoute[] | null;
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
    sinks: config.sinks.map((s) => ({
      name: s.name,
      type: s.type,
      options: s.publicOptions,
      filter: s.filter,
      ...(s.shape ? { shape: s.shape.spec } : {}),
    })),
    routes: config.routes?.map((r) => ({ sinks: r.sinks, filter: r.filter })) ?? null,
    warnings: config.warnings,
  };
}

/** Formats errors as lines like `SINKS[0].url: must be an absolute http(s) URL`. */
export function formatConfigErrors(errors: readonly ConfigError[]): string {
  return errors.map((e) => `${e.variable}${e.path}: ${e.message}`).join("\n");
}

/**
 * Builds and checks the config from env, with the sink types of `registry`.
 * Pure apart from reading env; see `loadConfig` for the cache.
 */
export function buildConfig(rawEnv: Record<string, unknown>, registry: SinkRegistry = SINK_TYPES): ConfigResult {
  const { env, errors, warnings } = sizeConfig(rawEnv);
  const vars = {} as Record<ConfigVar, unknown>;
  for (const name of CONFIG_VARS) vars[name] = env[name];
  const secrets = new SecretBook();
  if (typeof env.ADMIN_TOKEN === "string") secrets.add("ADMIN_TOKEN", env.ADMIN_TOKEN);
  const delivery = readDelivery(vars.DELIVERY, env, errors);
  const globalScrub = parseScrubConfig(vars.SCRUB, env, "SCRUB", secrets);
  errors.push(...globalScrub.errors);
  const limits = parseLimitsConfig(vars.LIMITS, "LIMITS");
  errors.push(...limits.errors);
  const { sinks, seen } = readSinks(vars.SINKS, { env, registry, errors, secrets });
  const routes = readRoutes(vars.ROUTES, seen, errors);
  warnings.push(...unroutedSinks(sinks, routes));
  checkBufferedSinks(delivery, sinks, seen, errors);
  if (errors.length > 0) return { ok: false, errors: withoutSecrets(errors, secrets) };

  const masker = reasonScrubber(globalScrub.config);
  const redact = (text: string) => maskText(secrets.redact(text), masker);
  for (const sink of sinks) sink.definition = redacting(sink.definition, redact);
  const selfName = typeof vars.SELF_NAME === "string" && vars.SELF_NAME !== "" ? vars.SELF_NAME : "tailfan";
  const config: ResolvedConfig = {
    secrets,
    redact,
    limits: limits.config,
    scrubber: scrubberOf(globalScrub.config ?? DEFAULT_SCRUB),
    selfName,
    delivery,
    sinks,
    routes,
    warnings,
    table: {
      sinks: sinks.map((s) => ({ name: s.name, accepts: s.accepts, unsampled: s.unsampled })),
      routes: routes?.map((r) => ({ sinks: r.sinks, matches: r.matches, unsampled: r.unsampled })) ?? null,
    },
  };
  return { ok: true, config };
}

let cache: { key: string; env: Record<string, unknown>; result: ConfigResult } | undefined;

/** What the config was built from: a changed config var or numbered part must rebuild it. */
function cacheKey(env: Record<string, unknown>): string {
  return [...CONFIG_VARS.map((name) => varText(env[name])), partsKey(env)].join("\u0000");
}

/**
 * The config for this isolate: built on first use and whenever a raw config
 * var (CONFIG_VARS, or a numbered part) changes, otherwise served from memory.
 */
export function loadConfig(env: Record<string, unknown>): ConfigResult {
  // The runtime hands an isolate the same env object each time: then nothing needs serializing to compare.
  if (cache?.env === env) return cache.result;
  const key = cacheKey(env);
  if (cache?.key === key) {
    cache.env = env;
    return cache.result;
  }
  const result = buildConfig(env);
  cache = { key, env, result };
  return result;
}
