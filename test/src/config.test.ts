import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { AnySinkDefinition } from "../../sinks/index";
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

  it("reports bad JSON with where the mistake is, never the parser's quote of the value", () => {
    const msg = errorsOf(buildConfig(withVars({ SINKS: '[{"name": "a", type: "http"}]' })));
    expect(msg).toBe(
      'SINKS: is not valid JSON at line 1, column 16; write a JSON array like [{"name":"all","type":"r2","binding":"LOGS"}] or use a TOML array of tables in [vars]',
    );
  });

  it("rejects a value that is not a list", () => {
    expect(errorsOf(buildConfig(withVars({ SINKS: "42" })))).toBe("SINKS: expected a list of tables, got a number");
  });

  it("names an unknown sink type and lists the known ones", () => {
    const msg = errorsOf(buildConfig(withVars({ SINKS: [{ name: "x", type: "elastic" }] })));
    expect(msg).toBe(
      'SINKS[0].type: unknown sink type "elastic"; known types: http, kv, r2, queue, d1, analytics_engine, datadog, loki, splunk, elasticsearch, otlp, otlp_traces, otlp_metrics, pipeline, newrelic, axiom, betterstack, honeycomb, sentry, slack, discord, webhook',
    );
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

  it("checks a sample rule key by key and rate by rate", () => {
    const rule = { "5xx": 1, "2XX": 0.1, "6xx": 1, exeption: 1, ok: 1.5, default: "all" };
    expect(
      errorsOf(buildConfig(withVars({ SINKS: [{ name: "k", type: "kv", binding: "LOGS_KV", sample: rule }] }))),
    ).toBe(
      [
        'SINKS[0].sample["6xx"]: unknown key; expected a status class ("5xx"), a status code ("404"), an outcome (ok, exception, exceededCpu, exceededMemory, scriptNotFound, canceled, responseStreamDisconnected, loadShed, killSwitch, daemonDown, unknown) or default',
        'SINKS[0].sample.exeption: unknown key; expected a status class ("5xx"), a status code ("404"), an outcome (ok, exception, exceededCpu, exceededMemory, scriptNotFound, canceled, responseStreamDisconnected, loadShed, killSwitch, daemonDown, unknown) or default',
        "SINKS[0].sample.ok: must be a number from 0 to 1",
        "SINKS[0].sample.default: must be a number from 0 to 1",
      ].join("\n"),
    );
    expect(
      errorsOf(buildConfig(withVars({ SINKS: [{ name: "k", type: "kv", binding: "LOGS_KV", sample: "10%" }] }))),
    ).toBe(
      'SINKS[0].sample: must be a number from 0 to 1, or a table of rates like { "5xx" = 1, "2xx" = 0.1, exception = 1, default = 1 }',
    );
    const ok = buildConfig(
      withVars({ SINKS: [{ name: "k", type: "kv", binding: "LOGS_KV", sample: { "5XX": 1, "2xx": 0.1 } }] }),
    );
    expect(ok.ok && ok.config.sinks[0]?.filter).toEqual({ sample: { "5xx": 1, "2xx": 0.1 } });
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

describe("config: DELIVERY", () => {
  const sinks = JSON.stringify([{ name: "archive", type: "r2", binding: "LOGS_R2" }]);
  /** SINKS plus the bindings the durable path names, and the DELIVERY under test. */
  function delivery(value: unknown): ConfigResult {
    return buildConfig(
      withVars({ TAILFAN_QUEUE: env.TAILFAN_QUEUE, TAILFAN_STATS: env.TAILFAN_STATS, SINKS: sinks, DELIVERY: value }),
    );
  }
  const deliveryOf = (result: ConfigResult) => (result.ok ? result.config.delivery : null);

  it("applies the defaults when DELIVERY is not set, empty, or {}", () => {
    const defaults = {
      mode: "direct",
      timeoutMs: 5000,
      attempts: 3,
      backoffMs: 1000,
      budgetMs: 20000,
      queue: null,
      retries: 5,
      retryDelaySeconds: 30,
      deadLetter: null,
      deadLetterPrefix: "dead-letter",
      deadLetterQueue: null,
      stats: null,
      recent: 200,
      bufferMs: 250,
      spoolPrefix: "spool",
      statsFlushMs: 5000,
      statsShards: 8,
    };
    for (const value of [undefined, "", "{}", {}]) expect(deliveryOf(delivery(value))).toEqual(defaults);
  });

  it("accepts wrangler.toml's table and the same as a JSON string, defaults filled in", () => {
    const table = {
      mode: "buffered",
      queue: "TAILFAN_QUEUE",
      deadLetter: "LOGS_R2",
      deadLetterQueue: "tailfan-dead-letter",
      stats: "TAILFAN_STATS",
      retries: 0,
      retryDelaySeconds: 43_200,
    };
    const fromTable = deliveryOf(delivery(table));
    // bufferMs defaults to 5000 ms in buffered mode (250 in direct): records wait for the consumer's batch anyway.
    expect(fromTable).toMatchObject({
      ...table,
      timeoutMs: 5000,
      attempts: 3,
      deadLetterPrefix: "dead-letter",
      bufferMs: 5000,
    });
    expect(deliveryOf(delivery({ ...table, bufferMs: 300 }))?.bufferMs).toBe(300);
    expect(deliveryOf(delivery(JSON.stringify(table)))).toEqual(fromTable);
    // The shipped wrangler.toml's own DELIVERY.
    expect(deliveryOf(buildConfig(env as unknown as Record<string, unknown>))).toMatchObject({
      mode: "direct",
      queue: "TAILFAN_QUEUE",
      deadLetter: "LOGS_R2",
      deadLetterQueue: "tailfan-dead-letter",
      stats: "TAILFAN_STATS",
    });
  });

  it("rejects an unknown mode", () => {
    expect(errorsOf(delivery({ mode: "turbo" }))).toBe('DELIVERY.mode: must be "direct" or "buffered"');
  });

  it("rejects timeoutMs and budgetMs out of range, and a fractional or mistyped number", () => {
    expect(errorsOf(delivery({ timeoutMs: 50 }))).toBe("DELIVERY.timeoutMs: must be at least 100 ms");
    expect(errorsOf(delivery({ timeoutMs: 30_001 }))).toBe("DELIVERY.timeoutMs: must be at most 30000 ms");
    expect(errorsOf(delivery({ budgetMs: 999 }))).toMatch(/^DELIVERY\.budgetMs: must be at least 1000 ms/);
    expect(errorsOf(delivery({ budgetMs: 29_000 }))).toMatch(
      /^DELIVERY\.budgetMs: must be at most 28000 ms \(waitUntil ends about 30 s after the invocation\)$/,
    );
    expect(errorsOf(delivery({ attempts: 1.5 }))).toMatch(/^DELIVERY\.attempts: /);
    expect(errorsOf(delivery({ retries: "5" }))).toBe("DELIVERY.retries: expected number, got a string");
    expect(errorsOf(delivery({ retryDelaySeconds: 43_201 }))).toBe(
      "DELIVERY.retryDelaySeconds: must be at most 43200 seconds",
    );
  });

  it("names an unknown key and lists the known ones", () => {
    expect(errorsOf(delivery({ queue: "TAILFAN_QUEUE", retry: 3 }))).toBe(
      "DELIVERY.retry: unknown option; known options: mode, timeoutMs, attempts, backoffMs, budgetMs, queue, retries, retryDelaySeconds, deadLetter, deadLetterPrefix, deadLetterQueue, stats, recent, bufferMs, spoolPrefix, statsFlushMs, statsShards",
    );
  });

  it("says which queue binding is missing, or is not a queue", () => {
    expect(errorsOf(delivery({ queue: "WORK" }))).toBe(
      'DELIVERY.queue: no binding named "WORK"; add [[queues.producers]] binding = "WORK" to wrangler.toml',
    );
    expect(errorsOf(delivery({ queue: "LOGS_KV" }))).toMatch(
      /^DELIVERY\.queue: binding "LOGS_KV" is not a queue binding/,
    );
  });

  it("says when the dead letter is not an R2 bucket", () => {
    expect(errorsOf(delivery({ deadLetter: "LOGS_KV" }))).toMatch(
      /^DELIVERY\.deadLetter: binding "LOGS_KV" is not a r2 binding/,
    );
  });

  it("says when the stats binding is missing or not a Durable Object namespace", () => {
    expect(errorsOf(delivery({ stats: "COUNTERS" }))).toBe(
      'DELIVERY.stats: no binding named "COUNTERS"; add [[durable_objects.bindings]] name = "COUNTERS", class_name = "TailfanStats" to wrangler.toml',
    );
    expect(errorsOf(delivery({ stats: "LOGS_R2" }))).toBe(
      'DELIVERY.stats: binding "LOGS_R2" is not a Durable Object namespace',
    );
  });

  it("refuses buffered mode without a queue", () => {
    expect(errorsOf(delivery({ mode: "buffered" }))).toMatch(/^DELIVERY\.queue: buffered mode needs a queue/);
  });

  it("reports bad JSON, and all option mistakes at once (binding checks follow once the options are valid)", () => {
    expect(errorsOf(delivery("{queue: TAILFAN_QUEUE}"))).toMatch(
      /^DELIVERY: is not valid JSON at line 1, column 2; write a table/,
    );
    const result = delivery({ mode: "fast", timeoutMs: 1, deadLetter: "NOPE", stats: "LOGS_KV", extra: true });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => `${e.variable}${e.path}`).sort()).toEqual(
      ["DELIVERY.extra", "DELIVERY.mode", "DELIVERY.timeoutMs"].sort(),
    );
  });

  it("reports DELIVERY and SINKS errors together", () => {
    const result = buildConfig(withVars({ SINKS: [{ name: "a", type: "nope" }], DELIVERY: { queue: "NOPE" } }));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => `${e.variable}${e.path}`)).toEqual(["DELIVERY.queue", "SINKS[0].type"]);
  });
});

