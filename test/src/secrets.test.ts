/**
 * Secret hygiene: distinctive secret values are planted in the env; they may
 * appear only where they are the credential (the auth header a backend
 * receives), never in a body, a log line, an error, /health, /status, the dashboard, its records or its cookie.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app";
import { buildConfig, formatConfigErrors } from "../../src/config";
import { handleTail } from "../../src/tail";
import captured from "../fixtures/trace-items.json";
import { received, receiverUrl, uid } from "../sinks/helpers";
import { STATS_AT_ONCE } from "../support/stats";

const SECRETS = {
  COLLECTOR_TOKEN: "SECRET-collector-7f3a9c",
  DD_API_KEY: "SECRET-datadog-55e1d0",
  ADMIN_TOKEN: "SECRET-admin-91b2aa",
  URL_SECRET: "SECRET-in-a-url-4c4c4c",
};

afterEach(() => vi.restoreAllMocks());

function everything(calls: unknown[][]): string {
  return calls
    .map((args) => args.map((a) => (a instanceof Error ? `${a.message} ${a.stack}` : String(a))).join(" "))
    .join("\n");
}

describe("secrets never leak", () => {
  it("appear only as credentials in what backends receive, and nowhere in logs, errors, /health or /status", async () => {
    const spies = [
      vi.spyOn(console, "error").mockImplementation(() => {}),
      vi.spyOn(console, "warn").mockImplementation(() => {}),
      vi.spyOn(console, "log").mockImplementation(() => {}),
      vi.spyOn(console, "info").mockImplementation(() => {}),
    ];
    const base = receiverUrl();
    const [okLabel, badLabel, ddLabel] = [uid("sec-ok"), uid("sec-bad"), uid("sec-dd")];
    const sinks = [
      {
        name: "collector",
        type: "http",
        url: `${base}/ok/${okLabel}`,
        headers: { authorization: "Bearer ${COLLECTOR_TOKEN}" },
      },
      {
        name: "failing",
        type: "http",
        url: `${base}/status/401/${badLabel}`,
        headers: { authorization: "Bearer ${COLLECTOR_TOKEN}" },
      },
      { name: "dd", type: "datadog", endpoint: `${base}/ok/${ddLabel}` },
    ];
    const vars = {
      ...(env as unknown as Record<string, unknown>),
      ...SECRETS,
      SINKS: JSON.stringify(sinks),
      DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", ...STATS_AT_ONCE, attempts: 1 }),
    };
    const ctx = createExecutionContext();
    await handleTail([captured["fetch-ok"], captured["fetch-exception"]], vars, ctx);
    await waitOnExecutionContext(ctx);

    // Backends: the secret is the credential header and nothing else.
    const got = [...(await received(okLabel)), ...(await received(badLabel)), ...(await received(ddLabel))];
    expect(got.length).toBeGreaterThanOrEqual(3);
    for (const req of got) {
      expect(req.body).not.toMatch(/SECRET-/);
      for (const [name, value] of Object.entries(req.headers)) {
        if (name === "authorization") expect(value).toBe(`Bearer ${SECRETS.COLLECTOR_TOKEN}`);
        else if (name === "dd-api-key") expect(value).toBe(SECRETS.DD_API_KEY);
        else expect(value, name).not.toMatch(/SECRET-/);
      }
    }
    expect(got.some((r) => r.headers["dd-api-key"] === SECRETS.DD_API_KEY)).toBe(true);

    // The API.
    const app = createApp();
    const health = await (await app.request("/health", {}, vars)).text();
    const status = await (
      await app.request("/status", { headers: { authorization: `Bearer ${SECRETS.ADMIN_TOKEN}` } }, vars)
    ).text();
    expect(status).toContain('"failing"');
    const auth = { headers: { authorization: `Bearer ${SECRETS.ADMIN_TOKEN}` } };
    const dashboard = await (await app.request("/", auth, vars)).text();
    expect(dashboard).toContain('<div class="card" data-sink="failing"');
    const records = await (await app.request("/records", auth, vars)).text();
    expect(records).toContain('"records"');
    const login = await app.request(
      "/login",
      { method: "POST", body: new URLSearchParams({ token: SECRETS.ADMIN_TOKEN }) },
      vars,
    );
    const cookie = login.headers.get("set-cookie") ?? "";
    expect(cookie).toContain("tailfan_session=v1.");
    for (const text of [health, status, dashboard, records, cookie]) expect(text).not.toMatch(/SECRET-/);

    // Config errors, even when a secret is where a URL should be.
    const broken = buildConfig({ ...vars, SINKS: JSON.stringify([{ name: "x", type: "http", url: "${URL_SECRET}" }]) });
    expect(broken.ok).toBe(false);
    if (!broken.ok) expect(formatConfigErrors(broken.errors)).not.toMatch(/SECRET-/);

    // Every console line tailfan wrote (the failing sink is logged with its reason).
    const logged = everything(spies.flatMap((s) => s.mock.calls));
    expect(logged).toContain('sink "failing"');
    expect(logged).not.toMatch(/SECRET-/);
  });
});

/** Reads every dead letter under a prefix of the real local R2 bucket, gunzipped, with its metadata. */
async function deadLetters(bucket: R2Bucket, prefix: string): Promise<string> {
  const { objects } = await bucket.list({ prefix, include: ["customMetadata"] });
  let out = "";
  for (const o of objects) {
    const obj = await bucket.get(o.key);
    if (!obj) continue;
    const text = await new Response(obj.body.pipeThrough(new DecompressionStream("gzip"))).text();
    out += `${text}\n${JSON.stringify(o.customMetadata)}\n`;
  }
  return out;
}

