import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { buildConfig, type ConfigResult, formatConfigErrors } from "../../src/config";

/** The real local bindings from wrangler.toml, plus whatever vars a case sets. */
function withVars(vars: Record<string, unknown>): Record<string, unknown> {
  return { LOGS_KV: env.LOGS_KV, LOGS_R2: env.LOGS_R2, LOGS_QUEUE: env.LOGS_QUEUE, ...vars };
}

function errorsOf(result: ConfigResult): string {
  expect(result.ok).toBe(false);
  return result.ok ? "" : formatConfigErrors(result.errors);
}

describe("config: SINKS", () => {
  it("accepts the TOML array the runtime hands over (wrangler.toml's own SINKS)", () => {
    const result = buildConfig(env as unknown as Record<string, unknown>);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.sinks.map((s) => [s.name, s.type])).toEqual([
      ["archive", "r2"],
      ["recent-problems", "kv"],
      ["exceptions", "queue"],
    ]);
    expect(result.config.routes).toBeNull();
  });

  it("accepts a JSON string and applies option defaults", () => {
    const result = buildConfig(
      withVars({ SINKS: JSON.stringify([{ name: "h", type: "http", url: "https://logs.example.com/in" }]) }),
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const [sink] = result.config.sinks;
    expect(sink?.options).toEqual({
      url: "https://logs.example.com/in",
      method: "POST",
      headers: {},
      format: "json",
      gzip: false,
      maxRecords: 1000,
      maxBytes: 1024 * 1024,
    });
    expect(sink?.batch).toEqual({ maxRecords: 1000, maxBytes: 1024 * 1024 });
  });

  it("accepts a single table as a one-sink list, and inline filters in short form", () => {
    const result = buildConfig(
      withVars({ SINKS: { name: "k", type: "kv", binding: "LOGS_KV", level: "warn", scripts: "api-*", status: 500 } }),
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.sinks[0]?.filter).toEqual({ level: "warn", scripts: ["api-*"], status: ["500"] });
  });

  it("says SINKS is missing, with an example", () => {
    expect(errorsOf(buildConfig(withVars({})))).toMatch(/^SINKS: is not set; .*type = "r2"/);
  });

  it("reports bad JSON with the parser's reason", () => {
    const msg = errorsOf(buildConfig(withVars({ SINKS: '[{"name": "a", type: "http"}]' })));
    expect(msg).toMatch(/^SINKS: is not valid JSON \(.+\); write a JSON array/);
  });

  it("rejects a value that is not a list", () => {
    expect(errorsOf(buildConfig(withVars({ SINKS: "42" })))).toBe("SINKS: expected a list of tables, got a number");
  });

  it("names an unknown sink type and lists the known ones", () => {
    const msg = errorsOf(buildConfig(withVars({ SINKS: [{ name: "x", type: "elastic" }] })));
    expect(msg).toBe('SINKS[0].type: unknown sink type "elastic"; known types: http, kv, r2, queue');
  });

  it("rejects duplicate sink names, naming both places", () => {
    const msg = errorsOf(
      buildConfig(
        withVars({
          SINKS: [
            { name: "a", type: "r2", binding: "LOGS_R2" },
            { name: "a", type: "kv", binding: "LOGS_KV" },
          ],
        }),
      ),
    );
    expect(msg).toBe('SINKS[1].name: duplicate sink name "a" (also SINKS[0].name); names must be unique');
  });

  it("says which binding is missing and how to declare it", () => {
    const msg = errorsOf(buildConfig(withVars({ SINKS: [{ name: "a", type: "kv", binding: "NOPE" }] })));
    expect(msg).toBe(
      'SINKS[0].binding: no binding named "NOPE"; add [[kv_namespaces]] binding = "NOPE" to wrangler.toml',
    );
  });

  it("says when a binding is of the wrong kind", () => {
    const msg = errorsOf(buildConfig(withVars({ SINKS: [{ name: "a", type: "queue", binding: "LOGS_KV" }] })));
    expect(msg).toMatch(/^SINKS\[0\]\.binding: binding "LOGS_KV" is not a queue binding/);
  });

  it("resolves ${NAME} secrets, also inside strings, and keeps them out of the public options", () => {
    const result = buildConfig(
      withVars({
        COLLECTOR_TOKEN: "s3cr3t-value",
        SINKS: [
          {
            name: "h",
            type: "http",
            url: "https://x.example/in",
            headers: { authorization: "Bearer ${COLLECTOR_TOKEN}" },
          },
        ],
      }),
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const sink = result.config.sinks[0];
    const options = sink?.options as { headers: Record<string, string> } | undefined;
    expect(options?.headers.authorization).toBe("Bearer s3cr3t-value");
    expect(JSON.stringify(sink?.publicOptions)).not.toContain("s3cr3t-value");
    expect(JSON.stringify(sink?.publicOptions)).toContain("${COLLECTOR_TOKEN}");
  });

  it("names a missing secret, where it is referenced and how to set it", () => {
    const msg = errorsOf(
      buildConfig(
        withVars({
          SINKS: [
            { name: "h", type: "http", url: "https://x.example/in", headers: { authorization: "Bearer ${TOKEN}" } },
          ],
        }),
      ),
    );
    expect(msg).toBe(
      "SINKS[0].headers.authorization: secret TOKEN is not set (referenced as ${TOKEN}); set it with `npx wrangler secret put TOKEN`, or in .dev.vars for local dev",
    );
  });

  it("never echoes a secret value in an error", () => {
    const msg = errorsOf(
      buildConfig(
        withVars({ URL_SECRET: "not a url at all 9f8e7d", SINKS: [{ name: "h", type: "http", url: "${URL_SECRET}" }] }),
      ),
    );
    expect(msg).toBe("SINKS[0].url: must be an absolute http(s) URL");
    expect(msg).not.toContain("9f8e7d");
  });

  it("names an unknown option and lists the known ones", () => {
    const msg = errorsOf(buildConfig(withVars({ SINKS: [{ name: "h", type: "http", urll: "https://x.example" }] })));
    expect(msg).toContain("SINKS[0].url: is required");
    expect(msg).toContain(
      "SINKS[0].urll: unknown option; known options: url, method, headers, format, gzip, maxRecords, maxBytes",
    );
  });

  it("explains wrong types and bad filter values with their path", () => {
    const msg = errorsOf(
      buildConfig(
        withVars({
          SINKS: [
            { name: "h", type: "http", url: "https://x.example", gzip: "yes" },
            { name: "k", type: "kv", binding: "LOGS_KV", level: "loud", sample: 2, eventTypes: ["fetch", "smtp"] },
          ],
        }),
      ),
    );
    expect(msg).toContain("SINKS[0].gzip: expected boolean, got a string");
    expect(msg).toContain('SINKS[1].level: must be one of "debug", "info", "log", "warn", "error"');
    expect(msg).toContain("SINKS[1].sample: must be from 0 to 1");
    expect(msg).toContain("SINKS[1].eventTypes[1]: must be one of");
  });

  it("reports every error at once", () => {
    const result = buildConfig(
      withVars({ SINKS: [{ name: "a", type: "nope" }, { name: "b", type: "kv" }, { type: "r2" }] }),
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => `${e.variable}${e.path}`)).toEqual([
      "SINKS[0].type",
      "SINKS[1].binding",
      "SINKS[2].name",
    ]);
  });
});

