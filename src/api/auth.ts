/** The admin-token gate in front of everything but /health and the login form. */
import type { MiddlewareHandler } from "hono";
import { loginPage, setupPage } from "../dashboard/routes";
import {
  clientIp,
  countFailure,
  lockedOut,
  readSession,
  sameSecret,
  TOO_MANY,
  validSession,
} from "../dashboard/session";

/**
 * Unless ADMIN_TOKEN is set the closed routes do not exist; then they open
 * only with it, as a bearer token, or, for GET requests from the dashboard,
 * as a login session cookie.
 */
export const adminGate: MiddlewareHandler<{ Bindings: Record<string, unknown> }> = async (c, next) => {
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
};
