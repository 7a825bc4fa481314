import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { buildConfig } from "../../src/config";
import {
  compileFilter,
  compileUnsampled,
  describeFilter,
  FILTER_KEYS,
  type FilterSpec,
  globToRegExp,
  sampled,
} from "../../src/filter";
import { normalizeTraceItems } from "../../src/normalize";
import type { LogRecord } from "../../src/record";
import { type RoutingTable, routeRecord } from "../../src/router";

function item(over: Record<string, unknown> = {}, status: number | null = 200) {
  return {
    event: {
      request: { url: "https://shop.example/cart", method: "GET", headers: {}, cf: { colo: "AMS", country: "NL" } },
      ...(status === null ? {} : { response: { status } }),
    },
    eventTimestamp: 1_700_000_000_000,
    logs: [
      { level: "debug", message: ["d"], timestamp: 1_700_000_000_001 },
      { level: "log", message: ["l"], timestamp: 1_700_000_000_002 },
      { level: "warn", message: ["w"], timestamp: 1_700_000_000_003 },
    ],
    exceptions: [],
    diagnosticsChannelEvents: [],
    scriptName: "shop-api",
    outcome: "ok",
    executionModel: "stateless",
    truncated: false,
    cpuTime: 1,
    wallTime: 3,
    ...over,
  };
}

const records = (over?: Record<string, unknown>, status?: number | null) => normalizeTraceItems([item(over, status)]);
const byType = (rs: LogRecord[], type: string) => rs.filter((r) => r.type === type);

