/**
 * The dashboard in a real browser: `npm run dev`'s own script starts tailfan
 * and the demo producer (two `wrangler dev` processes), `npm run
 * demo:traffic`'s script drives the producer, and headless Chromium logs in,
 * sees the sinks and their counts move, filters the latest records, and takes
 * the screenshot the README shows (checked here for its key elements).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, ensureChromium } from "./chromium";
import { decodePng } from "./png";

const root = path.resolve(import.meta.dirname, "../..");
const out = path.join(import.meta.dirname, ".out");
const TOKEN = randomBytes(16).toString("hex");

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 90_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const value = await fn();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
}

interface SinkTotals {
  sink: string;
  totals: { received: number; sent: number };
}

let tmp: string;
let dev: ChildProcess;
let devOutput = "";
let producer: string;
let tailfan: string;
let context: BrowserContext;
let page: Page;

function node(args: string[], extraEnv: Record<string, string> = {}) {
  return spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, WRANGLER_REGISTRY_PATH: path.join(tmp, "registry"), ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

async function run(args: string[]): Promise<{ code: number | null; output: string }> {
  const child = node(args);
  let output = "";
  child.stdout?.on("data", (d) => {
    output += d;
  });
  child.stderr?.on("data", (d) => {
    output += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { code, output };
}

async function sinkTotals(): Promise<SinkTotals[]> {
  const res = await fetch(`${tailfan}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (!res.ok) throw new Error(`GET /status answered ${res.status}`);
  return ((await res.json()) as { sinks: SinkTotals[] }).sinks;
}

const received = (sinks: SinkTotals[], name: string) => sinks.find((s) => s.sink === name)?.totals.received ?? 0;

beforeAll(async () => {
  const executablePath = await ensureChromium();
  tmp = mkdtempSync(path.join(tmpdir(), "tailfan-browser-"));
  mkdirSync(out, { recursive: true });
  const envFile = path.join(tmp, "tailfan.env");
  writeFileSync(envFile, `ADMIN_TOKEN=${TOKEN}\n`);
  const [p, t] = [await freePort(), await freePort()];
  producer = `http://localhost:${p}`;
  tailfan = `http://localhost:${t}`;
  dev = node([
    "demo/dev.mjs",
    "--port",
    String(p),
    "--tailfan-port",
    String(t),
    "--persist-to",
    path.join(tmp, "state"),
    "--secrets",
    envFile,
  ]);
  dev.stdout?.on("data", (d) => {
    devOutput += d;
  });
  dev.stderr?.on("data", (d) => {
    devOutput += d;
  });
  try {
    await until("tailfan's /health", async () => ((await fetch(`${tailfan}/health`)).ok ? true : undefined));
    await until("the producer", async () => ((await fetch(`${producer}/404`)).status === 404 ? true : undefined));
    // The producer reaches tailfan through wrangler's dev registry a moment after both are up.
    await until("the producer's tail events to reach tailfan", async () => {
      await fetch(`${producer}/`);
      return received(await sinkTotals(), "archive") > 0 ? true : undefined;
    });
  } catch (err) {
    throw new Error(`${String(err)}\n--- npm run dev output ---\n${devOutput.slice(-4000)}`);
  }
  context = await chromium.launchPersistentContext(path.join(tmp, "profile"), {
    executablePath,
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: { width: 1280, height: 900 },
  });
  // Each page of the dashboard is rendered by two wrangler dev processes: on a loaded machine a navigation can
  // take longer than Playwright's 30 s default, which is a slow machine, not a broken page. Tests keep 120 s.
  context.setDefaultTimeout(90_000);
  context.setDefaultNavigationTimeout(90_000);
  page = context.pages()[0] ?? (await context.newPage());
}, 300_000);

afterAll(async () => {
  await context?.close();
  if (dev?.pid !== undefined && dev.exitCode === null) {
    const exited = new Promise((r) => dev.once("exit", r));
    dev.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, 30_000);

describe("dashboard in Chromium against npm run dev", () => {
  it("demo:traffic drives the producer and waits for tailfan's counters", async () => {
    const before = received(await sinkTotals(), "archive");
    const { code, output } = await run([
      "demo/traffic.mjs",
      "--url",
      producer,
      "--tailfan",
      tailfan,
      "--token",
      TOKEN,
      "--rounds",
      "2",
    ]);
    expect(code, output).toBe(0);
    expect(output).toContain("/reject");
    expect(output).toContain("archive");
    const after = await sinkTotals();
    expect(received(after, "archive")).toBeGreaterThan(before);
    // The failed background tasks and the failing cron runs are exceptions.
    expect(received(after, "exceptions")).toBeGreaterThanOrEqual(4);
    expect(received(after, "recent-problems")).toBeGreaterThan(0);
  });

  it("asks for the token, refuses a wrong one, and logs in with the right one", async () => {
    await page.goto(`${tailfan}/`);
    await expect.poll(() => page.locator("form#login").count()).toBe(1);
    await page.fill('input[name="token"]', "not-the-token");
    await Promise.all([page.waitForURL(`${tailfan}/login`), page.click('button[type="submit"]')]);
    expect(await page.locator("#login-error").textContent()).toContain("Wrong token");

    await page.fill('input[name="token"]', TOKEN);
    await Promise.all([page.waitForURL(`${tailfan}/`), page.click('button[type="submit"]')]);
    await page.waitForSelector("#sinks");
    const [cookie] = await context.cookies(tailfan);
    expect(cookie).toMatchObject({ name: "tailfan_session", httpOnly: true, secure: true, sameSite: "Strict" });
    expect(cookie?.value).not.toContain(TOKEN);
  });

  it("shows every sink with its health and counts, and the counts move with new traffic", async () => {
    const names = await page
      .locator("#sinks .card")
      .evaluateAll((cards) => cards.map((c) => c.getAttribute("data-sink")));
    expect(names).toEqual(["archive", "recent-problems", "exceptions"]);
    for (const name of names) {
      expect(await page.locator(`.card[data-sink="${name}"]`).getAttribute("data-health")).toBe("healthy");
      expect(await page.locator(`.card[data-sink="${name}"] svg.chart polyline[data-series="sent"]`).count()).toBe(1);
    }
    const sent = async () =>
      Number(await page.locator('.card[data-sink="archive"] [data-count="sent"] b').textContent());
    const first = await sent();
    expect(first).toBeGreaterThan(0);
    // Routes: no ROUTES in the demo config, so the sinks' own filters are shown.
    expect(await page.locator("#sink-table").textContent()).toContain("level ≥ warn");

    const before = received(await sinkTotals(), "archive");
    await fetch(`${producer}/burst?n=7`);
    await until("the burst to be counted", async () =>
      received(await sinkTotals(), "archive") >= before + 8 ? true : undefined,
    );
    await page.reload();
    expect(await sent()).toBeGreaterThanOrEqual(first + 8);
  });

  it("filters the latest records by outcome and by level", async () => {
    const rows = () =>
      page.locator("#records tbody tr").evaluateAll((trs) =>
        trs.map((tr) => ({
          level: tr.getAttribute("data-level"),
          outcome: tr.getAttribute("data-outcome"),
          type: tr.getAttribute("data-type"),
          text: tr.textContent ?? "",
        })),
      );
    // The page lists a sample of the latest records (at most RECENT_PER_FLUSH per counters write, warn and
    // error first), so the checks below are about what a filter lets through, not about which records are kept.
    const all = await rows();
    expect(all.length).toBeGreaterThanOrEqual(5);

    await page.selectOption('select[name="outcome"]', "exception");
    await Promise.all([page.waitForURL(/outcome=exception/), page.click('#filters button[type="submit"]')]);
    const exceptions = await rows();
    expect(exceptions.length).toBeGreaterThan(0);
    expect(new Set(exceptions.map((r) => r.outcome))).toEqual(new Set(["exception"]));

    await page.selectOption('select[name="outcome"]', "");
    await page.selectOption('select[name="level"]', "warn");
    await Promise.all([page.waitForURL(/level=warn/), page.click('#filters button[type="submit"]')]);
    const warned = await rows();
    expect(warned.length).toBeGreaterThan(0);
    expect(warned.every((r) => r.level === "warn" || r.level === "error")).toBe(true);
    // The filter stays selected on the page it produced.
    expect(await page.locator('select[name="level"]').inputValue()).toBe("warn");
  });

  it("fits a 390 px phone: no sideways scroll, the message column readable", async () => {
    const phone = await context.newPage();
    try {
      await phone.setViewportSize({ width: 390, height: 844 });
      await phone.goto(`${tailfan}/?window=15`);
      expect(await phone.locator("#records tbody tr").count()).toBeGreaterThan(0);
      const scrollWidth = await phone.evaluate(() => document.scrollingElement?.scrollWidth ?? Infinity);
      expect(scrollWidth).toBeLessThanOrEqual(390);
      // Each record stacks its cells, so its message gets the whole width, not a squeezed column.
      const widths = await phone
        .locator("#records tbody td.msg")
        .evaluateAll((tds) => tds.map((td) => td.getBoundingClientRect().width));
      expect(Math.min(...widths)).toBeGreaterThan(300);
    } finally {
      await phone.close();
    }
  });

  it("live view: new records appear without a reload, with the page's filters", async () => {
    await page.goto(`${tailfan}/?level=warn&live=1`);
    // A unique key that reads like the demo's own (the screenshot taken next shows it).
    const marker = `session:${Date.now() % 100_000}`;
    await page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    // A warning (kept by the filter) and a plain request (not kept), both after the page loaded.
    await fetch(`${producer}/warn?key=${marker}`);
    await fetch(`${producer}/`);
    await page.waitForFunction(
      (m) => Array.from(document.querySelectorAll("#records tbody tr")).some((tr) => tr.textContent?.includes(m)),
      marker,
      { timeout: 30_000 },
    );
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    const levels = await page
      .locator("#records tbody tr")
      .evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-level")));
    expect(levels.every((l) => l === "warn" || l === "error")).toBe(true);
    expect(await page.locator("#live-status").textContent()).toMatch(/^live: updated \d\d:\d\d:\d\d UTC/);
  });

  it("takes a screenshot that shows the header, the sinks and the records", async () => {
    await page.goto(`${tailfan}/?level=warn&window=15`);
    const file = path.join(out, "dashboard.png");
    await page.screenshot({ path: file, fullPage: true });
    const image = decodePng(readFileSync(file));
    expect(image.width).toBe(1280);
    expect(image.height).toBeGreaterThan(900);
    const near = (got: [number, number, number], want: string) => {
      const rgb = [1, 3, 5].map((i) => Number.parseInt(want.slice(i, i + 2), 16));
      return got.every((v, i) => Math.abs(v - (rgb[i] as number)) <= 12);
    };
    // The dark header bar.
    expect(near(image.pixel(3, 3), "#1d2330")).toBe(true);
    // Each sink's green "healthy" badge, where the page puts it.
    for (const name of ["archive", "recent-problems", "exceptions"]) {
      const box = await page.locator(`.card[data-sink="${name}"] .badge`).boundingBox();
      expect(box, name).not.toBeNull();
      if (!box) continue;
      expect(near(image.pixel(box.x + 2, box.y + box.height / 2), "#17803d"), name).toBe(true);
    }
    // The records table, inside the picture.
    const table = await page.locator("#records").boundingBox();
    expect(table).not.toBeNull();
    expect((table?.y ?? Infinity) + 40).toBeLessThan(image.height);
    expect(await page.locator("#records tbody tr").count()).toBeGreaterThan(0);
    // TAILFAN_SCREENSHOT=docs/dashboard.png npm test refreshes the README's picture.
    const keep = process.env.TAILFAN_SCREENSHOT;
    if (keep) copyFileSync(file, path.resolve(root, keep));
  });
});
