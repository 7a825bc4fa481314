/** GET /health (open, says only whether the config is valid) and GET /status (counters per sink, behind the token). */
import type { Context } from "hono";
import { formatConfigErrors, loadConfig, summarizeConfig } from "../config";
import { hasLoginLimiter, LOGIN_LIMITER } from "../dashboard/session";
import { counterFlushFailures, countersExactness, missingText, readCounters, unavailableText } from "../stats";
import { VERSION } from "../version";

type Ctx = Context<{ Bindings: Record<string, unknown> }>;

/** Minimal and unauthenticated: whether the config is valid, never option values. */
export function health(c: Ctx): Response {
  const result = loadConfig(c.env);
  if (!result.ok) {
    return c.json(
      {
        name: "tailfan",
        version: VERSION,
        ok: false,
        errors: result.errors,
        message: formatConfigErrors(result.errors),
      },
      503,
    );
  }
  const { sinks } = result.config;
  const warnings = [...result.config.warnings];
  if (typeof c.env.ADMIN_TOKEN === "string" && c.env.ADMIN_TOKEN !== "" && !hasLoginLimiter(c.env)) {
    warnings.push(
      `no ${LOGIN_LIMITER} binding: failed logins and bearer tokens are not rate limited; add [[ratelimits]] name = "${LOGIN_LIMITER}" to wrangler.toml`,
    );
  }
  return c.json({
    name: "tailfan",
    version: VERSION,
    ok: true,
    sinks: sinks.map((s) => ({ name: s.name, type: s.type })),
    routes: result.config.routes?.length ?? null,
    warnings,
  });
}

/** Counters per sink, the delivery settings and the config summary. */
export async function status(c: Ctx): Promise<Response> {
  const result = loadConfig(c.env);
  if (!result.ok) return c.json({ ok: false, errors: result.errors }, 503);
  const { delivery } = result.config;
  const window = Math.min(Math.max(Number(c.req.query("minutes") ?? 60) || 60, 1), 7 * 24 * 60);
  const read =
    delivery.stats === null
      ? null
      : await readCounters(c.env, delivery.stats, delivery.statsShards, window, 20).catch(
          // Reads already settle per shard; this is for the unexpected, which must not take /status down.
          (err: unknown) => ({
            sinks: null,
            errors: null,
            missing: [{ shard: -1, error: err instanceof Error ? err.message : String(err) }],
          }),
        );
  const sinks = read?.sinks ?? null;
  const writes = counterFlushFailures();
  return c.json({
    ok: true,
    version: VERSION,
    delivery: {
      mode: delivery.mode,
      durable: delivery.queue !== null,
      retries: delivery.retries,
      deadLetter: delivery.deadLetter !== null,
    },
    counters:
      read === null
        ? "not kept: set DELIVERY.stats to a TailfanStats Durable Object binding"
        : sinks === null
          ? `unavailable: ${unavailableText(read.missing)}`
          : read.missing.length > 0
            ? `incomplete: ${missingText(read.missing, delivery.statsShards)}`
            : "kept",
    // Counters writes this isolate could not make (the object threw or did not answer in time).
    ...(read === null ? {} : { counterWrites: writes }),
    ...(read === null ? {} : { countersExact: countersExactness(read.missing, sinks, writes) }),
    sinks,
    errors: read?.errors ?? null,
    config: { valid: true, ...summarizeConfig(result.config) },
  });
}
