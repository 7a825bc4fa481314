/**
 * Every `node ...` npm script answers --help with its usage (exit 0) and
 * refuses an unknown option with one line on stderr (exit 2, no stack trace).
 * The scripts come from package.json, so a new script is covered too.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { root } from "./helpers";

const scripts = Object.entries(
  (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts,
)
  .map(([name, command]) => [name, /^node (\S+\.mjs)$/.exec(command)?.[1]] as const)
  .filter((entry): entry is readonly [string, string] => entry[1] !== undefined);

function run(script: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, script), ...args], { cwd: root, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

describe("npm scripts", () => {
  it("covers every script that runs a Node file", () => {
    expect(scripts.map(([name]) => name).sort()).toEqual(
      ["bench", "demo:capture", "demo:landed", "demo:traffic", "dev", "fixtures", "fuzz", "replay"].sort(),
    );
  });

  for (const [name, script] of scripts) {
    it(`${name}: --help prints the usage and its options`, async () => {
      const r = await run(script, ["--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: /);
      expect(r.stdout).toContain("--help");
    });

    it(`${name}: a bad option gives one line and exit code 2`, async () => {
      const r = await run(script, ["--no-such-option"]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/no-such-option.*\(see --help\)$/);
    });
  }
});
