/**
 * What an attacker (or a careless config) can try: secret values in error
 * messages and failure reasons, values nested thousands deep, URLs that are
 * not http(s), and guessing the admin token. Against the real local
 * bindings, the real Rate Limiting binding included.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { SINK_TYPES } from "../../sinks/index";
import { createApp } from "../../src/app";
import { buildConfig, formatConfigErrors } from "../../src/config";
import { MAX_CONFIG_DEPTH } from "../../src/config/env";
import { LOGIN_LIMIT, newSession, SESSION_COOKIE } from "../../src/dashboard/session";

const bindings = env as unknown as Record<string, unknown>;
const ADMIN = "admin-token-hardening-5e5e5e5e";

function deep(levels: number, leaf: unknown = "x"): unknown {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { k: value };
  return value;
}

describe("config errors never echo a value", () => {
  it("names a binding given as a secret reference by the reference, not the value", () => {
    const result = buildConfig({
      ...bindings,
      MY_SECRET: "hunter2-binding-value",
      SINKS: [{ name: "k", type: "kv", binding: "${MY_SECRET}" }],
    });
    expect(result.ok).toBe(false);
    const text = result.ok ? "" : formatConfigErrors(result.errors);
    expect(text).toBe(
      'SINKS[0].binding: no binding named "${MY_SECRET}"; add [[kv_namespaces]] binding = "${MY_SECRET}" to wrangler.toml',
    );
  });

  it("drops the whole quoted value of a picklist, line breaks and all", () => {
    const result = buildConfig({
      ...bindings,
      ML: "PATCH\nline-two-value",
      SINKS: [{ name: "h", type: "http", url: "https://logs.example.com", method: "${ML}" }],
    });
    const text = result.ok ? "" : formatConfigErrors(result.errors);
    expect(text).toMatch(/^SINKS\[0\]\.method: Invalid type: Expected \("POST" \| "PUT"\)$/);
  });

  it("says where a JSON typo is in SINKS, DELIVERY, SCRUB and LIMITS, without the parser's quote", () => {
    for (const variable of ["SINKS", "DELIVERY", "SCRUB", "LIMITS"]) {
      const sinks = variable === "SINKS" ? undefined : [{ name: "a", type: "r2", binding: "LOGS_R2" }];
      const result = buildConfig({ ...bindings, SINKS: sinks, [variable]: '{\n  "a": "raw-fragment-77",\n}' });
      const text = result.ok ? "" : formatConfigErrors(result.errors);
      expect(text, variable).toMatch(new RegExp(`^${variable}: is not valid JSON at line 3, column 1; `));
      expect(text, variable).not.toContain("raw-fragment");
    }
  });
});

describe("failure reasons are redacted once, where they enter", () => {
  const vars = {
    ...bindings,
    COLLECTOR_TOKEN: "collector/token+value=1234",
    SINKS: [
      {
        name: "h",
        type: "http",
        url: "https://logs.example.com",
        headers: { authorization: "Bearer ${COLLECTOR_TOKEN}" },
      },
    ],
  };

  it("redact: resolved secrets by name (as written, JSON-escaped, URL-encoded), then what the detectors find", () => {
    const result = buildConfig(vars);
    if (!result.ok) throw new Error(formatConfigErrors(result.errors));
    const { redact } = result.config;
    expect(redact('401 bad token collector/token+value=1234 ("collector\\/token+value=1234")')).toBe(
      '401 bad token ${COLLECTOR_TOKEN} ("${COLLECTOR_TOKEN}")',
    );
    expect(redact(`denied for https://x.example/?t=${encodeURIComponent("collector/token+value=1234")}&page=2`)).toBe(
      "denied for https://x.example/?t=${COLLECTOR_TOKEN}&page=2",
    );
    expect(redact("unknown key AKIAIOSFODNN7EXAMPLE for user 42")).toBe(
      "unknown key [REDACTED:aws_access_key] for user 42",
    );
  });
});

describe("no value nested thousands deep breaks a walk", () => {
  it("the secret resolver refuses past its bound instead of recursing (3,000 levels)", () => {
    const result = buildConfig({
      ...bindings,
      SINKS: [{ name: "h", type: "http", url: "https://logs.example.com", headers: deep(3000) }],
    });
    expect(result.ok).toBe(false);
    const text = result.ok ? "" : formatConfigErrors(result.errors);
    expect(text).toContain(`is nested more than ${MAX_CONFIG_DEPTH} levels deep`);
  });

  it("POST /config/check and /routes/test answer 400 for a deep candidate, never 500", async () => {
    const app = createApp();
    const env = { ...bindings, ADMIN_TOKEN: ADMIN };
    const sinks = [{ name: "h", type: "http", url: "https://logs.example.com", headers: deep(3000) }];
    for (const [path, body] of [
      ["/config/check", { SINKS: sinks }],
      ["/routes/test", { events: [], config: { SINKS: sinks } }],
      ["/config/check", { SINKS: deep(100_000) }],
    ] as const) {
      const ctx = createExecutionContext();
      const res = await app.request(
        path,
        { method: "POST", body: JSON.stringify(body), headers: { authorization: `Bearer ${ADMIN}` } },
        env,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      expect(res.status, path).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/nested more than \d+ levels deep/);
    }
  });
});

describe("URL options take http(s) only", () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ["http", { url: "U" }, "url"],
    ["slack", { webhook: "U" }, "webhook"],
    ["discord", { webhook: "U" }, "webhook"],
    ["sentry", { dsn: "https://public@o0.ingest.sentry.io/1", endpoint: "U" }, "endpoint"],
    ["datadog", { apiKey: "k", endpoint: "U" }, "endpoint"],
    ["elasticsearch", { endpoint: "U" }, "endpoint"],
    ["otlp", { endpoint: "U" }, "endpoint"],
    ["loki", { endpoint: "U" }, "endpoint"],
  ];
  for (const [type, options, option] of cases) {
    it(`${type}.${option}: ftp:, javascript:, mailto: are refused; https: is taken`, () => {
      expect(SINK_TYPES[type]).toBeDefined();
      for (const url of ["ftp://files.example.com/x", "javascript:alert(1)", "mailto:ops@example.com"]) {
        const sink = { name: "s", type, ...JSON.parse(JSON.stringify(options).replace('"U"', JSON.stringify(url))) };
        const result = buildConfig({ ...bindings, SINKS: [sink] });
        const text = result.ok ? "" : formatConfigErrors(result.errors);
        expect(text, url).toMatch(new RegExp(`^SINKS\\[0\\]\\.${option}: must be an absolute http\\(s\\) URL`));
      }
      const ok = { name: "s", type, ...JSON.parse(JSON.stringify(options).replace('"U"', '"https://x.example"')) };
      const result = buildConfig({ ...bindings, SINKS: [ok] });
      expect(result.ok ? "" : formatConfigErrors(result.errors)).not.toContain(`.${option}:`);
    });
  }
});

describe("failed logins and bearer tokens are rate limited per client IP (the real LOGIN_LIMITER)", () => {
  const app = createApp();
  const env = { ...bindings, ADMIN_TOKEN: ADMIN, SINKS: [{ name: "a", type: "r2", binding: "LOGS_R2" }] };
  const ipOf = () => `203.0.113.${Math.floor(Math.random() * 250) + 1}-${crypto.randomUUID()}`;
  const get = (ip: string, token: string) =>
    app.request("/status", { headers: { authorization: `Bearer ${token}`, "cf-connecting-ip": ip } }, env);
  const login = (ip: string, token: string) =>
    app.request(
      "/login",
      { method: "POST", body: new URLSearchParams({ token }), headers: { "cf-connecting-ip": ip } },
      env,
    );

  it("answers 429 after the limit of wrong bearer tokens, then refuses even the right one; successes do not count", async () => {
    const ip = ipOf();
    for (let i = 0; i < LOGIN_LIMIT * 2; i++) expect((await get(ip, ADMIN)).status).toBe(200);
    for (let i = 0; i < LOGIN_LIMIT; i++) expect((await get(ip, "wrong")).status).toBe(401);
    const limited = await get(ip, "wrong");
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("60");
    // The right token now looks like every other guess.
    expect((await get(ip, ADMIN)).status).toBe(429);
    // Another client is not affected, nor is a valid session cookie from the same one.
    expect((await get(ipOf(), ADMIN)).status).toBe(200);
    const cookie = `${SESSION_COOKIE}=${await newSession(ADMIN)}`;
    const page = await app.request("/records", { headers: { cookie, "cf-connecting-ip": ip } }, env);
    expect(page.status).not.toBe(429);
    expect(page.status).not.toBe(401);
  });

  it("the login form: 429 after the limit of wrong tokens", async () => {
    const ip = ipOf();
    for (let i = 0; i < LOGIN_LIMIT; i++) expect((await login(ip, "wrong")).status).toBe(401);
    const limited = await login(ip, "wrong");
    expect(limited.status).toBe(429);
    expect(await limited.text()).toContain("Too many failed logins");
    expect((await login(ip, ADMIN)).status).toBe(429);
    expect((await login(ipOf(), ADMIN)).status).toBe(303);
  });

  it("without the binding nothing is limited, and /health says so", async () => {
    const { LOGIN_LIMITER: _, ...without } = env as Record<string, unknown>;
    const ip = ipOf();
    for (let i = 0; i < LOGIN_LIMIT + 5; i++) {
      const res = await app.request(
        "/status",
        { headers: { authorization: "Bearer wrong", "cf-connecting-ip": ip } },
        without,
      );
      expect(res.status).toBe(401);
    }
    const health = (await (await app.request("/health", {}, without)).json()) as { warnings: string[] };
    expect(health.warnings.join("\n")).toContain(
      "no LOGIN_LIMITER binding: failed logins and bearer tokens are not rate limited",
    );
    const withIt = (await (await app.request("/health", {}, env)).json()) as { warnings: string[] };
    expect(withIt.warnings.join("\n")).not.toContain("LOGIN_LIMITER");
  });
});

describe("the last resort", () => {
  it("an error no route handled answers 503 JSON, not 500, and logs no secret", async () => {
    const app = createApp();
    app.post("/boom", () => {
      throw new Error(`crashed holding ${ADMIN}`);
    });
    const logged: unknown[][] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => logged.push(args);
    try {
      const res = await app.request(
        "/boom",
        { method: "POST", headers: { authorization: `Bearer ${ADMIN}` } },
        { ...bindings, ADMIN_TOKEN: ADMIN },
      );
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        error: "the request could not be handled",
        hint: "check the request's size and shape; GET /health",
      });
    } finally {
      console.error = original;
    }
    expect(JSON.stringify(logged)).toContain("crashed holding ${ADMIN_TOKEN}");
    expect(JSON.stringify(logged)).not.toContain(ADMIN);
  });
});
