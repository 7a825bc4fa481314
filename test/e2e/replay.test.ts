/**
 * `npm run replay` end to end: demo/capture.json (the demo producer's tail
 * events as `wrangler tail --format json` prints them) posted in chunks to a
 * tailfan served by the real runtime, from a file and piped on stdin.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogRecord } from "../../src/record";
import { type Bundle, bundleTailfan, readNdjsonObjects, root } from "./helpers";

const TOKEN = "replay-test-admin-token";
const CAPTURE = join(root, "demo", "capture.json");

interface TailEvent {
  outcome: string;
  scriptName: string | null;
  logs: { message: unknown[] }[];
  exceptions: unknown[];
}

/** The capture's events, split the way wrangler prints them: one indented object after another. */
function captureEvents(): TailEvent[] {
  const text = readFileSync(CAPTURE, "utf8");
  return text
    .split(/\n(?=\{\n)/)
    .filter((part) => part.trim() !== "")
    .map((part) => JSON.parse(part) as TailEvent);
}

let mf: Miniflare;
let bundle: Bundle;
let url: string;

function replay(
  args: string[],
  stdin?: string,
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [join(root, "demo", "replay.mjs"), ...args],
      { cwd: root, env: { ...process.env, TAILFAN_TOKEN: TOKEN, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (stdin !== undefined) {
      // Written in small pieces, as a live `wrangler tail` would write it.
      const parts = stdin.match(/[\s\S]{1,700}/g) ?? [];
      for (const p of parts) child.stdin?.write(p);
    }
    child.stdin?.end();
  });
}

beforeAll(async () => {
  bundle = await bundleTailfan();
  mf = new Miniflare(
    convertV4MiniflareOptions({
      workers: [
        {
          name: "tailfan",
          modules: true,
          scriptPath: bundle.script,
          modulesRoot: bundle.dir,
          compatibilityDate: "2025-11-01",
          bindings: {
            ADMIN_TOKEN: TOKEN,
            SINKS: JSON.stringify([{ name: "archive", type: "r2", binding: "LOGS_R2", prefix: "replay" }]),
          },
          r2Buckets: ["LOGS_R2"],
        },
      ],
    }),
  );
  url = (await mf.ready).toString();
});

afterAll(async () => {
  await mf?.dispose();
  bundle?.remove();
});

describe("demo/capture.json", () => {
  it("holds one tail event per kind of demo traffic, in wrangler tail's shape", () => {
    const events = captureEvents();
    expect(events).toHaveLength(9);
    for (const e of events) {
      expect(e.scriptName).toBe("tailfan-demo-producer");
      expect(typeof e.outcome).toBe("string");
      expect(Array.isArray(e.logs)).toBe(true);
    }
    // wrangler tail --format json indents with 4 spaces.
    expect(readFileSync(CAPTURE, "utf8").startsWith('{\n    "')).toBe(true);
    expect(events.some((e) => e.outcome === "exception")).toBe(true);
  });
});

describe("npm run replay", () => {
  it("posts a capture file in chunks and every record lands in the sink", async () => {
    const events = captureEvents();
    const expected = events.reduce((n, e) => n + 1 + e.logs.length + e.exceptions.length, 0);
    const run = await replay(["--url", url, "--chunk", "4", CAPTURE]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    // 9 events in chunks of 4: three requests.
    expect(run.stdout).toContain("replay: 9 TraceItem(s) accepted, 0 rejected, in 3 request(s)");
    expect(run.stdout).toContain(`archive ${expected}/${expected}`);
    const records = await readNdjsonObjects<LogRecord>(await mf.getR2Bucket("LOGS_R2"), "replay");
    expect(new Set(records.map((r) => r.id)).size).toBe(expected);
    expect(records.filter((r) => r.type === "invocation")).toHaveLength(9);
    expect(records.map((r) => r.message)).toContain("hello from the demo producer");
  });

  it("reads a live tail piped on stdin", async () => {
    const run = await replay(["--url", url, "-"], readFileSync(CAPTURE, "utf8"));
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("replay: 9 TraceItem(s) accepted, 0 rejected, in 1 request(s)");
  });

  it("says in one line when the token is wrong", async () => {
    const run = await replay(["--url", url, CAPTURE], undefined, { TAILFAN_TOKEN: "wrong" });
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split("\n")).toEqual([
      "replay: tailfan did not accept the token (--token, TAILFAN_TOKEN or ADMIN_TOKEN in .dev.vars)",
    ]);
  });
});
