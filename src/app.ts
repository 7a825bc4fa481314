import { Hono } from "hono/tiny";
import { apiErrorResponse, registerApi } from "./api";
import { adminGate } from "./api/auth";
import { health, status } from "./api/status";
import { loadConfig } from "./config";
import { registerDashboard } from "./dashboard/routes";

type Bindings = Record<string, unknown>;

export function createApp() {
  const app = new Hono<{ Bindings: Bindings }>();
  app.get("/health", health);
  app.use("*", adminGate);
  app.get("/status", status);
  registerApi(app);
  registerDashboard(app);
  app.notFound((c) => c.json({ error: "not found", hint: "GET /health" }, 404));
  // A refusal thrown by a route (`refuse`) is answered with its status and message. Anything else is the last
  // resort, never the plan: not the caller's fault to fix by retrying the same request, but no reason for a 500.
  app.onError((err, c) => {
    const refused = apiErrorResponse(err, c);
    if (refused) return refused;
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
