/**
 * Config size: Cloudflare allows 5 KB per environment variable. Measured at
 * config load (and so in POST /config/check) with a warning from 4 KB and an
 * error over 5 KB; SINKS and ROUTES may be split into numbered parts.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app";
import { buildConfig, formatConfigErrors, loadConfig } from "../../src/config";
import { VAR_LIMIT_BYTES, VAR_WARN_BYTES } from "../../src/config/size";

const vars = env as unknown as Record<string, unknown>;
const withVars = (extra: Record<string, unknown>) => ({
  LOGS_KV: vars.LOGS_KV,
  LOGS_R2: vars.LOGS_R2,
  LOGS_QUEUE: vars.LOGS_QUEUE,
  ...extra,
});

/** `n` http sinks; each is about 150 bytes of JSON. */
const httpSinks = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => ({
    name: `collector-${from + i}`,
    type: "http",
    url: `https://logs-${from + i}.example.com/ingest/v1/records`,
    format: "ndjson",
    level: "warn",
  }));
/** The smallest number of sinks whose JSON reaches `bytes`. */
function sinksOver(bytes: number): ReturnType<typeof httpSinks> {
  let n = 1;
  while (JSON.stringify(httpSinks(n)).length < bytes) n++;
  return httpSinks(n);
}

describe("config size", () => {
  it("says nothing under 4 KB", () => {
    const result = buildConfig(withVars({ SINKS: JSON.stringify(httpSinks(3)) }));
    expect(result.ok && result.config.warnings).toEqual([]);
  });

  it("warns from 4 KB, naming the variable, its size and the way past the limit", () => {
    const sinks = sinksOver(VAR_WARN_BYTES);
    const bytes = JSON.stringify(sinks).length;
    expect(bytes).toBeLessThan(VAR_LIMIT_BYTES);
    const result = buildConfig(withVars({ SINKS: JSON.stringify(sinks) }));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.warnings).toEqual([
      `SINKS is ${bytes} bytes (${(bytes / 1024).toFixed(1)} KB), near Cloudflare's limit of 5120 bytes (5 KB) per variable: split it into SINKS_1, SINKS_2, ... (each a list, joined in order)`,
    ]);
  });

  it("measures a [vars] TOML table as its JSON", () => {
    const result = buildConfig(withVars({ SINKS: sinksOver(VAR_WARN_BYTES) }));
    expect(result.ok && result.config.warnings[0]).toMatch(/^SINKS is \d+ bytes/);
  });

  it("refuses a variable over 5 KB with its name and size", () => {
    const sinks = sinksOver(VAR_LIMIT_BYTES + 1);
    const bytes = JSON.stringify(sinks).length;
    const text = formatConfigErrors(
      (() => {
        const r = buildConfig(withVars({ SINKS: JSON.stringify(sinks) }));
        return r.ok ? [] : r.errors;
      })(),
    );
    expect(text).toContain(`SINKS: is ${bytes} bytes (${(bytes / 1024).toFixed(1)} KB); Cloudflare allows 5120 bytes`);
    expect(text).toContain("SINKS_1, SINKS_2");
  });

  it("counts bytes, not characters", () => {
    const sinks = [{ name: "a", type: "r2", binding: "LOGS_R2", prefix: "é".repeat(2100) }];
    expect(JSON.stringify(sinks).length).toBeLessThan(VAR_WARN_BYTES);
    const result = buildConfig(withVars({ SINKS: JSON.stringify(sinks) }));
    expect(result.ok && result.config.warnings[0]).toMatch(/^SINKS is 42\d\d bytes/);
  });

  it("joins SINKS_1, SINKS_2, ... in numeric order after SINKS, each measured on its own", () => {
    const big = sinksOver(VAR_LIMIT_BYTES + 1);
    const half = Math.ceil(big.length / 2);
    const parts = {
      SINKS: JSON.stringify(big.slice(0, 2)),
      SINKS_10: JSON.stringify(big.slice(half)),
      SINKS_2: JSON.stringify(big.slice(2, half)),
      ROUTES_1: JSON.stringify([{ sinks: big.slice(0, half).map((s) => s.name) }]),
      ROUTES_2: [{ sinks: big.slice(half).map((s) => s.name) }],
    };
    const result = buildConfig(withVars(parts));
    expect(result.ok ? [] : result.errors).toEqual([]);
    if (!result.ok) return;
    expect(result.config.sinks.map((s) => s.name)).toEqual(big.map((s) => s.name));
    expect(result.config.routes?.map((r) => r.sinks.length)).toEqual([half, big.length - half]);
  });

  it("names a part that is not a list", () => {
    const r = buildConfig(withVars({ SINKS_1: JSON.stringify(httpSinks(1)), SINKS_2: "{nope" }));
    expect(r.ok ? "" : formatConfigErrors(r.errors)).toMatch(/^SINKS_2: is not valid JSON/);
  });

  it("words a broken part as every config var: never a fragment of the value", () => {
    const r = buildConfig(withVars({ SINKS_1: JSON.stringify(httpSinks(1)), SINKS_2: `[{"a": leaked-fragment-91}]` }));
    const text = r.ok ? "" : formatConfigErrors(r.errors);
    expect(text).toBe("SINKS_2: is not valid JSON; each part is a list, e.g. [{ ... }, { ... }]");
    expect(text).not.toContain("leaked");
  });

  it("reloads when a part changes", () => {
    const a = loadConfig(withVars({ SINKS_1: JSON.stringify(httpSinks(1)) }));
    const b = loadConfig(withVars({ SINKS_1: JSON.stringify(httpSinks(2)) }));
    expect([a, b].map((r) => (r.ok ? r.config.sinks.length : -1))).toEqual([1, 2]);
  });

  it("POST /config/check reports the size warning of a candidate", async () => {
    const ADMIN = "admin-token-config-size-7f3a";
    const ctx = createExecutionContext();
    const res = await createApp().request(
      "/config/check",
      {
        method: "POST",
        body: JSON.stringify({ SINKS: sinksOver(VAR_WARN_BYTES) }),
        headers: { authorization: `Bearer ${ADMIN}` },
      },
      { ...vars, ADMIN_TOKEN: ADMIN, DELIVERY: "{}" },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    const body = (await res.json()) as { valid: boolean; warnings: string[] };
    expect(res.status).toBe(200);
    expect(body.warnings.some((w) => /^SINKS is \d+ bytes .* near Cloudflare's limit/.test(w))).toBe(true);
  });
});
