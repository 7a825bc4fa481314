/**
 * The README's pipeline diagram and the layout in docs/development.md name
 * files: each must exist, so a file that moves cannot leave the map behind.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { root } from "./helpers";

/** The first fenced block of a markdown file that contains `marker`. */
function fence(file: string, marker: string): string {
  const text = readFileSync(join(root, file), "utf8");
  const block = [...text.matchAll(/^```[a-z]*\n([\s\S]*?)^```/gm)]
    .map((m) => m[1] ?? "")
    .find((b) => b.includes(marker));
  if (block === undefined) throw new Error(`${file} has no fenced block with ${marker}`);
  return block;
}

it("the README diagram lists the stages 1, 2, 3 ... in order, each with a file that exists", () => {
  const diagram = fence("README.md", "tail_consumers");
  const stages = [...diagram.matchAll(/^ +(\d+)\. +(\S.*?) {2,}.*? ((?:src|sinks)\/\S+)$/gm)];
  expect(stages.map((m) => Number(m[1]))).toEqual(stages.map((_, i) => i + 1));
  expect(stages.length).toBeGreaterThanOrEqual(9);
  const paths = [...diagram.matchAll(/(?:src|sinks)\/[\w./<>-]+/g)].map((m) => m[0]);
  const missing = paths.filter((p) => !p.includes("<") && !existsSync(join(root, p)));
  expect(missing).toEqual([]);
});

it("every src/ file and folder the layout names exists", () => {
  const layout = fence("docs/development.md", "wrangler.toml");
  const lines = layout.split("\n");
  const src = lines.slice(
    lines.findIndex((l) => l.startsWith("src/")),
    lines.findIndex((l) => l.startsWith("sinks/")),
  );
  const names = src
    .join(" ")
    .replace(/^src\/ */, "")
    .replace(/\([^)]*\)/g, " ")
    .split(/[\s,]+/)
    .filter((n) => /\.tsx?$|\/$/.test(n));
  expect(names.length).toBeGreaterThan(10);
  const missing = names.filter((n) => !existsSync(join(root, "src", n)));
  expect(missing).toEqual([]);
});
