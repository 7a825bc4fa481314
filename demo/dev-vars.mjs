// Reads tailfan's ADMIN_TOKEN from a .dev.vars-style file (shared by dev.mjs and traffic.mjs).
import { existsSync, readFileSync } from "node:fs";

/** The value of the file's ADMIN_TOKEN line (quotes removed), or undefined when there is none. */
export function readToken(file) {
  if (!existsSync(file)) return undefined;
  for (const line of readFileSync(file, "utf8").split(/\r?\n/)) {
    const m = /^\s*ADMIN_TOKEN\s*=\s*(.*?)\s*$/.exec(line);
    if (m) return m[1].replace(/^(["'])(.*)\1$/, "$2");
  }
  return undefined;
}
