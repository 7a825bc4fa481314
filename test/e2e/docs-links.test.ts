/**
 * Every relative link in README.md, docs/*.md and demo/README.md points at a
 * file that exists, and every #anchor at a heading of that file (GitHub's
 * heading ids).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { expect, it } from "vitest";
import { root } from "./helpers";

const files = [
  "README.md",
  "demo/README.md",
  ...readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];

/** GitHub's id of a heading: lower case, punctuation other than - and _ dropped, spaces to -. */
function slug(heading: string): string {
  return heading
    .replace(/`/g, "")
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\- _]/gu, "")
    .replace(/ /g, "-");
}

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, "utf8").replace(/^```[\s\S]*?^```/gm, "");
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of text.matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const base = slug(m[1] ?? "");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

it("every relative link and #anchor resolves", () => {
  const broken: string[] = [];
  let checked = 0;
  for (const file of files) {
    const lines = readFileSync(join(root, file), "utf8").split("\n");
    let fenced = false;
    lines.forEach((line, i) => {
      if (line.startsWith("```")) fenced = !fenced;
      if (fenced) return;
      for (const m of line.replace(/`[^`]*`/g, "").matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1] ?? "";
        if (/^[a-z]+:/i.test(target)) continue;
        checked++;
        const [path = "", anchor] = target.split("#");
        const to = path === "" ? join(root, file) : join(root, dirname(file), path);
        const where = `${file}:${i + 1}: ${target}`;
        if (!existsSync(to)) broken.push(`${where} (no file ${relative(root, to)})`);
        else if (anchor !== undefined && to.endsWith(".md") && !anchorsOf(to).has(anchor))
          broken.push(`${where} (no heading #${anchor} in ${relative(root, to)})`);
      }
    });
  }
  expect(broken).toEqual([]);
  expect(checked).toBeGreaterThan(20);
});
