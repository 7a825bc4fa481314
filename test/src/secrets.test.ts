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
      DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS", attempts: 1 }),
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
