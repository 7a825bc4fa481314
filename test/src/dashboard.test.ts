/**
 * The dashboard: its login session, access rules, and the page built from a
 * real tail() run (counters and latest records in the real stats Durable
 * Object); the health, chart and filter wording it is made of.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app";
import { chartSeries, groupErrors, sinkHealth } from "../../src/dashboard/model";
import {
  newSession,
  readSession,
  SESSION_COOKIE,
  SESSION_SECONDS,
  sessionCookie,
  validSession,
} from "../../src/dashboard/session";
import { describeFilter } from "../../src/filter";
import worker from "../../src/index";
import { type Counts, type RecentAnswer, type SinkStats, zeroCounts } from "../../src/stats";
import { receiverUrl, traceItem, uid } from "../sinks/helpers";
import { STATS_AT_ONCE } from "../support/stats";

const vars = env as unknown as Record<string, unknown>;
const app = createApp();
const base = receiverUrl();
const ADMIN = "dashboard-admin-7c2e41";

beforeEach(() => {
  vi.spyOn(console, "error").mockImplementation(() => {});
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

function request(environment: Record<string, unknown>, path: string, init: RequestInit = {}) {
  return app.request(path, init, environment);
}

async function login(environment: Record<string, unknown>, token = ADMIN): Promise<Response> {
  const body = new FormData();
  body.set("token", token);
  return request(environment, "/login", { method: "POST", body });
}

async function cookieFor(environment: Record<string, unknown>): Promise<string> {
  const res = await login(environment);
  const value = readSession(res.headers.get("set-cookie")?.split(";")[0]);
  if (!value) throw new Error("no session cookie");
  return `${SESSION_COOKIE}=${value}`;
}

/** The rows of the latest-records table, as their data attributes. */
function recordRows(html: string) {
  return [
    ...html.matchAll(/<tr data-level="([^"]*)" data-outcome="([^"]*)" data-type="([^"]*)" data-script="([^"]*)">/g),
  ].map((m) => ({ level: m[1], outcome: m[2], type: m[3], script: m[4] }));
}

/** Tails the items through the real worker with these sinks; counters and latest records land in TAILFAN_STATS. */
async function tail(environment: Record<string, unknown>, items: Record<string, unknown>[]) {
  const ctx = createExecutionContext();
  worker.tail(items as unknown as TraceItem[], environment as never, ctx);
  await waitOnExecutionContext(ctx);
}

function envWith(sinks: unknown[], extra: Record<string, unknown> = {}, delivery: Record<string, unknown> = {}) {
  return {
    ...vars,
    ADMIN_TOKEN: ADMIN,
    SINKS: JSON.stringify(sinks),
    DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", ...STATS_AT_ONCE, ...delivery }),
    ...extra,
  };
}

describe("dashboard session", () => {
  it("is valid for the token that made it, until it expires", async () => {
    const now = Date.UTC(2026, 10, 21, 12);
    const value = await newSession(ADMIN, now);
    expect(value).toMatch(/^v1\.\d+\.[0-9a-f]{64}$/);
    expect(value).not.toContain(ADMIN);
    expect(await validSession(value, ADMIN, now)).toBe(true);
    expect(await validSession(value, ADMIN, now + (SESSION_SECONDS - 1) * 1000)).toBe(true);
    expect(await validSession(value, ADMIN, now + SESSION_SECONDS * 1000)).toBe(false);
    // A rotated token ends every session.
    expect(await validSession(value, `${ADMIN}-rotated`, now)).toBe(false);
  });

  it("refuses a changed expiry, a changed signature and malformed values", async () => {
    const now = Date.UTC(2026, 10, 21, 12);
    const value = await newSession(ADMIN, now);
    const [, expiry, mac] = value.split(".");
    const later = `v1.${Number(expiry) + 3600}.${mac}`;
    const flipped = `v1.${expiry}.${(mac as string).slice(0, -1)}${(mac as string).endsWith("0") ? "1" : "0"}`;
    // An expiry further out than a session lasts is refused even with a right signature.
    const tooLong = await newSession(ADMIN, now + 2 * SESSION_SECONDS * 1000);
    for (const bad of [later, flipped, tooLong, "", "v1", `v2.${expiry}.${mac}`, `v1.${expiry}.${mac}x`, ADMIN]) {
      expect(await validSession(bad, ADMIN, now), bad).toBe(false);
    }
  });

  it("is sent as an HttpOnly, Secure, SameSite=Strict cookie and read back from a Cookie header", () => {
    const header = sessionCookie("v1.1.ab");
    expect(header).toBe(
      `${SESSION_COOKIE}=v1.1.ab; Max-Age=${SESSION_SECONDS}; Path=/; HttpOnly; Secure; SameSite=Strict`,
    );
    expect(readSession(`a=b; ${SESSION_COOKIE}=v1.1.ab; c=d`)).toBe("v1.1.ab");
    expect(readSession("a=b")).toBeNull();
    expect(readSession(undefined)).toBeNull();
  });
});

