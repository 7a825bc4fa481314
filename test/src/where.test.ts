import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { buildConfig, formatConfigErrors } from "../../src/config";
import { normalizeTraceItems } from "../../src/normalize";
import type { LogRecord } from "../../src/record";
import { checkWhere, compileWhere, describeWhere, explainWhere, type WhereNode } from "../../src/where";

function item(over: Record<string, unknown> = {}, status: number | null = 200, url = "https://shop.example/api/cart") {
  return {
    event: {
      request: {
        url,
        method: "GET",
        headers: { "user-agent": "curl/8.5", "x-tenant": "acme" },
        cf: { colo: "AMS", country: "NL", asn: 1234 },
      },
      ...(status === null ? {} : { response: { status } }),
    },
    eventTimestamp: 1_700_000_000_000,
    logs: [
      { level: "log", message: ["hello"], timestamp: 1_700_000_000_001 },
      { level: "error", message: [{ err: "bad" }, new Error("x").message], timestamp: 1_700_000_000_002 },
    ],
    exceptions: [],
    diagnosticsChannelEvents: [],
    scriptName: "shop-api",
    scriptTags: ["prod", "team:checkout"],
    outcome: "ok",
    executionModel: "stateless",
    truncated: false,
    cpuTime: 4,
    wallTime: 30,
    ...over,
  };
}

const invocation = (over?: Record<string, unknown>, status?: number | null, url?: string): LogRecord =>
  normalizeTraceItems([item(over, status, url)])[0] as LogRecord;

/** Compiles a tree that must be valid. */
function where(node: unknown): (r: LogRecord) => boolean {
  const { where: checked, problems } = checkWhere(node);
  expect(problems).toEqual([]);
  return compileWhere(checked as WhereNode);
}

const leaf = (key: string, operator: string, value?: unknown) =>
  value === undefined ? { key, operator } : { key, operator, value };

describe("where: operators", () => {
  const r = invocation();

  it("eq and !eq compare exactly, numbers as numbers", () => {
    expect(where(leaf("status", "eq", 200))(r)).toBe(true);
    expect(where(leaf("status", "eq", 201))(r)).toBe(false);
    expect(where(leaf("status", "!eq", 500))(r)).toBe(true);
    expect(where(leaf("scriptName", "eq", "shop-api"))(r)).toBe(true);
    expect(where(leaf("scriptName", "eq", "Shop-api"))(r)).toBe(false);
    expect(where(leaf("truncated", "eq", false))(r)).toBe(true);
    // An open JSON field compares strictly: 200 the number is not "200" the string.
    expect(where(leaf("event.response.status", "eq", 200))(r)).toBe(true);
    expect(where(leaf("event.response.status", "eq", "200"))(r)).toBe(false);
  });

  it("lt, leq, gt, geq compare numbers only", () => {
    expect(where(leaf("wallTime", "gt", 29))(r)).toBe(true);
    expect(where(leaf("wallTime", "gt", 30))(r)).toBe(false);
    expect(where(leaf("wallTime", "geq", 30))(r)).toBe(true);
    expect(where(leaf("cpuTime", "lt", 4))(r)).toBe(false);
    expect(where(leaf("cpuTime", "leq", 4))(r)).toBe(true);
    expect(where(leaf("event.request.cf.asn", "geq", 1000))(r)).toBe(true);
    // Inside open JSON a string is not a number: the comparison is false, never a coercion.
    expect(where(leaf("event.request.cf.colo", "gt", 0))(r)).toBe(false);
  });

  it("startsWith, endsWith, contains, !contains on text", () => {
    expect(where(leaf("url", "startsWith", "https://shop.example/api/"))(r)).toBe(true);
    expect(where(leaf("url", "startsWith", "/api"))(r)).toBe(false);
    expect(where(leaf("url", "endsWith", "/cart"))(r)).toBe(true);
    expect(where(leaf("url", "contains", "/api/"))(r)).toBe(true);
    expect(where(leaf("url", "!contains", "/api/"))(r)).toBe(false);
    expect(where(leaf("url", "!contains", "/admin"))(r)).toBe(true);
  });

  it("in and !in take a list", () => {
    expect(where(leaf("status", "in", [200, 204]))(r)).toBe(true);
    expect(where(leaf("status", "in", [500, 502]))(r)).toBe(false);
    expect(where(leaf("colo", "!in", ["SJC", "LHR"]))(r)).toBe(true);
    expect(where(leaf("colo", "!in", ["AMS"]))(r)).toBe(false);
  });

  it("exists and !exists", () => {
    expect(where(leaf("status", "exists"))(r)).toBe(true);
    expect(where(leaf("cron", "exists"))(r)).toBe(false);
    expect(where(leaf("cron", "!exists"))(r)).toBe(true);
    // null counts as missing: local dev has no script version.
    expect(where(leaf("scriptVersion", "exists"))(invocation({ scriptVersion: undefined }))).toBe(false);
  });
});

