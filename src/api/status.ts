/** GET /health (open, says only whether the config is valid) and GET /status (counters per sink, behind the token). */
import type { Context } from "hono";
import { formatConfigErrors, loadConfig, summarizeConfig } from "../config";
import { hasLoginLimiter, LOGIN_LIMITER } from "../dashboard/session";
import { counterFlushFailures, statsStub } from "../stats";
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
  const stub = delivery.stats === null ? null : statsStub(c.env, delivery.stats);
  let unavailable: string | null = null;
  const [sinks, errors] =
    stub === null
      ? [null, null]
      : await Promise.all([stub.snapshot(window), stub.errors(20)]).catch((err: unknown) => {
          // The counters object failing must not take /status down with it.
          unavailable = err instanceof Error ? err.message : String(err);
          return [null, null];
        });
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
      stub === null
        ? "not kept: set DELIVERY.stats to a TailfanStats Durable Object binding"
        : unavailable === null
          ? "kept"
          : `unavailable: ${unavailable}`,
    // Counters writes this isolate could not make (the object threw or did not answer in time).
    ...(stub === null ? {} : { counterWrites: counterFlushFailures() }),
    sinks,
    errors,
    config: { valid: true, ...summarizeConfig(result.config) },
  });
}