describe("filters", () => {
  it("an empty filter matches everything", () => {
    const match = compileFilter({});
    expect(records().every(match)).toBe(true);
  });

  it("minimum level orders debug < info = log < warn < error", () => {
    const rs = records();
    expect(rs.filter(compileFilter({ level: "warn" })).map((r) => r.message)).toEqual(["w"]);
    // `log` ranks with `info`, so an info minimum keeps log lines and the (info) invocation.
    expect(rs.filter(compileFilter({ level: "info" })).map((r) => r.level)).toEqual(["info", "log", "warn"]);
    expect(rs.filter(compileFilter({ level: "debug" }))).toHaveLength(4);
    expect(rs.filter(compileFilter({ level: "error" }))).toHaveLength(0);
  });

  it("outcomes, event types and record types", () => {
    const ex = records({ outcome: "exception", exceptions: [{ name: "Error", message: "boom", timestamp: 1 }] }, null);
    expect(ex.filter(compileFilter({ outcomes: ["exception"] }))).toHaveLength(ex.length);
    expect(records().filter(compileFilter({ outcomes: ["exception", "exceededCpu"] }))).toHaveLength(0);
    expect(byType(ex, "exception")).toHaveLength(1);
    expect(ex.filter(compileFilter({ types: ["exception"] })).map((r) => r.message)).toEqual(["boom"]);
    expect(records().filter(compileFilter({ eventTypes: ["scheduled"] }))).toHaveLength(0);
    expect(records().filter(compileFilter({ eventTypes: ["scheduled", "fetch"] }))).toHaveLength(4);
  });

  it("status classes and codes; records without a status never match", () => {
    expect(records({}, 503).every(compileFilter({ status: ["5xx"] }))).toBe(true);
    expect(records({}, 404).some(compileFilter({ status: ["5xx"] }))).toBe(false);
    expect(records({}, 404).every(compileFilter({ status: ["5xx", "404"] }))).toBe(true);
    expect(records({}, 499).some(compileFilter({ status: ["4xx"] }))).toBe(true);
    expect(records({}, null).some(compileFilter({ status: ["5xx"] }))).toBe(false);
  });

  it("script globs match whole names; null script names never match", () => {
    expect(globToRegExp("api-*").test("api-users")).toBe(true);
    expect(globToRegExp("api-*").test("my-api-users")).toBe(false);
    expect(globToRegExp("a?c.d").test("abc.d")).toBe(true);
    expect(globToRegExp("a?c.d").test("abcxd")).toBe(false);
    expect(records().every(compileFilter({ scripts: ["shop-*"] }))).toBe(true);
    expect(records().some(compileFilter({ scripts: ["auth-*", "billing"] }))).toBe(false);
    expect(records({ scriptName: null }).some(compileFilter({ scripts: ["*"] }))).toBe(false);
  });

  it("every field must match (AND)", () => {
    const f = compileFilter({ level: "warn", scripts: ["shop-*"], status: ["2xx"] });
    expect(
      records()
        .filter(f)
        .map((r) => r.message),
    ).toEqual(["w"]);
    expect(records({ scriptName: "other" }).filter(f)).toHaveLength(0);
  });

  it("samples whole invocations, deterministically, near the rate", () => {
    let kept = 0;
    for (let i = 0; i < 4000; i++) if (sampled(`inv-${i}`, 0.25)) kept++;
    expect(kept / 4000).toBeGreaterThan(0.22);
    expect(kept / 4000).toBeLessThan(0.28);
    expect(sampled("inv-1", 0.25)).toBe(sampled("inv-1", 0.25));
    expect(sampled("x", 0)).toBe(false);
    expect(sampled("x", 1)).toBe(true);
    // All records of one invocation share the decision.
    const decisions = new Set(records().map(compileFilter({ sample: 0.5 })));
    expect(decisions.size).toBe(1);
  });

  it("a sample rule picks a rate per invocation: status code, then class, then outcome, then default", () => {
    const ids = (n: number, status: number | null, outcome = "ok") =>
      Array.from({ length: n }, (_, i) => records({ outcome, eventTimestamp: 1_700_000_000_000 + i }, status));
    const keep = compileFilter({ sample: { "5xx": 1, "503": 0, "2xx": 0.1, exception: 1, default: 0 } });
    const share = (invocations: ReturnType<typeof records>[]) =>
      invocations.filter((rs) => rs.every(keep)).length / invocations.length;
    expect(share(ids(300, 500))).toBe(1);
    // The exact code is more specific than its class.
    expect(share(ids(50, 503))).toBe(0);
    const ok = share(ids(2000, 200));
    expect(ok).toBeGreaterThan(0.07);
    expect(ok).toBeLessThan(0.13);
    // An exception has no status: its outcome decides.
    expect(share(ids(50, null, "exception"))).toBe(1);
    // Neither a named status nor outcome: default.
    expect(share(ids(50, 404))).toBe(0);
    expect(share(ids(50, null, "canceled"))).toBe(0);
    // Without a default, what the rule does not name is kept.
    expect(ids(20, 302).every((rs) => rs.every(compileFilter({ sample: { "2xx": 0 } })))).toBe(true);
  });

  it("a sample rule keeps or drops an invocation whole, and agrees with a plain rate on the same invocations", () => {
    const rule = compileFilter({ sample: { "2xx": 0.3 } });
    const plain = compileFilter({ sample: 0.3 });
    let kept = 0;
    for (let i = 0; i < 200; i++) {
      const rs = records({ eventTimestamp: 1_700_000_000_000 + i }, 200);
      const decisions = new Set(rs.map(rule));
      expect(decisions.size).toBe(1);
      expect(rs.map(plain)).toEqual(rs.map(rule));
      if (decisions.has(true)) kept++;
    }
    expect(kept).toBeGreaterThan(30);
    expect(kept).toBeLessThan(90);
  });

  it("a lower rate keeps a subset of what a higher rate keeps", () => {
    for (let i = 0; i < 2000; i++) if (sampled(`inv-${i}`, 0.1)) expect(sampled(`inv-${i}`, 0.5)).toBe(true);
  });
});