describe("config: default secrets of a sink type", () => {
  it("a credential left out reads the type's usual secret, shown by name only", async () => {
    const { SINK_TYPES } = await import("../../sinks/index");
    const { defineSink } = await import("../../sinks/types");
    const v = await import("valibot");
    const fake = defineSink({
      type: "vendor-test",
      description: "test vendor",
      options: v.strictObject({ apiKey: v.string() }),
      defaultSecrets: { apiKey: "VENDOR_TEST_KEY" },
      batch: () => ({ maxRecords: 1, maxBytes: 1024 }),
      create: () => ({ encode: () => null, send: async () => ({ outcome: "ok" as const }) }),
    });
    const registry = { ...SINK_TYPES, "vendor-test": fake as AnySinkDefinition };
    const ok = buildConfig(
      withVars({ VENDOR_TEST_KEY: "k-123", SINKS: [{ name: "v", type: "vendor-test" }] }),
      registry,
    );
    expect(ok.ok).toBe(true);
    if (!ok.ok) return;
    expect(ok.config.sinks[0]?.options).toEqual({ apiKey: "k-123" });
    expect(ok.config.sinks[0]?.publicOptions).toEqual({ apiKey: "${VENDOR_TEST_KEY}" });
    const missing = errorsOf(buildConfig(withVars({ SINKS: [{ name: "v", type: "vendor-test" }] }), registry));
    expect(missing).toBe(
      "SINKS[0].apiKey: is required: set the secret VENDOR_TEST_KEY (`npx wrangler secret put VENDOR_TEST_KEY`, or .dev.vars for local dev), or set this option",
    );
    // The global registry is untouched: without the parameter the type is unknown.
    expect(errorsOf(buildConfig(withVars({ SINKS: [{ name: "v", type: "vendor-test" }] })))).toMatch(
      /^SINKS\[0\]\.type: unknown sink type "vendor-test"/,
    );
  });
});