describe("where: paths", () => {
  const r = invocation();

  it("walks dotted paths into the event", () => {
    expect(where(leaf("event.request.method", "eq", "GET"))(r)).toBe(true);
    expect(where(leaf("event.request.cf.country", "eq", "NL"))(r)).toBe(true);
    expect(where(leaf("event.request.nope.deeper", "exists"))(r)).toBe(false);
  });

  it("header names match case-insensitively, like HTTP", () => {
    expect(where(leaf("event.request.headers.user-agent", "startsWith", "curl/"))(r)).toBe(true);
    expect(where(leaf("event.request.headers.User-Agent", "startsWith", "curl/"))(r)).toBe(true);
    const mixed = invocation({
      event: {
        request: { url: "https://x/", method: "GET", headers: { "X-Tenant": "acme" } },
        response: { status: 200 },
      },
    });
    expect(where(leaf("event.request.headers.x-tenant", "eq", "acme"))(mixed)).toBe(true);
    // Only header names: other keys keep their case.
    expect(where(leaf("event.request.Method", "exists"))(r)).toBe(false);
  });

  it("keys that hold dots, like span attributes, are found whole", () => {
    const span = { ...r, attributes: { "http.request.method": "POST", nested: { a: 1 } } } as unknown as LogRecord;
    expect(where(leaf("attributes.http.request.method", "eq", "POST"))(span)).toBe(true);
    expect(where(leaf("attributes.nested.a", "eq", 1))(span)).toBe(true);
  });

  it("a list of strings matches when any entry does; ! operators when none does", () => {
    expect(where(leaf("scriptTags", "eq", "prod"))(r)).toBe(true);
    expect(where(leaf("scriptTags", "eq", "pro"))(r)).toBe(false);
    expect(where(leaf("scriptTags", "contains", "checkout"))(r)).toBe(true);
    expect(where(leaf("scriptTags", "startsWith", "team:"))(r)).toBe(true);
    expect(where(leaf("scriptTags", "in", ["staging", "prod"]))(r)).toBe(true);
    expect(where(leaf("scriptTags", "!eq", "prod"))(r)).toBe(false);
    expect(where(leaf("scriptTags", "!eq", "staging"))(r)).toBe(true);
    expect(where(leaf("scriptTags", "!contains", "checkout"))(r)).toBe(false);
  });

  it("an empty list is missing: exists is false, !exists and the ! operators true", () => {
    const untagged = invocation({ scriptTags: [] });
    expect(where(leaf("scriptTags", "exists"))(untagged)).toBe(false);
    expect(where(leaf("scriptTags", "!exists"))(untagged)).toBe(true);
    expect(where(leaf("scriptTags", "eq", "prod"))(untagged)).toBe(false);
    expect(where(leaf("scriptTags", "!eq", "prod"))(untagged)).toBe(true);
  });

  it("a path through a list fans out over its entries; a number picks one", () => {
    const log = normalizeTraceItems([
      item({
        logs: [{ level: "error", message: [{ code: 7 }, { code: 9 }], timestamp: 1 }],
      }),
    ])[1] as LogRecord;
    expect(log.type).toBe("log");
    expect(where(leaf("args.code", "eq", 9))(log)).toBe(true);
    expect(where(leaf("args.code", "eq", 8))(log)).toBe(false);
    expect(where(leaf("args.0.code", "eq", 9))(log)).toBe(false);
    expect(where(leaf("args.1.code", "eq", 9))(log)).toBe(true);
  });

  it("a missing key fails every comparison and passes every ! operator", () => {
    const cron = invocation({ event: { cron: "* * * * *", scheduledTime: 1 } }, null);
    expect(cron.status).toBeUndefined();
    for (const op of ["eq", "lt", "leq", "gt", "geq", "in"]) {
      expect(where(leaf("status", op, op === "in" ? [500] : 500))(cron)).toBe(false);
    }
    for (const op of ["startsWith", "endsWith", "contains"]) expect(where(leaf("url", op, "x"))(cron)).toBe(false);
    expect(where(leaf("status", "!eq", 500))(cron)).toBe(true);
    expect(where(leaf("status", "!in", [500]))(cron)).toBe(true);
    expect(where(leaf("url", "!contains", "/api"))(cron)).toBe(true);
    // Prototype names are not record fields.
    expect(where(leaf("event.constructor", "exists"))(cron)).toBe(false);
  });
});

