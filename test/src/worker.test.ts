/**
 * The Worker's own handlers, called as the runtime calls them: tail() with
 * real captured TraceItems into the real local R2, KV and Queue bindings, and
 * the Hono app's /health.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import { handleTail } from "../../src/tail";
import { VERSION } from "../../src/version";
import captured from "../fixtures/trace-items.json";
import { STATS_AT_ONCE } from "../support/stats";

const vars = env as unknown as Record<string, unknown>;

async function archivedLines(prefix: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  const { objects } = await env.LOGS_R2.list({ prefix });
  for (const o of objects) {
    const obj = await env.LOGS_R2.get(o.key);
    if (!obj) continue;
    const text = await new Response(obj.body.pipeThrough(new DecompressionStream("gzip"))).text();
    for (const l of text.split("\n")) if (l) out.push(JSON.parse(l));
  }
  return out;
}

afterEach(() => vi.restoreAllMocks());

describe("tail()", () => {
  it("delivers every record of real TraceItems through the default config inside waitUntil", async () => {
    const items = [captured["fetch-ok"], captured["fetch-exception"], captured["fetch-500"]] as unknown as TraceItem[];
    const ctx = createExecutionContext();
    const returned = worker.tail(items, env as never, ctx);
    expect(returned).toBeUndefined();
    await waitOnExecutionContext(ctx);
    // wrangler.toml's SINKS: everything to R2 under logs/, warn and above to KV, exceptions to the Queue.
    const lines = await archivedLines("logs/");
    const expected = items.reduce((n, i) => n + 1 + i.logs.length + i.exceptions.length, 0);
    expect(lines).toHaveLength(expected);
    // The kv sink writes one entry per delivery (per = "batch"): the 4 records at warn and above of the 3 invocations.
    const { keys } = await env.LOGS_KV.list({ prefix: "logs/" });
    expect(keys.map((k) => k.metadata)).toEqual([expect.objectContaining({ level: "error", count: 4 })]);
  });

  it("with a broken config, never throws, delivers nothing and says what to fix on the console", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const ctx = createExecutionContext();
    const reports = await handleTail([captured["fetch-ok"]], { ...vars, SINKS: '[{"name":"x","type":"nope"}]' }, ctx);
    await waitOnExecutionContext(ctx);
    expect(reports).toEqual([]);
    expect(errors).toHaveBeenCalledTimes(1);
    expect(String(errors.mock.calls[0]?.[0])).toContain('SINKS[0].type: unknown sink type "nope"');
    expect(String(errors.mock.calls[0]?.[0])).toContain("1 TraceItem(s) not delivered");
  });

  it("without a retry queue, a failing sink is reported with its name and reason, and does not stop the others", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const sinks = [
      { name: "down", type: "http", url: "http://127.0.0.1:1/" },
      { name: "archive", type: "r2", binding: "LOGS_R2", prefix: "worker-test-failing" },
    ];
    const ctx = createExecutionContext();
    const env = { ...vars, SINKS: JSON.stringify(sinks), DELIVERY: "{}" };
    const reports = await handleTail([captured["fetch-ok"]], env, ctx, {
      timeoutMs: 500,
      maxAttempts: 2,
      backoffMs: 5,
      budgetMs: 3000,
      maxConnections: 6,
    });
    await waitOnExecutionContext(ctx);
    const down = reports.find((r) => r.sink === "down");
    const archive = reports.find((r) => r.sink === "archive");
    expect(down).toMatchObject({ failed: 6, delivered: 0, requests: 2 });
    expect(archive).toMatchObject({ failed: 0, delivered: 6 });
    expect(await archivedLines("worker-test-failing/")).toHaveLength(6);
    expect(String(errors.mock.calls[0]?.[0])).toMatch(
      /^tailfan: sink "down" lost 6 record\(s\) after 2 attempt\(s\): network error: .*\(no retry queue configured\)$/,
    );
  });

  it("never throws, whatever it is handed", async () => {
    const ctx = createExecutionContext();
    for (const junk of [[null], [42], ["x"], [{ logs: "no" }], []] as unknown[][]) {
      expect(() => worker.tail(junk as TraceItem[], env as never, ctx)).not.toThrow();
    }
    await waitOnExecutionContext(ctx);
  });
});

describe("GET /health", () => {
  it("answers the version and the sinks when the config is valid, without option values", async () => {
    const res = await exports.default.fetch("http://tailfan/health");
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toEqual({
      name: "tailfan",
      version: VERSION,
      ok: true,
      sinks: [
        { name: "archive", type: "r2" },
        { name: "recent-problems", type: "kv" },
        { name: "exceptions", type: "queue" },
      ],
      routes: null,
      warnings: [],
    });
  });

  it("answers 503 with every error when the config is invalid", async () => {
    const app = (await import("../../src/app")).createApp();
    const res = await app.request("/health", {}, { ...vars, SINKS: '[{"name":"a","type":"kv","binding":"MISSING"}]' });
    expect(res.status).toBe(503);
    const body = (await res.json()) as { ok: boolean; version: string; errors: unknown[]; message: string };
    expect(body).toMatchObject({ ok: false, version: VERSION });
    expect(body.errors).toEqual([
      {
        variable: "SINKS",
        path: "[0].binding",
        message: 'no binding named "MISSING"; add [[kv_namespaces]] binding = "MISSING" to wrangler.toml',
      },
    ]);
  });

  it("does not leak resolved secrets", async () => {
    const app = (await import("../../src/app")).createApp();
    const sinks = [{ name: "h", type: "http", url: "https://x.example/", headers: { authorization: "Bearer ${TOK}" } }];
    const res = await app.request("/health", {}, { ...vars, TOK: "very-secret-123", SINKS: JSON.stringify(sinks) });
    expect(await res.text()).not.toContain("very-secret-123");
  });

  it("keeps every other route closed: 404 with a hint without ADMIN_TOKEN, 401 without the token, 404 with it", async () => {
    const res = await exports.default.fetch("http://tailfan/nope");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: "not found",
      hint: "set the secret ADMIN_TOKEN to enable the API (npx wrangler secret put ADMIN_TOKEN)",
    });
    const app = (await import("../../src/app")).createApp();
    const withToken = { ...vars, ADMIN_TOKEN: "t0ken-for-test" };
    expect((await app.request("/nope", {}, withToken)).status).toBe(401);
    expect((await app.request("/status", { headers: { authorization: "Bearer wrong" } }, withToken)).status).toBe(401);
    const ok = await app.request("/nope", { headers: { authorization: "Bearer t0ken-for-test" } }, withToken);
    expect(ok.status).toBe(404);
    expect(await ok.json()).toEqual({ error: "not found", hint: "GET /health" });
  });
});

describe("loop guard", () => {
  it("drops tailfan's own TraceItems, counts them under *, delivers the rest, and logs nothing about it", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const warns = vi.spyOn(console, "warn").mockImplementation(() => {});
    const logs = vi.spyOn(console, "log").mockImplementation(() => {});
    const prefix = `loop-${Date.now()}`;
    const sinks = [{ name: "archive", type: "r2", binding: "LOGS_R2", prefix }];
    const own = { ...captured["fetch-ok"], scriptName: "tailfan-prod" };
    const other = { ...captured["fetch-ok"], scriptName: "shop-api" };
    const env = {
      ...vars,
      SINKS: JSON.stringify(sinks),
      SELF_NAME: "tailfan-prod",
      DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", ...STATS_AT_ONCE }),
    };
    const ctx = createExecutionContext();
    await handleTail([own, other, own], env, ctx);
    await waitOnExecutionContext(ctx);
    const lines = await archivedLines(`${prefix}/`);
    expect(lines.length).toBeGreaterThan(0);
    expect(new Set(lines.map((l) => l.scriptName))).toEqual(new Set(["shop-api"]));
    const stub = vars.TAILFAN_STATS as DurableObjectNamespace;
    const stats = await (
      stub.get(stub.idFromName("tailfan")) as unknown as {
        snapshot(): Promise<{ sink: string; totals: Record<string, number> }[]>;
      }
    ).snapshot();
    expect(stats.find((s) => s.sink === "*")?.totals.droppedLoop).toBeGreaterThanOrEqual(2);
    // Saying so would itself be an event about tailfan.
    expect(errors).not.toHaveBeenCalled();
    expect(warns).not.toHaveBeenCalled();
    expect(logs).not.toHaveBeenCalled();
  });

  it("without SELF_NAME, guards the name tailfan", async () => {
    const { dropOwnEvents } = await import("../../src/pipeline");
    const { loadConfig } = await import("../../src/config");
    const result = loadConfig(vars);
    expect(result.ok && result.config.selfName).toBe("tailfan");
    expect(dropOwnEvents([{ scriptName: "tailfan" }, { scriptName: "x" }, null, 5], "tailfan")).toEqual({
      events: [{ scriptName: "x" }, null, 5],
      dropped: 1,
    });
  });
});

describe("size limits in the pipeline", () => {
  it("cuts a huge log line to LIMITS.maxRecordBytes, marks it, counts it, and leaves the rest whole", async () => {
    const prefix = `limits-${Date.now()}`;
    const sinks = [{ name: "archive", type: "r2", binding: "LOGS_R2", prefix }];
    const huge = "x".repeat(300_000);
    const item = {
      ...captured["fetch-ok"],
      logs: [
        { level: "log", message: [huge], timestamp: 1 },
        { level: "log", message: ["small"], timestamp: 2 },
      ],
    };
    const env = {
      ...vars,
      SINKS: JSON.stringify(sinks),
      LIMITS: JSON.stringify({ maxRecordBytes: 32768 }),
      DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", ...STATS_AT_ONCE }),
    };
    const ctx = createExecutionContext();
    await handleTail([item], env, ctx);
    await waitOnExecutionContext(ctx);
    const lines = await archivedLines(`${prefix}/`);
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(new TextEncoder().encode(JSON.stringify(l)).length).toBeLessThanOrEqual(32768);
    const cut = lines.find((l) => l.limited === true);
    expect(cut).toMatchObject({ type: "log", limitedFields: ["message"] });
    expect(String(cut?.message)).toMatch(/…\[truncated \d+ bytes\]$/);
    expect(lines.find((l) => l.message === "small")?.limited).toBeUndefined();
    const stub = vars.TAILFAN_STATS as DurableObjectNamespace;
    const stats = await (
      stub.get(stub.idFromName("tailfan")) as unknown as {
        snapshot(): Promise<{ sink: string; totals: Record<string, number> }[]>;
      }
    ).snapshot();
    expect(stats.find((s) => s.sink === "archive")?.totals.truncated).toBeGreaterThanOrEqual(1);
  });
});
