import { Hono } from "hono/tiny";
import { registerApi } from "./api";
import { formatConfigErrors, loadConfig, summarizeConfig } from "./config";
import { loginPage, registerDashboard, setupPage } from "./dashboard/routes";
import {
  clientIp,
  countFailure,
  hasLoginLimiter,
  LOGIN_LIMITER,
  lockedOut,
  readSession,
  sameSecret,
  TOO_MANY,
  validSession,
} from "./dashboard/session";
import { counterFlushFailures, statsStub } from "./stats";
import { VERSION } from "./version";

type Bindings = Record<string, unknown>;

export function createApp() {
  const app = new Hono<{ Bindings: Bindings }>();

  // Minimal and unauthenticated: whether the config is valid, never option values.
  app.get("/health", (c) => {
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
  });

  // Everything but /health (and the login form) is closed: unless ADMIN_TOKEN is set it does not exist, and then
  // only with it, as a bearer token, or, for GET requests from the dashboard, as a login session cookie.
  app.use("*", async (c, next) => {
    const path = c.req.path;
    if (path === "/health" || path === "/login" || path === "/logout" || path === "/favicon.svg") return next();
    const page = path === "/" && c.req.method === "GET";
    const token = c.env.ADMIN_TOKEN;
    if (typeof token !== "string" || token === "") {
      if (page) return setupPage(c);
      return c.json(
        {
          error: "not found",
          hint: "set the secret ADMIN_TOKEN to enable the API (npx wrangler secret put ADMIN_TOKEN)",
        },
        404,
      );
    }
    const bearer = /^Bearer (.+)$/.exec(c.req.header("authorization") ?? "")?.[1];
    if (bearer !== undefined) {
      // A locked-out IP is refused before its token is compared, so the right guess looks like every other.
      const ip = clientIp(c.req.raw.headers);
      if (lockedOut(ip)) return c.json(TOO_MANY.body, 429, TOO_MANY.headers);
      if (await sameSecret(bearer, token)) return next();
      if (await countFailure(c.env, ip)) return c.json(TOO_MANY.body, 429, TOO_MANY.headers);
    }
    // The session cookie opens reads only: the API's POSTs need the bearer token, whatever the browser sends.
    const session = c.req.method === "GET" ? readSession(c.req.header("cookie")) : null;
    if (session !== null && (await validSession(session, token))) return next();
    if (page) return loginPage(c, session === null ? undefined : "Your session has expired; log in again.");
    return c.json({ error: "unauthorized", hint: "send Authorization: Bearer <ADMIN_TOKEN>" }, 401);
  });

  // Counters per sink.
  app.get("/status", async (c) => {
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
  });

  registerApi(app);
  registerDashboard(app);
  app.notFound((c) => c.json({ error: "not found", hint: "GET /health" }, 404));
  // The last resort, never the plan: every route answers its own errors. Whatever slips through is not the
  // caller's fault to fix by retrying the same request, but it is no reason for a 500 either.
  app.onError((err, c) => {
    const loaded = loadConfig(c.env);
    const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    console.error(
      `tailfan: ${c.req.method} ${c.req.path} failed: ${loaded.ok ? loaded.config.redact(why) : err instanceof Error ? err.name : typeof err}`,
    );
    return c.json(
      { error: "the request could not be handled", hint: "check the request's size and shape; GET /health" },
      503,
    );
  });
  return app;
}