describe("where: and / or", () => {
  it("nests, and reads as one line", () => {
    const tree = {
      and: [leaf("url", "contains", "/api/"), { or: [leaf("status", "geq", 500), leaf("outcome", "eq", "exception")] }],
    };
    const match = where(tree);
    expect(match(invocation({}, 503))).toBe(true);
    expect(match(invocation({}, 200))).toBe(false);
    expect(match(invocation({ outcome: "exception" }, null))).toBe(true);
    expect(match(invocation({}, 503, "https://shop.example/static/app.js"))).toBe(false);
    expect(describeWhere(checkWhere(tree).where as WhereNode)).toBe(
      'url contains "/api/" and (status geq 500 or outcome eq "exception")',
    );
  });

  it("an and or or of three or more, and of one", () => {
    const three = [leaf("status", "eq", 1), leaf("status", "eq", 2), leaf("status", "eq", 503)];
    expect(where({ or: three })(invocation({}, 503))).toBe(true);
    expect(where({ and: three })(invocation({}, 503))).toBe(false);
    expect(where({ and: [leaf("status", "eq", 503)] })(invocation({}, 503))).toBe(true);
  });

  it("explains every leaf, none skipped", () => {
    const tree = checkWhere({
      and: [leaf("url", "contains", "/api/"), { or: [leaf("status", "geq", 500), leaf("outcome", "eq", "exception")] }],
    }).where as WhereNode;
    expect(explainWhere(tree, invocation({}, 404))).toEqual({
      matched: false,
      leaves: [
        { at: "where.and[0]", leaf: 'url contains "/api/"', matched: true },
        { at: "where.and[1].or[0]", leaf: "status geq 500", matched: false },
        { at: "where.and[1].or[1]", leaf: 'outcome eq "exception"', matched: false },
      ],
    });
  });
});