describe("secrets in every config path and backend answer", () => {
  const PLANTED = {
    COLLECTOR_TOKEN: "SECRET-collector-7f3a9c",
    DD_API_KEY: "SECRET-datadog-55e1d0",
    ADMIN_TOKEN: "SECRET-admin-91b2aa",
    URL_KEY: "SECRET-urlkey-0d0d0d",
    // A line break: the part of a picklist message that quotes the value must go whole.
    MULTILINE: "POST\nSECRET-multiline-3e3e3e",
    BINDING_SECRET: "SECRET-binding-6a6a6a",
  };
  const base = () => ({ ...(env as unknown as Record<string, unknown>), ...PLANTED });

  /** Everything a caller can read: /health, /status, the dashboard, /records. */
  async function surfaces(vars: Record<string, unknown>): Promise<string> {
    const app = createApp();
    const auth = { headers: { authorization: `Bearer ${PLANTED.ADMIN_TOKEN}` } };
    const parts = await Promise.all([
      app.request("/health", {}, vars),
      app.request("/status", auth, vars),
      app.request("/", auth, vars),
      app.request("/records", auth, vars),
    ]);
    return (await Promise.all(parts.map((r) => r.text()))).join("\n");
  }

  it("never shows a secret from a broken config: picklists, bindings, JSON typos in SINKS and DELIVERY", async () => {
    const spies = [vi.spyOn(console, "error"), vi.spyOn(console, "warn"), vi.spyOn(console, "log")].map((s) =>
      s.mockImplementation(() => {}),
    );
    const broken: Record<string, unknown>[] = [
      { SINKS: [{ name: "h", type: "http", url: "https://logs.example.com", method: "${MULTILINE}" }] },
      { SINKS: [{ name: "h", type: "http", url: "https://logs.example.com", format: "${MULTILINE}" }] },
      { SINKS: [{ name: "d", type: "discord", webhook: "https://discord.example.com/x", minLevel: "${MULTILINE}" }] },
      { SINKS: [{ name: "k", type: "kv", binding: "${BINDING_SECRET}" }] },
      { SINKS: [{ name: "a", type: "r2", binding: "LOGS_R2" }], DELIVERY: { queue: "${BINDING_SECRET}" } },
      // A typo in a JSON string whose value holds a secret written out: V8's message quotes the text around it.
      { SINKS: '[{"name":"h","type":"http","url":"https://x.example/?k=SECRET-raw-sinks-1a1a1a",}]' },
      { SINKS: [{ name: "a", type: "r2", binding: "LOGS_R2" }], DELIVERY: '{"queue":"SECRET-raw-delivery-2b2b",}' },
      { SINKS: [{ name: "a", type: "r2", binding: "LOGS_R2" }], SCRUB: '{"hashKey":"SECRET-raw-scrub-3c3c",}' },
      { SINKS: [{ name: "a", type: "r2", binding: "LOGS_R2" }], LIMITS: '{"x":"SECRET-raw-limits-4d4d",}' },
    ];
    for (const vars of broken) {
      const all = { ...base(), ...vars };
      const result = buildConfig(all);
      expect(result.ok, JSON.stringify(vars)).toBe(false);
      const shown = `${result.ok ? "" : formatConfigErrors(result.errors)}\n${await surfaces(all)}`;
      expect(shown, JSON.stringify(vars)).toMatch(/"ok":false/);
      expect(shown, JSON.stringify(vars)).not.toMatch(/SECRET-/);
    }
    expect(everything(spies.flatMap((s) => s.mock.calls))).not.toMatch(/SECRET-/);
  });

  it("never keeps a secret a backend quotes back: logs, /status, the dashboard, /records, dead letters", async () => {
    const spies = [vi.spyOn(console, "error"), vi.spyOn(console, "warn"), vi.spyOn(console, "log")].map((s) =>
      s.mockImplementation(() => {}),
    );
    const receiver = receiverUrl();
    const prefix = uid("dl-secrets");
    const sinks = [
      {
        name: "tattler",
        type: "http",
        url: `${receiver}/tattle/401/${uid("tattle")}?api_key=\${URL_KEY}`,
        headers: { authorization: "Bearer ${COLLECTOR_TOKEN}" },
      },
      { name: "dd-tattler", type: "datadog", endpoint: `${receiver}/tattle/403/${uid("tattle-dd")}` },
    ];
    const vars = {
      ...base(),
      SINKS: JSON.stringify(sinks),
      DELIVERY: JSON.stringify({
        stats: "TAILFAN_STATS",
        ...STATS_AT_ONCE,
        attempts: 1,
        deadLetter: "LOGS_R2",
        deadLetterPrefix: prefix,
      }),
    };
    const ctx = createExecutionContext();
    await handleTail([captured["fetch-ok"], captured["fetch-exception"]], vars, ctx);
    await waitOnExecutionContext(ctx);

    const shown = await surfaces(vars);
    const letters = await deadLetters(env.LOGS_R2 as unknown as R2Bucket, prefix);
    const logged = everything(spies.flatMap((s) => s.mock.calls));
    // The reasons are there, with the secrets named instead of shown.
    expect(shown).toContain("invalid credentials Bearer ${COLLECTOR_TOKEN}");
    expect(shown).toContain("api_key=${URL_KEY}");
    expect(letters).toContain("invalid credentials ${DD_API_KEY}");
    expect(logged).toContain('sink "tattler"');
    for (const text of [shown, letters, logged]) expect(text).not.toMatch(/SECRET-/);
  });
});
