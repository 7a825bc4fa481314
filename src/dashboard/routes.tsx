/**
 * GET / (the dashboard), GET /records (its latest records as JSON), and the
 * login form's POST /login and POST /logout. The admin-token middleware in
 * app.ts guards GET / and GET /records; /login and /logout are open.
 */
import type { Context, Hono } from "hono";
import type { JSX } from "hono/jsx/jsx-runtime";
import { formatConfigErrors, loadConfig, type ResolvedConfig, summarizeConfig } from "../config";
import { LEVELS, RECORD_TYPES } from "../record";
import {
  counterFlushFailures,
  ERRORS_KEPT,
  missingText,
  type RecentAnswer,
  type RecentQuery,
  readCounters,
  readRecentRecords,
  type SinkError,
  type SinkStats,
  unavailableText,
} from "../stats";
import { VERSION } from "../version";
import {
  type DashboardData,
  DashboardPage,
  FAVICON_SVG,
  LIVE_SCRIPT,
  LoginPage,
  NO_SCRIPT,
  REFRESHES,
  RecordsPanel,
  SetupPage,
  WINDOWS,
} from "./page";
import {
  clientIp,
  countFailure,
  LOGIN_PERIOD_SECONDS,
  lockedOut,
  newSession,
  SESSION_COOKIE,
  sameSecret,
  sessionCookie,
  TOO_MANY,
} from "./session";

type Env = { Bindings: Record<string, unknown> };
type Ctx = Context<Env>;

const CSP =
  "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The dashboard's page headers: never cached, never framed, no script at all. */
export const PAGE_HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "content-security-policy": CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** The live view's page: the same, plus tailfan's own script and its fetches to tailfan, nothing else. */
export const LIVE_PAGE_HEADERS: Record<string, string> = {
  ...PAGE_HEADERS,
  "content-security-policy": `${CSP}; script-src 'self'; connect-src 'self'`,
};

/** A whole HTML document: the doctype, then the page (standards mode, not quirks). */
async function page(
  c: Ctx,
  node: JSX.Element,
  status: 200 | 401 | 404 | 429,
  headers: Record<string, string> = {},
  live = false,
): Promise<Response> {
  return c.html(`<!DOCTYPE html>${await node}`, status, { ...(live ? LIVE_PAGE_HEADERS : PAGE_HEADERS), ...headers });
}

export function loginPage(c: Ctx, error?: string, status: 200 | 401 | 429 = 401): Promise<Response> {
  return page(c, <LoginPage error={error} />, status, status === 429 ? TOO_MANY.headers : {});
}

export function setupPage(c: Ctx): Promise<Response> {
  return page(c, <SetupPage />, 404);
}

function pick(value: string | undefined, allowed: readonly string[]): string {
  return value !== undefined && allowed.includes(value) ? value : "";
}

/** The record filters of a query string; unknown values are ignored, not errors. */
function recentQuery(c: Ctx): RecentQuery & { limit: number } {
  const script = (c.req.query("script") ?? "").slice(0, 200);
  const outcome = (c.req.query("outcome") ?? "").slice(0, 64);
  const q: RecentQuery & { limit: number } = {
    limit: Math.min(Math.max(Number(c.req.query("limit") ?? 50) || 50, 1), 500),
  };
  const level = pick(c.req.query("level"), LEVELS);
  const type = pick(c.req.query("type"), RECORD_TYPES);
  if (level) q.level = level;
  if (type) q.type = type;
  if (outcome) q.outcome = outcome;
  if (script) q.script = script === NO_SCRIPT ? "" : script;
  return q;
}

async function readRecent(env: Record<string, unknown>, config: ResolvedConfig | null, q: RecentQuery) {
  if (!config || config.delivery.stats === null || config.delivery.recent === 0) return null;
  return readRecentRecords(env, config.delivery.stats, config.delivery.statsShards, q);
}

/** POST /login: a right token gets a session cookie; wrong ones count towards the lockout. */
async function login(c: Ctx): Promise<Response> {
  const token = c.env.ADMIN_TOKEN;
  if (typeof token !== "string" || token === "") return setupPage(c);
  const ip = clientIp(c.req.raw.headers);
  const tooMany = `Too many failed logins from your address: wait ${LOGIN_PERIOD_SECONDS} seconds.`;
  if (lockedOut(ip)) return loginPage(c, tooMany, 429);
  if (Number(c.req.header("content-length") ?? 0) > 4096) return loginPage(c, "That is not a token.", 401);
  let given = "";
  try {
    const form = await c.req.formData();
    const value = form.get("token");
    given = typeof value === "string" ? value.trim() : "";
  } catch {
    // A body that is not a form is a wrong token.
  }
  if (given === "" || !(await sameSecret(given, token))) {
    if (await countFailure(c.env, ip)) return loginPage(c, tooMany, 429);
    return loginPage(c, "Wrong token: use the value of the ADMIN_TOKEN secret.");
  }
  return c.body(null, 303, { location: "/", "set-cookie": sessionCookie(await newSession(token)) });
}

