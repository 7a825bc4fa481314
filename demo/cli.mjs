// Command-line options for every npm script: `--help` prints the usage and exits 0; an unknown or
// malformed option prints one line and exits 2 (no stack trace).
import { parseArgs } from "node:util";

/** Exit code of a bad command line, as for most Unix tools. */
export const USAGE_EXIT = 2;

/** Prints `name: message (see --help)` on stderr and exits 2. */
export function usageError(name, message) {
  console.error(`${name}: ${message} (see --help)`);
  process.exit(USAGE_EXIT);
}

/**
 * parseArgs with --help/-h added. `usage` is the text --help prints.
 * Returns { values, positionals }.
 */
export function parseCli(name, usage, options, { allowPositionals = false, args = process.argv.slice(2) } = {}) {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h", default: false } },
      allowPositionals,
      strict: true,
    });
  } catch (err) {
    usageError(name, String(err?.message ?? err).split("\n")[0]);
  }
  if (parsed.values.help) {
    console.log(usage.trim());
    process.exit(0);
  }
  return parsed;
}

/** A whole number of at least `min` from option `flag`, else a usage error. */
export function intOption(name, flag, value, min = 1) {
  const n = Number(value);
  if (!/^\d+$/.test(String(value)) || n < min) {
    usageError(name, `--${flag} must be a whole number of at least ${min}, got "${value}"`);
  }
  return n;
}