describe("config: ROUTES", () => {
  const sinks = [
    { name: "archive", type: "r2", binding: "LOGS_R2" },
    { name: "problems", type: "kv", binding: "LOGS_KV" },
  ];

  it("accepts routes and warns about a sink no route names", () => {
    const result = buildConfig(
      withVars({ SINKS: sinks, ROUTES: JSON.stringify([{ sinks: ["problems"], level: "warn" }]) }),
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.routes).toHaveLength(1);
    expect(result.config.warnings).toEqual(['sink "archive" is named by no route, so it receives nothing']);
  });

  it("names a route's unknown sink and lists the sinks", () => {
    const msg = errorsOf(buildConfig(withVars({ SINKS: sinks, ROUTES: [{ sinks: ["archive", "slack"] }] })));
    expect(msg).toBe('ROUTES[0].sinks[1]: no sink named "slack"; sinks are: archive, problems');
  });

  it("rejects unknown route fields", () => {
    const msg = errorsOf(buildConfig(withVars({ SINKS: sinks, ROUTES: [{ sinks: "archive", minLevel: "warn" }] })));
    expect(msg).toMatch(/^ROUTES\[0\]\.minLevel: unknown option; known options: sinks, outcomes, level/);
  });

  it("reports bad ROUTES JSON", () => {
    expect(errorsOf(buildConfig(withVars({ SINKS: sinks, ROUTES: "[{" })))).toMatch(/^ROUTES: is not valid JSON/);
  });
});
