/**
 * POST /config/check, /routes/test and /replay: through the real app, the
 * admin-token middleware and the real local R2, KV and Queue bindings.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MAX_BODY_BYTES, splitJsonValues } from "../../src/api";
import { createApp } from "../../src/app";
import captured from "../fixtures/trace-items.json";
import { uid } from "../sinks/helpers";

const vars = env as unknown as Record<string, unknown>;
const app = createApp();

const ADMIN = "admin-token-api-3c9d27e1";
const SECRET = "SECRET-collector-api-b61f04d2";
const auth = { authorization: `Bearer ${ADMIN}` };

/** The deployment: wrangler.toml's bindings, the admin token and one secret. */
function deployment(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...vars, ADMIN_TOKEN: ADMIN, COLLECTOR_TOKEN: SECRET, DELIVERY: "{}", ...extra };
}

async function post(
  path: string,
  body: string,
  environment: Record<string, unknown>,
  headers: Record<string, string> = auth,
): Promise<{ status: number; text: string; json: Record<string, unknown> }> {
  const ctx = createExecutionContext();
  const res = await app.request(path, { method: "POST", body, headers }, environment, ctx);
  await waitOnExecutionContext(ctx);
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) as Record<string, unknown> };
}

/** A fetch TraceItem of `script` with one warn log. */
function warnItem(script: string, message = "disk almost full") {
  const ts = Date.now();
  return {
    outcome: "ok",
    scriptName: script,
    eventTimestamp: ts,
    event: { request: { url: "https://example.com/api", method: "GET", headers: {} }, response: { status: 200 } },
    logs: [{ level: "warn", message: [message], timestamp: ts + 1 }],
    exceptions: [],
    diagnosticsChannelEvents: [],
  };
}

/** An exception TraceItem of `script` (the real captured one, renamed). */
function exceptionItem(script: string) {
  return { ...captured["fetch-exception"], scriptName: script, eventTimestamp: Date.now() };
}

async function r2Lines(prefix: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  const { objects } = await env.LOGS_R2.list({ prefix: `${prefix}/` });
  for (const o of objects) {
    const obj = await env.LOGS_R2.get(o.key);
    if (!obj) continue;
    for (const l of (await obj.text()).split("\n")) if (l) out.push(JSON.parse(l));
  }
  return out;
}

