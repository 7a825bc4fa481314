/**
 * tailfan's own error lines, throttled per isolate. A line that can repeat on
 * every invocation (a sink that keeps failing, a counters object that is
 * overloaded) would otherwise cost one Workers Logs event per invocation
 * exactly when load peaks. The first line of a kind is printed at once; the
 * repeats within the next minute are only counted, and the count is printed
 * as one summary line with the first log call after that minute.
 */
import { maskVariable } from "./text";

/** How long repeats of one kind of line are counted before they are summarized. */
export const LOG_WINDOW_MS = 60_000;
/** Kinds of lines tracked at once; the oldest is summarized and forgotten beyond it. */
const MAX_KINDS = 200;
const EXAMPLE_CHARS = 200;

/**
 * The kind of a line: its text with numbers and long hex runs (ids, hashes)
 * masked, so "3 record(s)" and "7 record(s)" are the same kind while another
 * sink's name or another reason is not.
 */
export function kindOf(message: string): string {
  return maskVariable(message);
}

interface Kind {
  /** When this kind's window began (its line was printed then). */
  since: number;
  /** Lines of this kind left out since then. */
  repeats: number;
  example: string;
}

export interface ThrottledLog {
  /** console.error, unless a line of the same kind was printed less than a minute ago. */
  error(message: string, ...rest: unknown[]): void;
}

/** A throttled log with its own memory; `now` and `print` are the clock and console it uses. */
export function throttledLog(
  now: () => number = Date.now,
  print: (...args: unknown[]) => void = (...args) => console.error(...args),
): ThrottledLog {
  const kinds = new Map<string, Kind>();
  const summarize = (k: Kind) => {
    if (k.repeats > 0) print(`tailfan: ${k.repeats} more like "${k.example}" in the last minute`);
  };
  return {
    error(message, ...rest) {
      const at = now();
      // Windows that have ended are summarized now, whatever kind this line is.
      for (const [key, k] of kinds) {
        if (at - k.since < LOG_WINDOW_MS) continue;
        summarize(k);
        kinds.delete(key);
      }
      const key = kindOf(message);
      const seen = kinds.get(key);
      if (seen) {
        seen.repeats++;
        return;
      }
      if (kinds.size >= MAX_KINDS) {
        const [oldest, k] = kinds.entries().next().value as [string, Kind];
        summarize(k);
        kinds.delete(oldest);
      }
      kinds.set(key, { since: at, repeats: 0, example: message.slice(0, EXAMPLE_CHARS) });
      print(message, ...rest);
    },
  };
}

/** This isolate's throttled log: what tailfan's handlers write their repeatable errors to. */
const shared = throttledLog();

/** Logs an error line, throttled per isolate (see throttledLog). */
export function logError(message: string, ...rest: unknown[]): void {
  shared.error(message, ...rest);
}