describe("routeRecord", () => {
  const sinks = [
    { name: "all", accepts: compileFilter({}) },
    { name: "problems", accepts: compileFilter({ level: "warn" }) },
    { name: "exceptions", accepts: compileFilter({ types: ["exception"] }) },
  ];

  it("without ROUTES, each sink's inline filter decides; a record may go to several sinks", () => {
    const table: RoutingTable = { sinks, routes: null };
    const ex = records({ outcome: "exception", exceptions: [{ name: "Error", message: "boom", timestamp: 1 }] }, null);
    expect(ex.map((r) => [r.type, r.level, routeRecord(r, table)])).toEqual([
      ["invocation", "error", ["all", "problems"]],
      ["log", "debug", ["all"]],
      ["log", "log", ["all"]],
      ["log", "warn", ["all", "problems"]],
      ["exception", "error", ["all", "problems", "exceptions"]],
    ]);
  });

  it("with ROUTES, a sink gets only what a matching route sends it, and its inline filter still applies", () => {
    const table: RoutingTable = {
      sinks,
      routes: [
        { sinks: ["exceptions", "problems"], matches: compileFilter({ outcomes: ["exception"] }) },
        { sinks: ["problems"], matches: compileFilter({ status: ["5xx"] }) },
      ],
    };
    const ex = records({ outcome: "exception", exceptions: [{ name: "Error", message: "boom", timestamp: 1 }] }, null);
    expect(ex.map((r) => routeRecord(r, table))).toEqual([
      ["problems"],
      [],
      [],
      ["problems"],
      ["problems", "exceptions"],
    ]);
    // "all" is named by no route: it gets nothing.
    expect(records({}, 200).flatMap((r) => routeRecord(r, table))).toEqual([]);
    expect(records({}, 502).flatMap((r) => routeRecord(r, table))).toEqual(["problems", "problems"]);
  });

  it("names the sinks sampling alone dropped a record from, a route's sampling or the sink's own", () => {
    const none = { sample: 0 } as const;
    const table: RoutingTable = {
      sinks: [
        { name: "all", accepts: compileFilter({}) },
        { name: "sampled", accepts: compileFilter(none), unsampled: compileUnsampled(none) },
        {
          name: "warn",
          accepts: compileFilter({ level: "warn", ...none }),
          unsampled: compileUnsampled({ level: "warn", ...none }),
        },
      ],
      routes: null,
    };
    const rs = records();
    const out: string[][] = rs.map((r) => {
      const sampledOut: string[] = [];
      expect(routeRecord(r, table, sampledOut)).toEqual(["all"]);
      return sampledOut;
    });
    // The warn sink's level filter drops the info and debug records: that is not sampling.
    expect(out).toEqual([["sampled"], ["sampled"], ["sampled"], ["sampled", "warn"]]);

    const routed: RoutingTable = {
      sinks: table.sinks,
      routes: [
        {
          sinks: ["all"],
          matches: compileFilter({ status: ["5xx"], ...none }),
          unsampled: compileUnsampled({ status: ["5xx"], ...none }),
        },
        { sinks: ["warn"], matches: compileFilter({}) },
      ],
    };
    const at = (status: number) =>
      records({}, status).map((r) => {
        const sampledOut: string[] = [];
        return [routeRecord(r, routed, sampledOut), sampledOut];
      });
    // "all" is sampled out by its route for a 5xx; for a 200 the route's status filter drops it, not sampling.
    expect(at(502)[0]).toEqual([[], ["all", "warn"]]);
    expect(at(200)[0]).toEqual([[], []]);
    expect(at(200)[3]).toEqual([[], ["warn"]]);
    // Without the list, nothing more is computed and the sinks are the same.
    expect(records({}, 502).map((r) => routeRecord(r, routed))).toEqual([[], [], [], []]);
  });
});

describe("filters: the filter fields table", () => {
  /** One value per field; Required, so a new FilterSpec field does not compile until it has a case here. */
  const ONE_OF_EACH: Required<FilterSpec> = {
    outcomes: ["exception"],
    level: "warn",
    scripts: ["billing-*"],
    eventTypes: ["scheduled"],
    types: ["exception"],
    status: ["5xx"],
    where: { key: "url", operator: "contains", value: "/admin" },
    sample: 0,
  };

  it("FILTER_KEYS lists every FilterSpec field, in the table's order", () => {
    expect(FILTER_KEYS).toEqual(Object.keys(ONE_OF_EACH));
  });

  for (const key of Object.keys(ONE_OF_EACH) as (keyof FilterSpec)[]) {
    it(`${key}: drops a record that does not match and is described in words`, () => {
      const spec = { [key]: ONE_OF_EACH[key] } as FilterSpec;
      const rs = records();
      expect(rs.every(compileFilter({}))).toBe(true);
      expect(rs.some((r) => !compileFilter(spec)(r))).toBe(true);
      expect(describeFilter(spec)).not.toBe("every record");
    });
  }

  it("routes and inline sink filters accept every field as written in a config", () => {
    const result = buildConfig({
      LOGS_KV: env.LOGS_KV,
      SINKS: [{ name: "k", type: "kv", binding: "LOGS_KV", ...ONE_OF_EACH }],
      ROUTES: [{ sinks: "k", ...ONE_OF_EACH }],
    });
    expect(result.ok ? [] : result.errors).toEqual([]);
    if (!result.ok) return;
    expect(result.config.sinks[0]?.filter).toEqual(ONE_OF_EACH);
    expect(result.config.routes?.[0]?.filter).toEqual(ONE_OF_EACH);
  });
});
