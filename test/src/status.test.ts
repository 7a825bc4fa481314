/**
 * GET /status: closed without ADMIN_TOKEN, bearer-token only with it, and the
 * per-sink counters of a real tail() run on captured TraceItems.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app";
import worker from "../../src/index";
import type { SinkStats } from "../../src/stats";
import { VERSION } from "../../src/version";
import captured from "../fixtures/trace-items.json";
import { receiverUrl, uid } from "../sinks/helpers";
import { STATS_AT_ONCE } from "../support/stats";

const vars = env as unknown as Record<string, unknown>;
const base = receiverUrl();
const app = createApp();

const ADMIN = "admin-token-5f1c9e0b";
const COLLECTOR_SECRET = "collector-secret-a83d61";

interface StatusBody {
  ok: boolean;
  version: string;
  delivery: { mode: string; durable: boolean; retries: number; deadLetter: boolean };
  counters: string;
  sinks: SinkStats[] | null;
  errors: { sink: string; at: number; message: string; status: number | null }[] | null;
  config: unknown;
}

function status(environment: Record<string, unknown>, headers: Record<string, string> = {}, query = "") {
  return app.request(`/status${query}`, { headers }, environment);
}

beforeEach(() => {
  vi.spyOn(console, "error").mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

describe("GET /status: access", () => {
  it("answers 404 with a hint when ADMIN_TOKEN is not set (or empty)", async () => {
    for (const environment of [vars, { ...vars, ADMIN_TOKEN: "" }]) {
      const res = await status(environment, { authorization: `Bearer ${ADMIN}` });
      expect(res.status).toBe(404);
      const body = (await res.json()) as { error: string; hint: string };
      expect(body.error).toBe("not found");
      expect(body.hint).toContain("ADMIN_TOKEN");
      expect(body.hint).toContain("npx wrangler secret put ADMIN_TOKEN");
    }
  });

  it("answers 401 without the right bearer token", async () => {
    const environment = { ...vars, ADMIN_TOKEN: ADMIN };
    const wrong: Record<string, string>[] = [
      {},
      { authorization: "" },
      { authorization: "Bearer " },
      { authorization: "Bearer nope" },
      { authorization: `Bearer ${ADMIN}x` },
      { authorization: `Bearer ${ADMIN.slice(0, -1)}` },
      { authorization: ADMIN },
      { authorization: `Basic ${ADMIN}` },
    ];
    for (const headers of wrong) {
      const res = await status(environment, headers);
      expect(res.status, JSON.stringify(headers)).toBe(401);
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({ error: "unauthorized", hint: "send Authorization: Bearer <ADMIN_TOKEN>" });
      expect(text).not.toContain(ADMIN);
    }
  });

  it("answers 200 with the right token, and says when counters are not kept", async () => {
    const environment = { ...vars, ADMIN_TOKEN: ADMIN, DELIVERY: JSON.stringify({}) };
    const res = await status(environment, { authorization: `Bearer ${ADMIN}` });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      ok: true,
      version: VERSION,
      delivery: { mode: "direct", durable: false, retries: 5, deadLetter: false },
      counters: "not kept: set DELIVERY.stats to a TailfanStats Durable Object binding",
      sinks: null,
      errors: null,
      config: expect.objectContaining({ valid: true, routes: null }),
    });
  });

  it("answers 503 with the errors when the config is invalid", async () => {
    const environment = { ...vars, ADMIN_TOKEN: ADMIN, DELIVERY: JSON.stringify({ mode: "turbo" }) };
    const res = await status(environment, { authorization: `Bearer ${ADMIN}` });
    expect(res.status).toBe(503);
    const body = (await res.json()) as { ok: boolean; errors: { variable: string; path: string }[] };
    expect(body.ok).toBe(false);
    expect(body.errors.map((e) => `${e.variable}${e.path}`)).toEqual(["DELIVERY.mode"]);
  });
});

describe("GET /status after a tail() run", () => {
  it("reports the delivery mode and each sink's counters, adding up, and never a secret", async () => {
    const archive = uid("status-archive");
    const rejecting = uid("status-reject");
    const sinks = [
      { name: archive, type: "r2", binding: "LOGS_R2", prefix: archive },
      {
        name: rejecting,
        type: "http",
        url: `${base}/status/400/${rejecting}`,
        headers: { authorization: "Bearer ${COLLECTOR_TOKEN}" },
        types: ["exception"],
      },
    ];
    const delivery = {
      queue: "TAILFAN_QUEUE",
      deadLetter: "LOGS_R2",
      deadLetterPrefix: uid("status-dl"),
      retries: 4,
      stats: "TAILFAN_STATS",
      ...STATS_AT_ONCE,
    };
    const environment = {
      ...vars,
      SINKS: JSON.stringify(sinks),
      DELIVERY: JSON.stringify(delivery),
      COLLECTOR_TOKEN: COLLECTOR_SECRET,
      ADMIN_TOKEN: ADMIN,
    };
    const items = [captured["fetch-ok"], captured["fetch-exception"], captured["fetch-500"]] as unknown as TraceItem[];
    const records = items.reduce((n, i) => n + 1 + i.logs.length + i.exceptions.length, 0);
    const exceptions = items.reduce((n, i) => n + i.exceptions.length, 0);
    expect(exceptions).toBe(1);

    const ctx = createExecutionContext();
    worker.tail(items, environment as never, ctx);
    await waitOnExecutionContext(ctx);

    const res = await status(environment, { authorization: `Bearer ${ADMIN}` }, "?minutes=5");
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain(COLLECTOR_SECRET);
    expect(text).not.toContain(ADMIN);
    const body = JSON.parse(text) as StatusBody;
    expect(body).toMatchObject({
      ok: true,
      version: VERSION,
      delivery: { mode: "direct", durable: true, retries: 4, deadLetter: true },
      counters: "kept",
    });
    const mine = (name: string) => body.sinks?.find((s) => s.sink === name);
    expect(mine(archive)).toMatchObject({
      totals: { received: records, sent: records, droppedFilter: 0, failed: 0, pending: 0 },
      lastError: null,
      unaccounted: 0,
    });
    expect(mine(archive)?.totals.bytes).toBeGreaterThan(0);
    expect(mine(archive)?.minutes.reduce((n, m) => n + m.sent, 0)).toBe(records);
    // The collector refuses for good (400): the one exception is dead-lettered at once, the rest it filtered out.
    expect(mine(rejecting)).toMatchObject({
      totals: { received: exceptions, sent: 0, deadLettered: exceptions, droppedFilter: records - exceptions },
      lastError: { message: "HTTP 400: answered 400", status: 400 },
      unaccounted: 0,
    });
    // Sums per window: everything happened in this minute, so each window holds it all.
    for (const w of ["5m", "1h", "24h"] as const) {
      expect(mine(archive)?.windows[w], w).toMatchObject({ received: records, sent: records });
      expect(mine(rejecting)?.windows[w], w).toMatchObject({ deadLettered: exceptions, sent: 0 });
    }
    // The latest errors, newest first: the collector's, with its status.
    expect(body.errors).toContainEqual(
      expect.objectContaining({ sink: rejecting, status: 400, message: "HTTP 400: answered 400" }),
    );
    // The config as deployed, options as written: the secret by its name.
    expect(body.config).toEqual({
      valid: true,
      sinks: [
        { name: archive, type: "r2", options: { binding: "LOGS_R2", prefix: archive }, filter: {} },
        {
          name: rejecting,
          type: "http",
          options: { url: `${base}/status/400/${rejecting}`, headers: { authorization: "Bearer ${COLLECTOR_TOKEN}" } },
          filter: { types: ["exception"] },
        },
      ],
      routes: null,
      warnings: [],
    });
  });

  it("sums each window over its own minutes only", async () => {
    const sink = uid("status-windows");
    const stub = env.TAILFAN_STATS.get(env.TAILFAN_STATS.idFromName("tailfan"));
    const now = Date.now();
    vi.useFakeTimers({ now: now - 30 * 60_000, toFake: ["Date"] });
    await stub.add([{ sink, counts: { received: 7, sent: 7 } }]);
    vi.setSystemTime(now - 3 * 60 * 60_000);
    await stub.add([{ sink, counts: { received: 100, sent: 100 } }]);
    vi.useRealTimers();
    await stub.add([{ sink, counts: { received: 1, failed: 1 } }]);
    const environment = {
      ...vars,
      ADMIN_TOKEN: ADMIN,
      DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", ...STATS_AT_ONCE }),
    };
    const body = (await (await status(environment, { authorization: `Bearer ${ADMIN}` })).json()) as StatusBody;
    const mine = body.sinks?.find((s) => s.sink === sink);
    expect(mine?.windows["5m"]).toMatchObject({ received: 1, sent: 0, failed: 1 });
    expect(mine?.windows["1h"]).toMatchObject({ received: 8, sent: 7, failed: 1 });
    expect(mine?.windows["24h"]).toMatchObject({ received: 108, sent: 107, failed: 1 });
    expect(mine?.totals).toMatchObject({ received: 108, sent: 107, failed: 1 });
  });
});
