/**
 * tailfan's own error lines, throttled: one line per kind per isolate per
 * minute, then one summary with the count; and through a real failing path
 * (counters writes to a binding that is not there).
 */
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { kindOf, LOG_WINDOW_MS, logError, throttledLog } from "../../src/log";
import { flushStats, StatsBatch } from "../../src/stats";

function clocked() {
  let t = 1_000_000;
  const lines: string[] = [];
  const log = throttledLog(
    () => t,
    (...args) => lines.push(args.map(String).join(" ")),
  );
  const advance = (ms: number) => {
    t += ms;
  };
  return { log, lines, advance };
}

describe("throttledLog", () => {
  it("prints 1,000 identical failures as one line, then one summary with the right count", () => {
    const { log, lines, advance } = clocked();
    for (let i = 0; i < 1000; i++) {
      log.error(`tailfan: sink "archive" failed: HTTP 503 after ${i % 3} retries, ${100 + i} record(s) pending`);
      advance(50); // 1,000 lines over 50 s: all inside one window
    }
    expect(lines).toEqual(['tailfan: sink "archive" failed: HTTP 503 after 0 retries, 100 record(s) pending']);

    advance(LOG_WINDOW_MS);
    log.error('tailfan: sink "archive" failed: HTTP 503 after 1 retries, 5 record(s) pending');
    expect(lines.slice(1)).toEqual([
      'tailfan: 999 more like "tailfan: sink "archive" failed: HTTP 503 after 0 retries, 100 record(s) pending" in the last minute',
      'tailfan: sink "archive" failed: HTTP 503 after 1 retries, 5 record(s) pending',
    ]);
  });

  it("prints a different message at once, and does not summarize a kind that did not repeat", () => {
    const { log, lines, advance } = clocked();
    log.error("tailfan: could not write counters to TAILFAN_STATS: overloaded");
    log.error("tailfan: could not write counters to TAILFAN_STATS: overloaded");
    log.error('tailfan: sink "collector" failed: HTTP 500');
    log.error("tailfan: the buffer queue refused 3 record(s) (Too Many Requests); delivering directly");
    expect(lines).toEqual([
      "tailfan: could not write counters to TAILFAN_STATS: overloaded",
      'tailfan: sink "collector" failed: HTTP 500',
      "tailfan: the buffer queue refused 3 record(s) (Too Many Requests); delivering directly",
    ]);
    advance(LOG_WINDOW_MS);
    log.error('tailfan: sink "collector" failed: HTTP 500');
    // Only the counters line repeated; the collector's window ended without repeats, so its line comes at once.
    expect(lines.slice(3)).toEqual([
      'tailfan: 1 more like "tailfan: could not write counters to TAILFAN_STATS: overloaded" in the last minute',
      'tailfan: sink "collector" failed: HTTP 500',
    ]);
  });

  it("tells kinds apart by their words, not their numbers or ids", () => {
    expect(kindOf("refused 3 record(s) for 0f1e2d3c4b5a6978")).toBe(
      kindOf("refused 12 record(s) for a1b2c3d4e5f60718"),
    );
    expect(kindOf('sink "a" failed')).not.toBe(kindOf('sink "b" failed'));
  });

  it("bounds the kinds it remembers, summarizing the oldest it forgets", () => {
    const { log, lines } = clocked();
    log.error("tailfan: kind zero");
    log.error("tailfan: kind zero");
    for (let i = 0; i < 300; i++) log.error(`tailfan: kind ${"x".repeat(i + 1)}`);
    expect(lines).toContain('tailfan: 1 more like "tailfan: kind zero" in the last minute');
    expect(lines.length).toBe(1 + 1 + 300);
  });
});

describe("logError and the lines tailfan throttles", () => {
  let errors: MockInstance<typeof console.error>;
  beforeEach(() => {
    errors = vi.spyOn(console, "error").mockImplementation(() => {});
  });
  afterEach(() => {
    errors.mockRestore();
  });

  it("writes through console.error once per kind", () => {
    logError("tailfan: a line only this test writes", new Error("why"));
    logError("tailfan: a line only this test writes", new Error("why again"));
    expect(errors).toHaveBeenCalledTimes(1);
    expect(errors.mock.calls[0]?.[0]).toBe("tailfan: a line only this test writes");
    expect(String(errors.mock.calls[0]?.[1])).toContain("why");
  });

  it("a counters write that fails on every invocation is logged once, not 1,000 times", async () => {
    for (let i = 0; i < 1000; i++) {
      const batch = new StatsBatch();
      batch.add("archive", "sent", i + 1);
      await flushStats({}, "THROTTLE_NO_SUCH_STATS", batch);
    }
    const lines = errors.mock.calls.map((c) => String(c[0]));
    expect(lines.filter((l) => l.includes("could not write counters to THROTTLE_NO_SUCH_STATS"))).toHaveLength(1);
  });
});