describe("dashboard access", () => {
  const environment = envWith([{ name: "archive", type: "r2", binding: "LOGS_R2", prefix: uid("dash") }]);

  it("without ADMIN_TOKEN shows how to set it, for the page and the login form alike", async () => {
    for (const res of [await request({ ...environment, ADMIN_TOKEN: "" }, "/"), await login(vars)]) {
      expect(res.status).toBe(404);
      expect(res.headers.get("content-type")).toContain("text/html");
      const html = await res.text();
      expect(html).toContain("npx wrangler secret put ADMIN_TOKEN");
      expect(html).not.toContain('id="sinks"');
    }
  });

  it("shows the login form, and nothing else, to a browser without a session", async () => {
    const res = await request(environment, "/");
    expect(res.status).toBe(401);
    const html = await res.text();
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(html).toContain('<form method="post" action="/login" id="login">');
    expect(html).not.toContain("archive");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
  });

  it("refuses a wrong token with a message, and sets no cookie", async () => {
    for (const token of ["nope", `${ADMIN}x`, "", " "]) {
      const res = await login(environment, token);
      expect(res.status, token).toBe(401);
      expect(res.headers.get("set-cookie")).toBeNull();
      expect(await res.text()).toContain("Wrong token");
    }
  });

  it("logs in with the token: a 303 to the page and a session cookie that opens it", async () => {
    const res = await login(environment);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/");
    const setCookie = res.headers.get("set-cookie") ?? "";
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; Secure/);
    expect(setCookie).toMatch(/; SameSite=Strict/);
    expect(setCookie).not.toContain(ADMIN);
    const cookie = await cookieFor(environment);
    const page = await request(environment, "/", { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('id="sinks"');
    // The same session reads the JSON endpoints too.
    expect((await request(environment, "/status", { headers: { cookie } })).status).toBe(200);
    expect((await request(environment, "/records", { headers: { cookie } })).status).toBe(200);
  });

  it("opens reads only: the API's POSTs still need the bearer token", async () => {
    const cookie = await cookieFor(environment);
    const res = await request(environment, "/replay", { method: "POST", headers: { cookie }, body: "[]" });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: "unauthorized", hint: "send Authorization: Bearer <ADMIN_TOKEN>" });
  });

  it("asks to log in again when the session is expired or made with an old token", async () => {
    const old = await newSession(ADMIN, Date.now() - (SESSION_SECONDS + 60) * 1000);
    const rotated = await newSession("the-old-token");
    for (const value of [old, rotated]) {
      const res = await request(environment, "/", { headers: { cookie: `${SESSION_COOKIE}=${value}` } });
      expect(res.status).toBe(401);
      expect(await res.text()).toContain("Your session has expired");
    }
  });

  it("logs out by clearing the cookie", async () => {
    const res = await request(environment, "/logout", { method: "POST" });
    expect(res.status).toBe(303);
    expect(res.headers.get("set-cookie")).toMatch(new RegExp(`^${SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly`));
  });
});