describe("where: errors at config load", () => {
  const withRoutes = (routeWhere: unknown) =>
    buildConfig({
      LOGS_KV: env.LOGS_KV,
      SINKS: [{ name: "k", type: "kv", binding: "LOGS_KV" }],
      ROUTES: [{ sinks: "k" }, { sinks: "k" }, { sinks: "k", where: routeWhere }],
    });
  const errors = (routeWhere: unknown) => {
    const result = withRoutes(routeWhere);
    expect(result.ok).toBe(false);
    return result.ok ? "" : formatConfigErrors(result.errors);
  };

  it("names the path of every mistake in the tree", () => {
    expect(
      errors({
        and: [leaf("url", "contains", "/api"), leaf("status", "equals", 500), { or: [leaf("url", "gt", 5), {}] }],
      }),
    ).toBe(
      [
        "ROUTES[2].where.and[1].operator: unknown operator; expected one of eq, !eq, lt, leq, gt, geq, startsWith, endsWith, contains, !contains, in, !in, exists, !exists",
        'ROUTES[2].where.and[2].or[0].operator: gt compares numbers; "url" holds a string',
        "ROUTES[2].where.and[2].or[1]: must be a leaf { key, operator, value } or { and = [...] } or { or = [...] }",
      ].join("\n"),
    );
  });

  it("type-checks values against known fields", () => {
    expect(errors(leaf("status", "eq", "500"))).toBe('ROUTES[2].where.value: must be a number: "status" holds numbers');
    expect(errors(leaf("status", "in", [500, "502"]))).toBe(
      'ROUTES[2].where.value[1]: must be a number: "status" holds numbers',
    );
    expect(errors(leaf("status", "startsWith", "5"))).toBe(
      'ROUTES[2].where.operator: startsWith compares text; "status" holds a number',
    );
    expect(errors(leaf("wallTime", "gt", "5"))).toBe("ROUTES[2].where.value: gt compares numbers: must be a number");
    expect(errors(leaf("scriptTags", "eq", 1))).toBe(
      'ROUTES[2].where.value: must be a string: "scriptTags" holds strings',
    );
    expect(errors(leaf("url", "in", []))).toBe(
      "ROUTES[2].where.value: in takes a non-empty list of strings, numbers or booleans",
    );
    expect(errors(leaf("url", "exists", true))).toBe("ROUTES[2].where.value: exists takes no value");
    expect(errors(leaf("url", "eq"))).toBe("ROUTES[2].where.value: is required");
    expect(errors(leaf("event.x", "eq", { a: 1 }))).toBe(
      "ROUTES[2].where.value: must be a string, a number or a boolean",
    );
  });

  it("refuses keys that cannot be in a record, without repeating them", () => {
    expect(errors(leaf("SECRET-looking-key.x", "exists"))).not.toContain("SECRET");
    expect(errors(leaf("stauts", "eq", 500))).toMatch(
      /^ROUTES\[2\]\.where\.key: starts with no record field; fields are: id, type, timestamp, /,
    );
    expect(errors(leaf("url.host", "eq", "x"))).toBe('ROUTES[2].where.key: "url" holds a string; it has no fields');
    expect(errors(leaf("event..x", "exists"))).toBe(
      "ROUTES[2].where.key: has an empty part; write dotted paths like event.request.method",
    );
  });

  it("refuses shapes that are not a leaf, an and or an or", () => {
    expect(errors("status = 500")).toBe(
      "ROUTES[2].where: must be a leaf { key, operator, value } or { and = [...] } or { or = [...] }",
    );
    expect(errors({ and: [] })).toBe("ROUTES[2].where.and: must be a non-empty list of conditions");
    expect(errors({ and: [leaf("url", "exists")], or: [leaf("url", "exists")] })).toMatch(
      /^ROUTES\[2\]\.where: must be a leaf .*, with nothing beside its and or or$/,
    );
    expect(errors({ key: "url", operator: "exists", vlaue: 1 })).toBe(
      "ROUTES[2].where.vlaue: unknown option; a leaf has key, operator and value",
    );
  });

  it("inline on a sink, with the sink's path", () => {
    const result = buildConfig({
      LOGS_KV: env.LOGS_KV,
      SINKS: [{ name: "k", type: "kv", binding: "LOGS_KV", where: { or: [leaf("level", "lt", 3)] } }],
    });
    expect(result.ok ? "" : formatConfigErrors(result.errors)).toBe(
      'SINKS[0].where.or[0].operator: lt compares numbers; "level" holds a string',
    );
  });

  it("a valid tree is kept as written and compiled into the route", () => {
    const tree = { and: [leaf("url", "contains", "/api/"), leaf("status", "geq", 500)] };
    const result = withRoutes(tree);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.routes?.[2]?.filter).toEqual({ where: tree });
    expect(result.config.routes?.[2]?.matches(invocation({}, 502))).toBe(true);
    expect(result.config.routes?.[2]?.matches(invocation({}, 200))).toBe(false);
  });
});