describe("config: sink type names", () => {
  it("a type named like an Object.prototype member is an unknown type, not a crash", () => {
    for (const type of ["constructor", "toString", "__proto__"]) {
      expect(errorsOf(buildConfig(withVars({ SINKS: [{ name: "x", type }] })))).toMatch(
        new RegExp(`^SINKS\\[0\\]\\.type: unknown sink type "${type}"; known types: http, `),
      );
    }
  });
});

describe("config: vendor sinks and their usual secrets", () => {
  it('`{ type = "datadog" }` plus the DD_API_KEY secret is the whole config', () => {
    const result = buildConfig(withVars({ DD_API_KEY: "dd-k3y", SINKS: [{ name: "dd", type: "datadog" }] }));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect((result.config.sinks[0]?.options as { apiKey: string } | undefined)?.apiKey).toBe("dd-k3y");
    expect(JSON.stringify(result.config.sinks[0]?.publicOptions)).toBe('{"apiKey":"${DD_API_KEY}"}');
  });

  it("without the secret, a required key says which secret to put", () => {
    expect(errorsOf(buildConfig(withVars({ SINKS: [{ name: "dd", type: "datadog" }] })))).toMatch(
      /^SINKS\[0\]\.apiKey: is required: set the secret DD_API_KEY/,
    );
  });

  it("an optional credential whose secret is not set stays unset (a Loki without auth)", () => {
    const result = buildConfig(
      withVars({ SINKS: [{ name: "l", type: "loki", endpoint: "https://loki.example.com" }] }),
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.sinks[0]?.options).toBeDefined();
    expect((result.config.sinks[0]?.options as { apiKey?: string } | undefined)?.apiKey).toBeUndefined();
  });
});

describe("config: built once per isolate", () => {
  it("serves the same config for the same raw values and builds a new one when they change", async () => {
    const { loadConfig } = await import("../../src/config");
    const sinks = JSON.stringify([{ name: "cached", type: "r2", binding: "LOGS_R2" }]);
    const first = loadConfig(withVars({ SINKS: sinks }));
    expect(loadConfig(withVars({ SINKS: sinks }))).toBe(first);
    const changed = loadConfig(withVars({ SINKS: sinks.replace("cached", "other") }));
    expect(changed).not.toBe(first);
    expect(changed.ok && changed.config.sinks[0]?.name).toBe("other");
  });

  it("rebuilds when any config var it reads changes, and not for a var it does not read", async () => {
    const { CONFIG_VARS, loadConfig } = await import("../../src/config");
    const base = withVars({ SINKS: JSON.stringify([{ name: "cached", type: "r2", binding: "LOGS_R2" }]) });
    for (const name of CONFIG_VARS) {
      const before = loadConfig(base);
      expect(loadConfig({ ...base, UNRELATED_VAR: "x" }), name).toBe(before);
      expect(loadConfig({ ...base, [name]: `${String(base[name] ?? "")} ` }), name).not.toBe(before);
    }
  });
});