beforeEach(() => {
  vi.spyOn(console, "error").mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

describe("access", () => {
  const paths = ["/config/check", "/routes/test", "/replay"];

  it("every endpoint is 404 without ADMIN_TOKEN and 401 with a wrong token", async () => {
    for (const path of paths) {
      const closed = await post(path, "{}", { ...vars, ADMIN_TOKEN: undefined }, auth);
      expect(closed.status, path).toBe(404);
      expect(closed.json.hint).toContain("ADMIN_TOKEN");
      const wrong: Record<string, string>[] = [
        {},
        { authorization: "Bearer nope" },
        { authorization: `Bearer ${ADMIN}x` },
      ];
      for (const headers of wrong) {
        const res = await post(path, "{}", deployment(), headers);
        expect(res.status, `${path} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.text).not.toContain(ADMIN);
      }
    }
  });
});

describe("POST /config/check", () => {
  it("shows each sink's shape, and a shaping mistake at its path", async () => {
    const sinks = [
      { name: "loki", type: "loki", endpoint: "https://loki.example.com", exclude: ["event.request.headers"] },
      { name: "lp", type: "r2", binding: "LOGS_R2", format: "logpush" },
    ];
    const res = await post("/config/check", JSON.stringify({ SINKS: sinks }), deployment());
    expect(res.status).toBe(200);
    const checked = res.json as { sinks: Record<string, unknown>[] };
    expect(checked.sinks[0]).toMatchObject({ name: "loki", shape: { exclude: ["event.request.headers"] } });
    expect(checked.sinks[0]?.options).not.toHaveProperty("exclude");
    expect(checked.sinks[1]).toMatchObject({ options: { format: "logpush" } });
    expect(checked.sinks[1]).not.toHaveProperty("shape");
    const bad = await post(
      "/config/check",
      JSON.stringify({ SINKS: [{ ...sinks[0], rename: { url: "message" } }] }),
      deployment(),
    );
    expect(bad.status).toBe(422);
    expect(JSON.stringify(bad.json)).toContain('rename[\\"url\\"]');
  });

  it("answers 200 with the sinks, routes and warnings of a valid candidate, never a secret", async () => {
    const sinks = [
      { name: "archive", type: "r2", binding: "LOGS_R2" },
      {
        name: "collector",
        type: "http",
        url: "https://logs.example.com/in",
        headers: { authorization: "Bearer ${COLLECTOR_TOKEN}" },
      },
      { name: "unused", type: "kv", binding: "LOGS_KV" },
    ];
    const routes = [{ sinks: ["archive"] }, { sinks: "collector", level: "warn" }];
    const res = await post(
      "/config/check",
      JSON.stringify({ SINKS: sinks, ROUTES: JSON.stringify(routes) }),
      deployment(),
    );
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      valid: true,
      // Options as written: the secret by its name, never its value.
      sinks: [
        { name: "archive", type: "r2", options: { binding: "LOGS_R2" }, filter: {} },
        {
          name: "collector",
          type: "http",
          options: { url: "https://logs.example.com/in", headers: { authorization: "Bearer ${COLLECTOR_TOKEN}" } },
          filter: {},
        },
        { name: "unused", type: "kv", options: { binding: "LOGS_KV" }, filter: {} },
      ],
      routes: [
        { sinks: ["archive"], filter: {} },
        { sinks: ["collector"], filter: { level: "warn" } },
      ],
      warnings: ['sink "unused" is named by no route, so it receives nothing'],
    });
    expect(res.text).not.toContain(SECRET);
    expect(res.text).not.toContain(ADMIN);
  });

  it("answers 422 with every error and its path: unknown type, missing binding, unset secret, bad route", async () => {
    const sinks = [
      { name: "a", type: "elastic" },
      { name: "b", type: "kv", binding: "NO_SUCH_KV" },
      { name: "c", type: "http", url: "https://x.example/", headers: { authorization: "Bearer ${NOT_SET_TOKEN}" } },
      {
        name: "d",
        type: "http",
        url: "https://x.example/",
        headers: { authorization: "Bearer ${COLLECTOR_TOKEN}" },
        urll: 1,
      },
    ];
    const body = { SINKS: JSON.stringify(sinks), ROUTES: [{ sinks: ["nope"] }], DELIVERY: { mode: "turbo" } };
    const res = await post("/config/check", JSON.stringify(body), deployment());
    expect(res.status).toBe(422);
    expect(res.json.valid).toBe(false);
    const errors = res.json.errors as { variable: string; path: string; message: string }[];
    expect(errors.map((e) => `${e.variable}${e.path}`).sort()).toEqual(
      [
        "DELIVERY.mode",
        "ROUTES[0].sinks[0]",
        "SINKS[0].type",
        "SINKS[1].binding",
        "SINKS[2].headers.authorization",
        "SINKS[3].urll",
      ].sort(),
    );
    expect(errors.find((e) => e.path === "[0].type")?.message).toContain('unknown sink type "elastic"');
    expect(errors.find((e) => e.path === "[1].binding")?.message).toContain('no binding named "NO_SUCH_KV"');
    expect(res.text).not.toContain(SECRET);
  });

  it("checks without caching: the deployed config still answers /health as before", async () => {
    const environment = deployment();
    const bad = await post("/config/check", JSON.stringify({ SINKS: [{ name: "x", type: "nope" }] }), environment);
    expect(bad.status).toBe(422);
    const health = await app.request("/health", {}, environment);
    expect(health.status).toBe(200);
  });

  it("answers 400 with a clear message for a malformed body", async () => {
    const cases: [string, string][] = [
      ["", "empty"],
      ["{not json", "not valid JSON"],
      ["[1,2]", "must be a JSON object"],
      ['{"ROUTES":[]}', "needs SINKS"],
      ['{"SINKS":[],"COLLECTOR_TOKEN":"x"}', 'unknown key(s) "COLLECTOR_TOKEN"'],
    ];
    for (const [body, message] of cases) {
      const res = await post("/config/check", body, deployment());
      expect(res.status, body).toBe(400);
      expect(String(res.json.error), body).toContain(message);
    }
  });
});

describe("POST /routes/test", () => {
  function candidate(label: string) {
    const names = {
      archive: `${label}-archive`,
      problems: `${label}-problems`,
      exceptions: `${label}-exceptions`,
      collector: `${label}-collector`,
    };
    return {
      names,
      prefix: label,
      config: {
        SINKS: [
          { name: names.archive, type: "r2", binding: "LOGS_R2", prefix: label, gzip: false },
          { name: names.problems, type: "kv", binding: "LOGS_KV", key: `${label}/{id}` },
          { name: names.exceptions, type: "queue", binding: "LOGS_QUEUE" },
          {
            name: names.collector,
            type: "http",
            url: "https://logs.example.com/in",
            headers: { authorization: "Bearer ${COLLECTOR_TOKEN}" },
          },
        ],
        ROUTES: [
          { sinks: [names.exceptions], types: ["exception"] },
          { sinks: [names.problems], types: ["log"], level: "warn" },
          { sinks: [names.archive], types: ["invocation"] },
          { sinks: [names.collector], status: "5xx" },
        ],
      },
    };
  }

  interface RecordAnswer {
    id: string;
    type: string;
    level: string;
    message: string;
    sinks: string[];
    matchedRoutes: number[] | string;
    dropped: boolean;
  }
  interface SinkAnswer {
    sink: string;
    type: string;
    records: number;
    batches: number;
    preview: { records: number; body?: string; payload?: unknown } | null;
  }

  it("routes an exception to the exceptions sink only and a warn log to KV, with previews, writing nothing", async () => {
    const label = uid("api-routes");
    const { names, prefix, config } = candidate(label);
    const items = [exceptionItem(label), warnItem(label, `token ${SECRET} leaked`)];
    const res = await post("/routes/test", JSON.stringify({ events: items, config }), deployment());
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ ok: true, config: "candidate", accepted: 2, rejected: [] });
    const records = res.json.records as RecordAnswer[];
    const exception = records.filter((r) => r.type === "exception");
    expect(exception).toHaveLength(1);
    expect(exception[0]).toMatchObject({ sinks: [names.exceptions], matchedRoutes: [0], dropped: false });
    expect(exception[0]?.message).toContain("handler threw on purpose");
    const warn = records.filter((r) => r.type === "log");
    expect(warn).toHaveLength(1);
    expect(warn[0]).toMatchObject({ level: "warn", sinks: [names.problems], matchedRoutes: [1], dropped: false });
    const invocations = records.filter((r) => r.type === "invocation");
    expect(invocations.every((r) => r.sinks.join() === names.archive && r.matchedRoutes.toString() === "2")).toBe(true);

    const sinks = res.json.sinks as SinkAnswer[];
    const kv = sinks.find((s) => s.sink === names.problems);
    expect(kv).toMatchObject({ type: "kv", records: 1, batches: 1, preview: { records: 1 } });
    expect(JSON.stringify(kv?.preview?.payload)).toContain(`${label}/`);
    expect(JSON.stringify(kv?.preview?.payload)).toContain("leaked");
    const queue = sinks.find((s) => s.sink === names.exceptions);
    expect(JSON.stringify(queue?.preview?.payload)).toContain("handler threw on purpose");
    const archive = sinks.find((s) => s.sink === names.archive);
    expect(archive).toMatchObject({ records: 2, preview: { records: 2 } });
    expect(archive?.preview?.body?.split("\n").filter(Boolean)).toHaveLength(2);

    // Previews only: nothing reached R2 or KV.
    expect((await env.LOGS_R2.list({ prefix: `${prefix}/` })).objects).toEqual([]);
    expect((await env.LOGS_KV.list({ prefix: `${label}/` })).keys).toEqual([]);
    // The collector's resolved secret never comes back, not even when a log line carries it.
    expect(sinks.find((s) => s.sink === names.collector)).toMatchObject({ records: 0, preview: null });
    expect(warn[0]?.message).toBe("token ${COLLECTOR_TOKEN} leaked");
    expect(res.text).not.toContain(SECRET);
  });

  it("explains each where leaf by leaf for every record, and names the sinks sampling dropped it from", async () => {
    const label = uid("api-where");
    const apiErrors = {
      and: [
        { key: "url", operator: "contains", value: "/api" },
        { key: "event.request.headers.X-Tenant", operator: "eq", value: "acme" },
        {
          or: [
            { key: "status", operator: "geq", value: 500 },
            { key: "outcome", operator: "eq", value: "exception" },
          ],
        },
      ],
    };
    const config = {
      SINKS: [
        { name: `${label}-dd`, type: "http", url: "https://logs.example.com/in" },
        { name: `${label}-none`, type: "r2", binding: "LOGS_R2", prefix: label, sample: { "2xx": 0, default: 1 } },
      ],
      ROUTES: [{ sinks: [`${label}-dd`], where: apiErrors }, { sinks: [`${label}-none`] }],
    };
    const item = (status: number) => ({
      ...warnItem(label),
      event: {
        request: { url: "https://example.com/api/cart", method: "GET", headers: { "x-tenant": "acme" } },
        response: { status },
      },
    });
    const res = await post("/routes/test", JSON.stringify({ events: [item(502), item(200)], config }), deployment());
    expect(res.status).toBe(200);
    const records = res.json.records as (RecordAnswer & { where?: unknown; sampledOut?: string[] })[];
    const [failing, ok] = records.filter((r) => r.type === "invocation");
    expect(failing).toMatchObject({ sinks: [`${label}-dd`, `${label}-none`], matchedRoutes: [0, 1] });
    expect(failing?.sampledOut).toBeUndefined();
    expect(failing?.where).toEqual([
      {
        at: "ROUTES[0].where",
        matched: true,
        leaves: [
          { at: "where.and[0]", leaf: 'url contains "/api"', matched: true },
          { at: "where.and[1]", leaf: 'event.request.headers.X-Tenant eq "acme"', matched: true },
          { at: "where.and[2].or[0]", leaf: "status geq 500", matched: true },
          { at: "where.and[2].or[1]", leaf: 'outcome eq "exception"', matched: false },
        ],
      },
    ]);
    expect(ok).toMatchObject({ sinks: [], matchedRoutes: [1], dropped: true, sampledOut: [`${label}-none`] });
    expect((ok?.where ?? []) as { matched: boolean }[]).toMatchObject([
      {
        matched: false,
        leaves: [{ matched: true }, { matched: true }, { matched: false }, { matched: false }],
      },
    ]);

    const check = await post("/config/check", JSON.stringify(config), deployment());
    expect(check.status).toBe(200);
    expect(check.json.routes).toEqual([
      { sinks: [`${label}-dd`], filter: { where: apiErrors } },
      { sinks: [`${label}-none`], filter: {} },
    ]);
    expect((check.json.sinks as { filter: unknown }[])[1]?.filter).toEqual({ sample: { "2xx": 0, default: 1 } });
    const bad = await post(
      "/config/check",
      JSON.stringify({
        ...config,
        ROUTES: [{ sinks: `${label}-dd`, where: { or: [{ key: "url", operator: "equals", value: "x" }] } }],
      }),
      deployment(),
    );
    expect(bad.status).toBe(422);
    expect(bad.json.errors).toEqual([
      {
        variable: "ROUTES",
        path: "[0].where.or[0].operator",
        message:
          "unknown operator; expected one of eq, !eq, lt, leq, gt, geq, startsWith, endsWith, contains, !contains, in, !in, exists, !exists",
      },
    ]);
  });

  it("previews what a shaped sink and a logpush sink would send", async () => {
    const label = uid("api-shape");
    const config = {
      SINKS: [
        {
          name: "lean",
          type: "http",
          url: "https://x.example/",
          format: "ndjson",
          fields: ["id", "level"],
          add: { env: "prod" },
        },
        { name: "lp", type: "http", url: "https://x.example/", format: "logpush" },
      ],
    };
    const res = await post("/routes/test", JSON.stringify({ events: [exceptionItem(label)], config }), deployment());
    expect(res.status).toBe(200);
    const sinks = res.json.sinks as SinkAnswer[];
    const lean = (sinks.find((s) => s.sink === "lean")?.preview?.body ?? "").split("\n").filter(Boolean);
    expect(lean.length).toBeGreaterThan(1);
    for (const line of lean) expect(Object.keys(JSON.parse(line) as object).sort()).toEqual(["env", "id", "level"]);
    const lp = (sinks.find((s) => s.sink === "lp")?.preview?.body ?? "").split("\n").filter(Boolean);
    expect(lp).toHaveLength(1);
    expect(JSON.parse(lp[0] ?? "{}")).toMatchObject({ Outcome: "exception", Exceptions: [{ Name: "Error" }] });
  });

  it("shows scrubbed data in previews", async () => {
    const label = uid("api-scrub");
    const { names, config } = candidate(label);
    const item = warnItem(label, "login with password=hunter2hunter2 ok");
    const res = await post("/routes/test", JSON.stringify({ events: [item], config }), deployment());
    expect(res.status).toBe(200);
    const kv = (res.json.sinks as SinkAnswer[]).find((s) => s.sink === names.problems);
    expect(JSON.stringify(kv?.preview)).toContain("login with password=");
    expect(res.text).not.toContain("hunter2hunter2");
  });

  it("takes a JSON array and NDJSON alike, with the deployed config and inline filters", async () => {
    const label = uid("api-forms");
    const sinks = [
      { name: "all", type: "r2", binding: "LOGS_R2", prefix: label },
      { name: "errors", type: "http", url: "https://x.example/", types: ["exception"], format: "ndjson" },
    ];
    const environment = deployment({ SINKS: JSON.stringify(sinks), ROUTES: undefined });
    const items = [exceptionItem(label), warnItem(label)];
    const asArray = await post("/routes/test", JSON.stringify(items), environment);
    const asNdjson = await post("/routes/test", items.map((i) => JSON.stringify(i)).join("\n"), environment, {
      ...auth,
      "content-type": "application/x-ndjson",
    });
    const asLines = await post("/routes/test", `${items.map((i) => JSON.stringify(i)).join("\n")}\n`, environment);
    for (const res of [asArray, asNdjson, asLines]) {
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ config: "deployed", accepted: 2, rejected: [] });
      const records = res.json.records as RecordAnswer[];
      expect(records.every((r) => r.matchedRoutes === "inline filter")).toBe(true);
      const exception = records.find((r) => r.type === "exception");
      expect(exception?.sinks).toEqual(["all", "errors"]);
      expect(records.find((r) => r.type === "log")?.sinks).toEqual(["all"]);
      const http = (res.json.sinks as SinkAnswer[]).find((s) => s.sink === "errors");
      expect(http?.preview?.body).toContain("handler threw on purpose");
    }
    expect(asArray.json.records).toEqual(asNdjson.json.records);
    expect((await env.LOGS_R2.list({ prefix: `${label}/` })).objects).toEqual([]);
  });

  it("answers 422 for an invalid candidate and 400 for a malformed body", async () => {
    const bad = await post(
      "/routes/test",
      JSON.stringify({ events: [], config: { SINKS: [{ name: "x", type: "kv", binding: "NOPE" }] } }),
      deployment(),
    );
    expect(bad.status).toBe(422);
    expect(bad.json.errors).toEqual([expect.objectContaining({ variable: "SINKS", path: "[0].binding" })]);
    const broken = await post("/routes/test", "[{", deployment());
    expect(broken.status).toBe(400);
    expect(String(broken.json.error)).toContain("not valid JSON");
  });
});

describe("POST /replay", () => {
  function replayEnv(label: string) {
    return deployment({
      SINKS: JSON.stringify([{ name: label, type: "r2", binding: "LOGS_R2", prefix: label, gzip: false }]),
      ROUTES: undefined,
    });
  }

  it("delivers the valid lines to a real R2 sink and rejects a malformed one by line number", async () => {
    const label = uid("api-replay");
    const items = [warnItem(label), exceptionItem(label), warnItem(label)];
    const lines = [
      JSON.stringify(items[0]),
      JSON.stringify(items[1]),
      '{"outcome": "ok", "logs": [',
      JSON.stringify(items[2]),
    ];
    const res = await post("/replay", lines.join("\n"), replayEnv(label));
    expect(res.status).toBe(200);
    const records = 3 * 2; // an invocation and a log per warn item, an invocation and an exception for the other
    expect(res.json).toEqual({
      accepted: 3,
      rejected: [{ line: 3, item: 3, reason: expect.stringContaining("not valid JSON") }],
      mode: "direct",
      sinks: [
        { sink: label, records, delivered: records, pending: 0, deadLettered: 0, failed: 0, oversized: 0, errors: [] },
      ],
    });
    const stored = await r2Lines(label);
    expect(stored).toHaveLength(records);
    expect(stored.filter((r) => r.type === "exception").map((r) => r.message)).toEqual([
      expect.stringContaining("handler threw on purpose"),
    ]);
  });

  it("reads wrangler tail --format json output (pretty-printed objects) and a JSON array", async () => {
    const label = uid("api-pretty");
    const items = [warnItem(label), { ...warnItem(label), outcome: 7 }, warnItem(label)];
    const pretty = items.map((i) => JSON.stringify(i, null, 2)).join("\n");
    const res = await post("/replay", pretty, replayEnv(label));
    expect(res.status).toBe(200);
    const secondStarts = JSON.stringify(items[0], null, 2).split("\n").length + 1;
    expect(res.json).toMatchObject({
      accepted: 2,
      rejected: [{ line: secondStarts, item: 2, reason: expect.stringContaining('"outcome" must be a string') }],
      sinks: [{ sink: label, records: 4, delivered: 4, failed: 0 }],
    });
    const array = await post("/replay", JSON.stringify([warnItem(label)]), replayEnv(label));
    expect(array.json).toMatchObject({ accepted: 1, rejected: [], sinks: [{ delivered: 2 }] });
    expect(await r2Lines(label)).toHaveLength(6);
  });

  it("answers 413 over 1 MiB or over 1000 items, and delivers nothing", async () => {
    const label = uid("api-limit");
    const line = JSON.stringify(warnItem(label, "x".repeat(1000)));
    const big = Array.from({ length: Math.ceil(MAX_BODY_BYTES / line.length) + 1 }, () => line).join("\n");
    const tooBig = await post("/replay", big, replayEnv(label));
    expect(tooBig.status).toBe(413);
    expect(String(tooBig.json.error)).toContain("1 MiB");
    const small = JSON.stringify({ outcome: "ok" });
    const many = await post("/replay", Array.from({ length: 1001 }, () => small).join("\n"), replayEnv(label));
    expect(many.status).toBe(413);
    expect(String(many.json.error)).toContain("1000 TraceItems");
    expect(await r2Lines(label)).toEqual([]);
  });
});

describe("body limit", () => {
  const limit = `the limit is ${MAX_BODY_BYTES} bytes (1 MiB): split the capture into smaller requests`;

  it("refuses a body over 1 MiB with 413, naming its declared size, or that it streamed past the limit", async () => {
    const size = MAX_BODY_BYTES + 10;
    const declared = await post("/config/check", "x".repeat(size), deployment(), {
      ...auth,
      "content-length": String(size),
    });
    expect(declared.status).toBe(413);
    expect(declared.json).toEqual({ error: `the body is ${size} bytes; ${limit}` });
    const chunk = new Uint8Array(64 * 1024).fill(0x78);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > MAX_BODY_BYTES + chunk.length) controller.close();
        else controller.enqueue(chunk);
        sent += chunk.length;
      },
    });
    const res = await app.request("/replay", { method: "POST", body: stream, headers: auth }, deployment());
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: `the body is more than ${MAX_BODY_BYTES} bytes; ${limit}` });
    // Refused once past the limit: the rest of the stream is never read.
    expect(sent).toBeLessThanOrEqual(MAX_BODY_BYTES + 2 * chunk.length);
  });

  it("refuses a body that is not UTF-8 with 400, and reads an empty one as empty", async () => {
    const bad = await app.request(
      "/config/check",
      { method: "POST", body: new Uint8Array([0x7b, 0xff, 0x7d]), headers: auth },
      deployment(),
    );
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: "the body is not valid UTF-8 text" });
    const empty = await post("/config/check", "", deployment());
    expect(empty.status).toBe(400);
    expect(empty.json).toEqual({ error: "the body is empty; send a JSON object" });
  });
});

describe("splitJsonValues", () => {
  it("splits NDJSON and pretty-printed objects, and a truncated object costs only itself", () => {
    const text = ['{"a":1}', "", "{", '  "b": "x}{"', "}", '{"c": [1,', '{"d":2}'].join("\n");
    expect(splitJsonValues(text)).toEqual([
      { line: 1, text: '{"a":1}' },
      { line: 3, text: '{\n  "b": "x}{"\n}' },
      { line: 6, text: '{"c": [1,' },
      { line: 7, text: '{"d":2}' },
    ]);
  });
});
