import { Hono } from "hono";
import { type ConfigResult, formatConfigErrors, loadConfig } from "./config";
import { VERSION } from "./version";

type Bindings = Record<string, unknown>;

/** The config as it is safe to show: options as written, secrets as `${NAME}`. */
export function configSummary(result: ConfigResult) {
  if (!result.ok) {
    return { valid: false as const, errors: result.errors, message: formatConfigErrors(result.errors) };
  }
  const { config } = result;
  return {
    valid: true as const,
    sinks: config.sinks.map((s) => ({ name: s.name, type: s.type, options: s.publicOptions, filter: s.filter })),
    routes: config.routes?.map((r) => ({ sinks: r.sinks, filter: r.filter })) ?? null,
    warnings: config.warnings,
  };
}

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
    const { sinks, warnings } = result.config;
    return c.json({
      name: "tailfan",
      version: VERSION,
      ok: true,
      sinks: sinks.map((s) => ({ name: s.name, type: s.type })),
      routes: result.config.routes?.length ?? null,
      warnings,
    });
  });

  app.notFound((c) => c.json({ error: "not found", hint: "GET /health" }, 404));
  app.onError((err, c) => {
    console.error("tailfan: request failed", err);
    return c.json({ error: "internal error" }, 500);
  });
  return app;
}