describe("dashboard page after a tail() run", () => {
  it("shows each sink's health, counts and chart as the counters have them", async () => {
    const good = uid("dash-good");
    const bad = uid("dash-bad");
    const script = uid("dash-script");
    const environment = envWith(
      [
        { name: good, type: "r2", binding: "LOGS_R2", prefix: good },
        { name: bad, type: "http", url: `${base}/status/400/${bad}`, types: ["exception"] },
      ],
      {},
      { deadLetter: "LOGS_R2", deadLetterPrefix: uid("dash-dl") },
    );
    await tail(environment, [
      traceItem({ script, logs: [{ level: "warn", message: ["slow"] }] }),
      traceItem({ script, outcome: "exception", exceptions: [{ name: "Error", message: "boom" }] }),
    ]);
    const headers = { authorization: `Bearer ${ADMIN}` };
    const html = await (await request(environment, "/", { headers })).text();
    const status = (await (await request(environment, "/status?minutes=60", { headers })).json()) as {
      sinks: SinkStats[];
    };
    const of = (name: string) => status.sinks.find((s) => s.sink === name) as SinkStats;
    // Two invocations, a log line each ("slow", and the helper's default), one exception.
    expect(of(good).totals.sent).toBe(5);

    const card = (name: string) => {
      const start = html.indexOf(`<div class="card" data-sink="${name}"`);
      expect(start, name).toBeGreaterThanOrEqual(0);
      const end = html.indexOf('<div class="card"', start + 1);
      return html.slice(start, end < 0 ? undefined : end);
    };
    expect(card(good)).toContain('data-health="healthy"');
    expect(card(good)).toContain(`<span data-count="sent"><b>${of(good).totals.sent}</b>sent</span>`);
    expect(card(good)).toContain(`data-series="sent" data-total="${of(good).totals.sent}"`);
    // The collector refuses for good: its one exception is dead-lettered, nothing sent, so it is failing.
    expect(card(bad)).toContain('data-health="failing"');
    expect(card(bad)).toContain('<span data-count="deadLettered"><b>1</b>dead-lettered</span>');
    expect(card(bad)).toContain('data-series="deadLettered" data-total="1"');
    expect(card(bad)).toContain('data-series="sent" data-total="0"');
    // ...and its error is listed under Recent errors with its status.
    const errors = html.slice(html.indexOf('<section id="errors">'), html.indexOf('<section id="routes">'));
    expect(errors).toContain(`<tr data-sink="${bad}" data-count="1">`);
    expect(errors).toContain('<td data-label="status">400</td>');
    expect(errors).toContain("HTTP 400");
  });

  it("marks each where leaf for the newest record in the routes table, and counts what sampling dropped", async () => {
    const dd = uid("dash-where");
    const sampledSink = uid("dash-sampled");
    const script = uid("dash-where-script");
    const apiErrors = {
      and: [
        { key: "url", operator: "contains", value: "/api/" },
        { key: "status", operator: "geq", value: 500 },
      ],
    };
    const environment = envWith(
      [
        { name: dd, type: "r2", binding: "LOGS_R2", prefix: dd },
        { name: sampledSink, type: "r2", binding: "LOGS_R2", prefix: sampledSink, sample: { "2xx": 0 } },
      ],
      { ROUTES: JSON.stringify([{ sinks: dd, where: apiErrors }, { sinks: sampledSink }]) },
    );
    await tail(environment, [
      traceItem({ script, path: "/cart", status: 200, logs: [] }),
      traceItem({ script, path: "/api/cart", status: 404, logs: [] }),
    ]);
    const headers = { authorization: `Bearer ${ADMIN}` };
    const html = await (await request(environment, "/", { headers })).text();
    const routes = html.slice(html.indexOf('<section id="routes">'), html.indexOf('<section id="latest">'));
    // The newest record is the 404 on /api/cart: the url leaf holds, the status leaf fails.
    expect(routes).toContain('id="where-record"');
    expect(routes).toMatch(
      /<ul class="leaves" data-matched="false"><li data-at="where.and\[0\]" data-matched="true">✓ url contains/,
    );
    expect(routes).toMatch(/<li data-at="where.and\[1\]" data-matched="false">✗ status geq 500<\/li>/);
    expect(routes).toContain("where url contains");
    expect(routes).toContain("sampled: 2xx 0 %");
    const card = html.slice(html.indexOf(`<div class="card" data-sink="${sampledSink}"`));
    // The 200 invocation's one record was sampled out; the 404's was taken.
    expect(card).toMatch(/^[\s\S]*?<span data-count="droppedSample"><b>1<\/b>sampled out<\/span>/);
    const status = (await (await request(environment, "/status?minutes=60", { headers })).json()) as {
      sinks: SinkStats[];
    };
    const of = (name: string) => status.sinks.find((x) => x.sink === name)?.totals;
    expect(of(sampledSink)).toMatchObject({ received: 1, sent: 1, droppedSample: 1, droppedFilter: 0 });
    expect(of(dd)).toMatchObject({ received: 0, droppedSample: 0, droppedFilter: 2 });
  });

  it("lists the latest records, newest first, filtered by level, outcome, type and script", async () => {
    const sink = uid("dash-records");
    const script = uid("dash-filter");
    const other = uid("dash-other");
    const environment = envWith([{ name: sink, type: "r2", binding: "LOGS_R2", prefix: sink, level: "warn" }]);
    // One tail() each: a counters write keeps a sample of at most RECENT_PER_FLUSH records.
    const items = [
      traceItem({ script, logs: [{ level: "info", message: ["first"] }] }),
      traceItem({ script, logs: [{ level: "warn", message: ["second"] }] }),
      traceItem({
        script,
        outcome: "exception",
        logs: [{ level: "error", message: ["third"] }],
        exceptions: [{ name: "TypeError", message: "fourth" }],
      }),
      traceItem({ script: other, logs: [{ level: "error", message: ["elsewhere"] }] }),
    ];
    for (const item of items) await tail(environment, [item]);
    const headers = { authorization: `Bearer ${ADMIN}` };
    const page = async (query: string) => (await request(environment, `/?${query}`, { headers })).text();

    const all = recordRows(await page(`script=${script}`));
    // 3 invocations, 3 logs, 1 exception; the other script's records are not shown.
    expect(all).toHaveLength(7);
    expect(new Set(all.map((r) => r.script))).toEqual(new Set([script]));
    expect(recordRows(await page(`script=${script}&level=warn`)).map((r) => r.level)).toEqual([
      "error",
      "error",
      "error",
      "warn",
    ]);
    expect(recordRows(await page(`script=${script}&outcome=exception`)).map((r) => r.type)).toEqual([
      "exception",
      "log",
      "invocation",
    ]);
    expect(recordRows(await page(`script=${script}&type=exception`))).toEqual([
      { level: "error", outcome: "exception", type: "exception", script },
    ]);

    const json = (await (
      await request(environment, `/records?script=${script}&level=warn`, { headers })
    ).json()) as RecentAnswer;
    expect(json.records.map((r) => r.message)).toEqual(["fourth", "third", json.records[2]?.message, "second"]);
    expect(json.scripts).toEqual(expect.arrayContaining([script, other]));
    // Where each record went: warn and up reached the sink; the info line reached no sink.
    const second = json.records.find((r) => r.message === "second");
    expect(second?.sinks).toEqual([sink]);
    const first = (
      (await (await request(environment, `/records?script=${script}`, { headers })).json()) as RecentAnswer
    ).records.find((r) => r.message === "first");
    expect(first?.sinks).toEqual([]);
    expect(JSON.parse(first?.line ?? "null")).toMatchObject({ message: "first", scriptName: script, type: "log" });
  });

  it("says when no record matches the filters", async () => {
    const environment = envWith([{ name: uid("empty"), type: "r2", binding: "LOGS_R2", prefix: uid("empty") }]);
    const html = await (
      await request(environment, `/?script=${uid("nobody")}`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).text();
    expect(recordRows(html)).toEqual([]);
    expect(html).toMatch(/No record matches these filters \(of the \d+ latest kept\)\./);
  });

  it("keeps only DELIVERY.recent records, the newest", async () => {
    const script = uid("dash-ring");
    const environment = envWith(
      [{ name: uid("ring"), type: "r2", binding: "LOGS_R2", prefix: uid("ring") }],
      {},
      {
        recent: 5,
      },
    );
    const logs = Array.from({ length: 12 }, (_, i) => ({ level: "log" as const, message: [`line ${i}`] }));
    await tail(environment, [traceItem({ script, logs })]);
    const headers = { authorization: `Bearer ${ADMIN}` };
    const answer = (await (await request(environment, "/records?limit=100", { headers })).json()) as RecentAnswer;
    expect(answer.kept).toBe(5);
    expect(answer.records.map((r) => r.message)).toEqual(["line 11", "line 10", "line 9", "line 8", "line 7"]);
  });

  it("shows records scrubbed and escaped: no secret, no markup from a log line", async () => {
    const script = uid("dash-xss");
    const jwt =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    const environment = envWith([{ name: uid("xss"), type: "r2", binding: "LOGS_R2", prefix: uid("xss") }]);
    await tail(environment, [
      traceItem({
        script,
        logs: [
          { level: "error", message: ['<script>alert("x")</script><img src=x onerror=alert(1)>'] },
          { level: "warn", message: [`token ${jwt}`] },
        ],
      }),
    ]);
    const html = await (
      await request(environment, `/?script=${script}`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).text();
    expect(recordRows(html)).toHaveLength(3);
    expect(html).not.toContain("<script>");
    expect(html).not.toContain("<img src=x");
    expect(html).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    expect(html).not.toContain(jwt);
    expect(html).toContain("token [REDACTED:jwt]");
  });

  it("shows the routes as a table, each sink's own filter, and options with secrets by name only", async () => {
    const secret = "s3cr3t-collector-token-19fa";
    const environment = envWith(
      [
        { name: "alerts", type: "http", url: `${base}/ok`, headers: { authorization: "Bearer ${COLLECTOR}" } },
        { name: "all", type: "r2", binding: "LOGS_R2", prefix: uid("routes"), scripts: ["api-*"] },
      ],
      {
        COLLECTOR: secret,
        ROUTES: JSON.stringify([
          { sinks: ["alerts"], outcomes: ["exception", "exceededCpu"], level: "warn" },
          { sinks: ["all", "alerts"], status: ["5xx"] },
        ]),
      },
    );
    const html = await (await request(environment, "/", { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    const routes = html.slice(html.indexOf('<section id="routes">'), html.indexOf('<section id="latest">'));
    expect(routes).toContain("<td>outcome exception or exceededCpu · level ≥ warn</td>");
    expect(routes).toContain(
      '<td>status 5xx</td><td><span class="chip">all</span><span class="chip">alerts</span></td>',
    );
    expect(routes).toContain("<td>script api-*</td>");
    expect(routes).toContain("Bearer ${COLLECTOR}");
    expect(html).not.toContain(secret);
  });

  it("shows each sink's shape in the sink table", async () => {
    const environment = envWith([
      { name: "lean", type: "http", url: `${base}/ok`, fields: ["message", "level"], rename: { level: "severity" } },
      { name: "loki", type: "loki", endpoint: `${base}/ok`, exclude: ["event.request.headers"], add: { env: "prod" } },
      { name: "all", type: "r2", binding: "LOGS_R2", prefix: uid("shape") },
    ]);
    const html = await (await request(environment, "/", { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    const table = html.slice(html.indexOf('id="sink-table"'), html.indexOf('<section id="latest">'));
    expect(table).toContain("<th>shape</th>");
    expect(table).toContain("<td>keep message, level; rename level → severity</td>");
    expect(table).toContain("<td>drop event.request.headers; add env=&quot;prod&quot;</td>");
    expect(table).toContain("<td>none</td>");
  });

  it("puts a wrong config first, with every error, instead of failing", async () => {
    const environment = { ...envWith([{ name: "x", type: "elastic" }]) };
    const res = await request(environment, "/", { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('<section class="alert" id="config-errors">');
    expect(html).toContain("SINKS[0].type: unknown sink type &quot;elastic&quot;");
    // Nothing that would send the reader after DELIVERY.stats instead.
    expect(html).not.toContain("Counters are not kept");
    expect(html).toContain("Not shown while the configuration is invalid.");
  });

  it("says what to set when counters and records are not kept", async () => {
    const environment = { ...envWith([{ name: "a", type: "r2", binding: "LOGS_R2" }]), DELIVERY: "{}" };
    const headers = { authorization: `Bearer ${ADMIN}` };
    const html = await (await request(environment, "/", { headers })).text();
    expect(html).toContain("Counters are not kept: set DELIVERY.stats");
    expect(html).toContain("Not kept: the latest records are stored beside the counters");
    const res = await request(environment, "/records", { headers });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { hint: string }).hint).toContain("DELIVERY.stats");
  });
});

describe("dashboard model", () => {
  const NOW = Date.UTC(2026, 10, 21, 12, 30, 20);
  const minute = (ago: number, counts: Partial<Counts>) => ({
    minute: Math.floor(NOW / 60_000) * 60_000 - ago * 60_000,
    ...zeroCounts(),
    ...counts,
  });
  const stats = (minutes: SinkStats["minutes"], totals: Partial<Counts> = {}): SinkStats => ({
    sink: "s",
    totals: { ...zeroCounts(), ...totals },
    minutes,
    lastError: { at: NOW - 1000, message: "HTTP 503: down", status: 503 },
    lost: zeroCounts(),
    unaccounted: 0,
    windows: { "5m": zeroCounts(), "1h": zeroCounts(), "24h": zeroCounts() },
  });

  it("tells idle, healthy, degraded and failing sinks apart", () => {
    expect(sinkHealth(undefined, NOW, 60).health).toBe("idle");
    expect(sinkHealth(stats([minute(90, { received: 3, sent: 3 })]), NOW, 60)).toEqual({
      health: "idle",
      reason: "no records in the last 60 minutes",
    });
    expect(sinkHealth(stats([minute(1, { received: 3, sent: 3 })]), NOW, 60).health).toBe("healthy");
    // Trouble earlier in the window, or records still getting through: degraded.
    expect(sinkHealth(stats([minute(30, { received: 2, failed: 2 }), minute(1, { sent: 1 })]), NOW, 60)).toEqual({
      health: "degraded",
      reason: "2 failed; records still get through",
    });
    expect(sinkHealth(stats([minute(2, { received: 5, sent: 4, retried: 1 })], { pending: 1 }), NOW, 60).reason).toBe(
      "1 retried, 1 waiting in the queue; records still get through",
    );
    // Only trouble in the last five minutes: failing, with the last error.
    expect(
      sinkHealth(stats([minute(0, { received: 2, retried: 2 }), minute(4, { deadLettered: 1 })]), NOW, 60),
    ).toEqual({
      health: "failing",
      reason: "nothing delivered in the last 5 minutes; last error: HTTP 503: down",
    });
  });

  it("cuts the window into buckets ending with the current minute", () => {
    const s = chartSeries([minute(0, { sent: 2 }), minute(59, { failed: 1 }), minute(60, { sent: 9 })], NOW, 60);
    expect(s.starts).toHaveLength(60);
    expect(s.starts.at(-1)).toBe(Math.floor(NOW / 60_000) * 60_000);
    expect(s.sent.at(-1)).toBe(2);
    expect(s.failed[0]).toBe(1);
    // A minute outside the window is not drawn.
    expect(s.sent.reduce((a, b) => a + b, 0)).toBe(2);

    const day = chartSeries(
      [minute(0, { sent: 1 }), minute(23, { sent: 1 }), minute(24, { deadLettered: 3 }), minute(1439, { sent: 5 })],
      NOW,
      1440,
    );
    expect(day.starts).toHaveLength(60);
    expect(day.sent.at(-1)).toBe(2);
    expect(day.deadLettered.at(-2)).toBe(3);
    expect(day.sent[0]).toBe(5);
  });

  it("puts filters in words", () => {
    expect(describeFilter({})).toBe("every record");
    expect(
      describeFilter({
        outcomes: ["exception"],
        level: "error",
        scripts: ["a-*", "b"],
        eventTypes: ["fetch"],
        types: ["log"],
        status: ["5xx", "404"],
        where: {
          or: [
            { key: "url", operator: "startsWith", value: "https://x/api" },
            { key: "cron", operator: "exists" },
          ],
        },
        sample: 0.25,
      }),
    ).toBe(
      'outcome exception · level ≥ error · script a-* or b · event fetch · record log · status 5xx or 404 · where url startsWith "https://x/api" or cron exists · 25 % sampled',
    );
    expect(describeFilter({ sample: { "5xx": 1, "2xx": 0.1, default: 1 } })).toBe(
      "sampled: 5xx 100 %, 2xx 10 %, default 100 %",
    );
    expect(describeFilter({ sample: { "5xx": 1, default: 1 } })).toBe("every record");
  });
});

describe("dashboard: errors, charts, icon and live view", () => {
  it("groups repeated errors into one row per sink and reason, with the count and first and last seen", async () => {
    const bad = uid("dash-repeat");
    const other = uid("dash-other-err");
    const environment = envWith([
      { name: bad, type: "http", url: `${base}/status/400/${bad}` },
      { name: other, type: "http", url: `${base}/status/401/${other}` },
    ]);
    for (let i = 0; i < 4; i++) await tail(environment, [traceItem({ script: uid("dash-rep") })]);
    const html = await (await request(environment, "/", { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    const errors = html.slice(html.indexOf('<section id="errors">'), html.indexOf('<section id="routes">'));
    const rows = [...errors.matchAll(/<tr data-sink="([^"]+)" data-count="(\d+)">/g)].map((m) => [m[1], m[2]]);
    expect(rows.filter(([sink]) => sink === bad || sink === other).sort()).toEqual(
      [
        [bad, "4"],
        [other, "4"],
      ].sort(),
    );
    expect(errors).toContain("first seen");
  });

  it("groupErrors keeps the oldest and newest time of each distinct error, newest first", () => {
    const e = (sink: string, at: number, message = "HTTP 503", status: number | null = 503) => ({
      sink,
      at,
      message,
      status,
    });
    expect(groupErrors([e("a", 30), e("b", 25), e("a", 20), e("a", 10, "HTTP 500", 500), e("a", 5)])).toEqual([
      { sink: "a", status: 503, message: "HTTP 503", count: 3, first: 5, last: 30 },
      { sink: "b", status: 503, message: "HTTP 503", count: 1, first: 25, last: 25 },
      { sink: "a", status: 500, message: "HTTP 500", count: 1, first: 10, last: 10 },
    ]);
  });

  it("draws retried records and the pending level", () => {
    const NOW = Date.UTC(2026, 10, 21, 12, 30, 20);
    const at = (ago: number, counts: Partial<Counts>) => ({
      minute: Math.floor(NOW / 60_000) * 60_000 - ago * 60_000,
      ...zeroCounts(),
      ...counts,
    });
    // 5 records handed to the retry queue 3 minutes ago, 2 of them delivered a minute ago: 3 still pending.
    const s = chartSeries([at(3, { retried: 5, pending: 5 }), at(1, { sent: 2, pending: -2 })], NOW, 15, 60, 3);
    expect(s.retried.at(-4)).toBe(5);
    expect(s.pending.slice(-5)).toEqual([0, 5, 5, 3, 3]);
  });

  it("shows a failing sink's retries in its chart", async () => {
    const bad = uid("dash-retry");
    const environment = envWith(
      [{ name: bad, type: "http", url: `${base}/status/503/${bad}` }],
      {},
      {
        queue: "TAILFAN_QUEUE",
        retryDelaySeconds: 600,
      },
    );
    await tail(environment, [traceItem({ script: uid("dash-retry-s") })]);
    const headers = { authorization: `Bearer ${ADMIN}` };
    const status = (await (await request(environment, "/status", { headers })).json()) as { sinks: SinkStats[] };
    const totals = status.sinks.find((x) => x.sink === bad)?.totals;
    expect(totals?.retried).toBeGreaterThan(0);
    const html = await (await request(environment, "/", { headers })).text();
    const card = html.slice(html.indexOf(`<div class="card" data-sink="${bad}"`));
    expect(card).toContain(`data-series="retried" data-total="${totals?.retried}"`);
    expect(card).toContain('data-series="pending"');
  });

  it("has a favicon, served without a login", async () => {
    const environment = envWith([{ name: "a", type: "r2", binding: "LOGS_R2" }]);
    const res = await request(environment, "/favicon.svg");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/svg+xml");
    expect(await res.text()).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    const login = await (await request(environment, "/")).text();
    expect(login).toContain('<link rel="icon" href="/favicon.svg" type="image/svg+xml"/>');
  });

  it("live view: the page loads tailfan's script only when asked, and the panel reloads with the page's filters", async () => {
    const sink = uid("dash-live");
    const script = uid("dash-live-s");
    const environment = envWith([{ name: sink, type: "r2", binding: "LOGS_R2", prefix: sink }]);
    await tail(environment, [
      traceItem({ script, logs: [{ level: "warn", message: ["live warn"] }] }),
      traceItem({ script, logs: [{ level: "info", message: ["live info"] }] }),
    ]);
    const headers = { authorization: `Bearer ${ADMIN}` };
    const plain = await request(environment, `/?script=${script}`, { headers });
    expect(plain.headers.get("content-security-policy")).not.toContain("script-src");
    expect(await plain.text()).not.toContain("<script");

    const live = await request(environment, `/?script=${script}&live=1`, { headers });
    const csp = live.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'; connect-src 'self'");
    const html = await live.text();
    expect(html).toContain('<script src="/dashboard.js" defer="">');
    expect(html).toContain('<div id="records-live" data-live="3">');
    expect(html).toContain('name="live" value="1" checked=""');

    // What the script fetches: its own URL with part=records, so the same filters apply.
    const part = await request(environment, `/?script=${script}&level=warn&live=1&part=records`, { headers });
    const panel = await part.text();
    expect(part.headers.get("content-type")).toMatch(/^text\/html/);
    expect(panel.startsWith('<div id="records-live"')).toBe(true);
    expect(panel).not.toContain("<html");
    expect(recordRows(panel).every((r) => r.script === script && (r.level === "warn" || r.level === "error"))).toBe(
      true,
    );
    expect(panel).toContain("live warn");
    expect(panel).not.toContain("live info");

    const js = await request(environment, "/dashboard.js", { headers });
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    const code = await js.text();
    expect(code).toContain('url.searchParams.set("part", "records")');
    // Only server-rendered, escaped HTML is inserted; no innerHTML, no eval.
    expect(code).not.toMatch(/innerHTML|eval\(|new Function/);
    // Behind the login like the page.
    expect((await request(environment, "/dashboard.js")).status).toBe(401);
  });
});