/** GET /records: the latest records as JSON. */
async function records(c: Ctx): Promise<Response> {
  const loaded = loadConfig(c.env);
  let recent: RecentAnswer | null;
  try {
    recent = await readRecent(c.env, loaded.ok ? loaded.config : null, recentQuery(c));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return c.json({ error: `the counters object is unavailable: ${reason}` }, 503);
  }
  if (recent === null) {
    return c.json(
      {
        error: "records are not kept",
        hint: "set DELIVERY.stats to a TailfanStats Durable Object binding and DELIVERY.recent above 0",
      },
      404,
    );
  }
  return c.json(recent);
}

/** The dashboard's choices in the query string: chart window, refresh, live view and the record filters. */
function pageQuery(c: Ctx) {
  const oneOf = (name: string, allowed: number[], fallback: number) => {
    const n = Number(c.req.query(name));
    return allowed.includes(n) ? n : fallback;
  };
  return {
    windowMinutes: oneOf("window", WINDOWS, 60),
    refresh: oneOf("refresh", REFRESHES, 0),
    live: c.req.query("live") === "1",
    q: recentQuery(c),
  };
}

/** What the counters object holds for the page; an error instead when it throws or hangs. */
async function countersOf(c: Ctx, config: ResolvedConfig | null, windowMinutes: number, q: RecentQuery) {
  let stats: SinkStats[] | null = null;
  let recent: RecentAnswer | null = null;
  let errors: SinkError[] = [];
  let error: string | null = null;
  let missing: string | null = null;
  if (config && config.delivery.stats !== null) {
    const { stats: binding, statsShards } = config.delivery;
    // All errors that are kept, so that repeats group into one row with their count.
    const [counters, records] = await Promise.all([
      readCounters(c.env, binding, statsShards, windowMinutes, ERRORS_KEPT),
      readRecent(c.env, config, q).catch(() => null),
    ]);
    // The page still answers when the counters objects throw or hang, and says so.
    if (counters.sinks === null) error = unavailableText(counters.missing);
    else if (counters.missing.length > 0) missing = missingText(counters.missing, statsShards);
    stats = counters.sinks;
    errors = counters.errors ?? [];
    recent = records;
  }
  return { stats, recent, errors, error, missing };
}

/** GET /: the dashboard, or (`part=records`) the live view's records panel alone. */
async function dashboard(c: Ctx): Promise<Response> {
  const loaded = loadConfig(c.env);
  const config = loaded.ok ? loaded.config : null;
  const { windowMinutes, refresh, live, q } = pageQuery(c);
  if (c.req.query("part") === "records") {
    // The live view's reload: the records panel alone, rendered as on the page.
    let recent: RecentAnswer | null;
    try {
      recent = await readRecent(c.env, config, q);
    } catch (err) {
      // Every counters object failed: the panel says so instead of answering 500.
      return c.text(
        `the counters objects are unavailable: ${err instanceof Error ? err.message : String(err)}`,
        503,
        PAGE_HEADERS,
      );
    }
    if (recent === null) return c.text("records are not kept", 404, PAGE_HEADERS);
    return c.html(await (<RecordsPanel recent={recent} live={live} />), 200, PAGE_HEADERS);
  }
  const { stats, recent, errors, error, missing } = await countersOf(c, config, windowMinutes, q);
  const data: DashboardData = {
    version: VERSION,
    now: Date.now(),
    windowMinutes,
    delivery: {
      mode: config?.delivery.mode ?? "direct",
      durable: config ? config.delivery.queue !== null : false,
      deadLetter: config ? config.delivery.deadLetter !== null : false,
      counters: stats !== null,
    },
    configErrors: loaded.ok ? null : formatConfigErrors(loaded.errors).split("\n"),
    ...(config ? summarizeConfig(config) : { sinks: [], routes: null, warnings: [] }),
    stats,
    errors,
    recent,
    counters: { error, missing, writes: counterFlushFailures() },
    query: {
      level: q.level ?? "",
      outcome: q.outcome ?? "",
      script: q.script === undefined ? "" : q.script === "" ? NO_SCRIPT : q.script,
      type: q.type ?? "",
      limit: q.limit,
      refresh,
      live,
    },
  };
  return page(c, <DashboardPage data={data} />, 200, {}, live && recent !== null);
}

export function registerDashboard(app: Hono<Env>): void {
  app.post("/login", login);

  // Open, like /login, so that the login page has its icon too.
  app.get("/favicon.svg", (c) =>
    c.body(FAVICON_SVG, 200, { "content-type": "image/svg+xml", "cache-control": "public, max-age=86400" }),
  );

  app.get("/dashboard.js", (c) =>
    c.body(LIVE_SCRIPT, 200, {
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    }),
  );

  app.post("/logout", (c) =>
    c.body(null, 303, {
      location: "/",
      "set-cookie": `${SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict`,
    }),
  );

  app.get("/records", records);
  app.get("/", dashboard);
}
