import { env } from "cloudflare:workers";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import {
  classifyD1Error,
  D1_BATCH_MAX_STATEMENTS,
  D1_COLUMNS,
  D1_MAX_BOUND_PARAMETERS,
  D1_MAX_RECORD_BYTES,
  D1_MAX_ROW_BYTES,
  type D1Row,
  d1Sink,
  planBatches,
} from "../../sinks/d1";
import type { Sink } from "../../sinks/types";
import { splitBatches } from "../../src/delivery/batch";
import type { SerializedRecord } from "../../src/record";
import { sinkContract } from "./contract";
import { bigRecords, makeSink, must, serialized, someRecords, T0, traceItem, uid, utf8 } from "./helpers";

const db = (env as unknown as { LOGS_D1: D1Database }).LOGS_D1;

sinkContract({
  def: d1Sink,
  valid: { binding: "LOGS_D1" },
  resolved: { binding: "LOGS_D1", table: "tailfan_logs" },
  invalid: [
    { name: "a binding of the wrong type", options: { binding: 1 }, path: "binding" },
    { name: "a table that is not a string", options: { binding: "LOGS_D1", table: ["logs"] }, path: "table" },
    {
      name: "a table with SQL in it",
      options: { binding: "LOGS_D1", table: 'logs"; DROP TABLE x; --' },
      path: "table",
    },
    { name: "a table starting with a digit", options: { binding: "LOGS_D1", table: "1logs" }, path: "table" },
    { name: "an empty table name", options: { binding: "LOGS_D1", table: "" }, path: "table" },
    { name: "a table name over 64 characters", options: { binding: "LOGS_D1", table: "t".repeat(65) }, path: "table" },
    { name: "a table reserved by SQLite", options: { binding: "LOGS_D1", table: "sqlite_logs" }, path: "table" },
    { name: "a table reserved by D1", options: { binding: "LOGS_D1", table: "_cf_logs" }, path: "table" },
  ],
  rejecting: [
    { name: "the binding does not exist", options: { binding: "NO_SUCH_D1" } },
    { name: "the binding is not a D1 database (a KV namespace)", options: { binding: "LOGS_KV" } },
  ],
  abortIsHonoured: false,
});

/** A fresh table name for one test. */
const table = () => uid("t").replace(/-/g, "_");

function sinkFor(tableName: string): Sink<D1Row[]> {
  return makeSink<D1Row[]>(d1Sink, { binding: "LOGS_D1", table: tableName }).sink;
}

async function send(sink: Sink<D1Row[]>, records: readonly SerializedRecord[]) {
  return sink.send(sink.encode(records), AbortSignal.timeout(10_000));
}

async function rowsOf(tableName: string): Promise<Record<string, unknown>[]> {
  const { results } = await db.prepare(`SELECT * FROM "${tableName}" ORDER BY ts, id`).all();
  return results;
}

/** An ok invocation, a 500 with an exception, and a scheduled event. */
function mixedRecords(script: string): SerializedRecord[] {
  return serialized([
    traceItem({
      script,
      path: "/a",
      eventTimestamp: T0,
      logs: [
        { level: "info", message: ["loading cart"] },
        { level: "warn", message: ["slow upstream", { ms: 950 }] },
      ],
    }),
    traceItem({
      script,
      path: "/b",
      status: 500,
      outcome: "exception",
      eventTimestamp: T0 + 1_000,
      exceptions: [{ name: "TypeError", message: "card is undefined" }],
    }),
  ]);
}

describe("d1 sink: rows in the real local D1", () => {
  it("the local binding has the methods the config checks for a d1 binding", () => {
    for (const m of ["prepare", "batch", "exec"] as const) expect(typeof db[m]).toBe("function");
  });

  it("creates the table and inserts one row per record; SELECT gives back every column", async () => {
    const name = table();
    const script = uid("d1-shop");
    const records = mixedRecords(script);
    expect((await send(sinkFor(name), records)).outcome).toBe("ok");

    const rows = await rowsOf(name);
    expect(rows).toHaveLength(records.length);
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const { record, line } of records) {
      expect(byId.get(record.id)).toEqual({
        id: record.id,
        ts: record.timestamp,
        script,
        level: record.level,
        type: record.type,
        outcome: record.outcome,
        event_type: "fetch",
        status: record.status ?? null,
        message: record.message,
        invocation_id: record.invocationId,
        record: line,
      });
      // The record column is the record itself.
      expect(JSON.parse(String(byId.get(record.id)?.record))).toEqual(record);
    }
    // Levels and outcomes as normalized: the 500 invocation is an error, its exception too.
    const errors = rows.filter((r) => r.level === "error").map((r) => r.type);
    expect(errors.sort()).toEqual(["exception", "invocation"]);
    expect(rows.filter((r) => r.outcome === "exception")).toHaveLength(
      records.filter((r) => r.record.outcome === "exception").length,
    );
  });

  it("has the columns and the indexes on (ts), (script, ts), (level, ts)", async () => {
    const name = table();
    expect((await send(sinkFor(name), someRecords(1, "d1-schema"))).outcome).toBe("ok");
    const { results: columns } = await db.prepare(`SELECT name, type, pk FROM pragma_table_info(?)`).bind(name).all();
    expect(columns.map((c) => c.name)).toEqual([...D1_COLUMNS]);
    expect(columns.find((c) => c.name === "id")).toMatchObject({ type: "TEXT", pk: 1 });
    expect(columns.find((c) => c.name === "ts")).toMatchObject({ type: "INTEGER" });
    expect(columns.find((c) => c.name === "status")).toMatchObject({ type: "INTEGER" });

    const { results: indexes } = await db
      .prepare(
        `SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name`,
      )
      .bind(name)
      .all<{ name: string; sql: string }>();
    expect(indexes.map((i) => i.name)).toEqual([`${name}_level_ts`, `${name}_script_ts`, `${name}_ts`]);
    expect(indexes.map((i) => i.sql.replace(/^.* ON /, ""))).toEqual([
      `"${name}" (level, ts)`,
      `"${name}" (script, ts)`,
      `"${name}" (ts)`,
    ]);
    // The queries the docs show use them.
    const { results: plan } = await db
      .prepare(
        `EXPLAIN QUERY PLAN SELECT * FROM "${name}" WHERE script = ? AND level = 'error' ORDER BY ts DESC LIMIT 50`,
      )
      .bind("x")
      .all<{ detail: string }>();
    expect(plan.map((p) => p.detail).join("\n")).toMatch(/USING INDEX/);
  });

  it("is idempotent: sending the same records again (a retry) adds nothing and still answers ok", async () => {
    const name = table();
    const records = someRecords(5, "d1-idem");
    const sink = sinkFor(name);
    expect((await send(sink, records)).outcome).toBe("ok");
    const first = await rowsOf(name);
    expect((await send(sink, records)).outcome).toBe("ok");
    // A fresh sink (another isolate) also only ignores them.
    expect((await send(sinkFor(name), [...records, ...someRecords(1, "d1-idem-new")])).outcome).toBe("ok");
    const after = await rowsOf(name);
    expect(after).toHaveLength(first.length + 2); // one more invocation: its invocation and log records
    expect(after.filter((r) => first.some((f) => f.id === r.id))).toEqual(first);
  });

  it("creates the table once per isolate: later sends only insert", async () => {
    const name = table();
    const seen: string[] = [];
    const spy = new Proxy(db, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop === "prepare") {
          return (sql: string) => {
            seen.push(sql);
            return target.prepare(sql);
          };
        }
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const options = v.parse(d1Sink.options, { binding: "SPY_D1", table: name });
    const sink = d1Sink.create(options, { name: "spy", env: { SPY_D1: spy } });
    expect((await sink.send(sink.encode(someRecords(1, "d1-ddl-a")), AbortSignal.timeout(5_000))).outcome).toBe("ok");
    expect(seen.filter((s) => s.startsWith("CREATE"))).toHaveLength(4);
    seen.length = 0;
    expect((await sink.send(sink.encode(someRecords(1, "d1-ddl-b")), AbortSignal.timeout(5_000))).outcome).toBe("ok");
    expect(seen.filter((s) => s.startsWith("CREATE"))).toEqual([]);
    expect(seen.filter((s) => s.startsWith("INSERT OR IGNORE"))).toHaveLength(1);
    expect(await rowsOf(name)).toHaveLength(4);
  });

  it("a table dropped under a running isolate: that send retries, the next one creates it again", async () => {
    const name = table();
    const sink = sinkFor(name);
    expect((await send(sink, someRecords(1, "d1-drop"))).outcome).toBe("ok");
    await db.exec(`DROP TABLE "${name}"`);
    const retry = await send(sink, someRecords(2, "d1-drop"));
    expect(retry.outcome).toBe("retry");
    if (retry.outcome === "retry") expect(retry.reason).toMatch(/no such table/);
    expect((await send(sink, someRecords(2, "d1-drop"))).outcome).toBe("ok");
    expect(await rowsOf(name)).toHaveLength(4);
  });

  it("many records: several statements and batch calls, every row stored once, none over 100 bound parameters", async () => {
    const name = table();
    // 260 invocations × 2 records = 520 rows: 58 statements of ≤ 9 rows, two batch calls.
    const records = someRecords(260, "d1-many");
    const sink = sinkFor(name);
    const rows = sink.encode(records);
    const batches = planBatches(rows);
    expect(batches.length).toBe(2);
    expect(batches.flat(2)).toEqual(rows);
    for (const b of batches) {
      expect(b.length).toBeLessThanOrEqual(D1_BATCH_MAX_STATEMENTS);
      for (const stmt of b) expect(stmt.length * D1_COLUMNS.length).toBeLessThanOrEqual(D1_MAX_BOUND_PARAMETERS);
    }
    expect((await sink.send(rows, AbortSignal.timeout(20_000))).outcome).toBe("ok");
    const { results } = await db.prepare(`SELECT count(*) AS n, count(DISTINCT id) AS d FROM "${name}"`).all();
    expect(results[0]).toEqual({ n: records.length, d: records.length });
  });

  it("the largest record the batch limits let through fits in one row", async () => {
    const name = table();
    const limits = d1Sink.batch(v.parse(d1Sink.options, { binding: "LOGS_D1" }));
    expect(limits.maxRecordBytes).toBe(D1_MAX_RECORD_BYTES);
    const [big] = bigRecords(1, D1_MAX_RECORD_BYTES - 200, "d1-big");
    const item = must(big);
    expect(item.bytes).toBeLessThanOrEqual(D1_MAX_RECORD_BYTES);
    // The row holds the JSON and the message again: still under D1's 2 MB.
    expect(item.bytes + utf8(item.record.message) + 1_000).toBeLessThan(D1_MAX_ROW_BYTES);
    const small = someRecords(2, "d1-big");
    const { batches } = splitBatches([item, ...small], limits);
    const sink = sinkFor(name);
    for (const b of batches) expect((await send(sink, b)).outcome).toBe("ok");
    const { results } = await db
      .prepare(`SELECT length(record) AS len FROM "${name}" WHERE id = ?`)
      .bind(item.record.id)
      .all();
    expect(results[0]?.len).toBe(item.line.length);
    // A large row travels in a statement of its own.
    const plan = planBatches(sink.encode([item, ...small]));
    expect(plan.flat().map((s) => s.length)).toEqual([1, small.length]);
  });

  it("an existing table of another shape fails for good, naming the SQL error", async () => {
    const name = table();
    await db.exec(`CREATE TABLE "${name}" (id TEXT PRIMARY KEY, other TEXT)`);
    const result = await send(sinkFor(name), someRecords(1, "d1-shape"));
    expect(result.outcome).toBe("fail");
    if (result.outcome === "fail") expect(result.reason).toMatch(/has no column named|no such column/);
  });

  it("the docs' queries run against the table: last errors of a script, counts by outcome per hour", async () => {
    const name = table();
    const script = uid("d1-docs");
    const records = [
      ...mixedRecords(script),
      ...serialized([traceItem({ script, path: "/c", eventTimestamp: T0 + 3_600_000, outcome: "exceededCpu" })]),
    ];
    expect((await send(sinkFor(name), records)).outcome).toBe("ok");
    const { results: lastErrors } = await db
      .prepare(`SELECT ts, type, message FROM "${name}" WHERE script = ? AND level = 'error' ORDER BY ts DESC LIMIT 50`)
      .bind(script)
      .all<{ ts: number; type: string; message: string }>();
    expect(lastErrors.map((r) => r.type)).toEqual(["invocation", "exception", "invocation"]);
    expect(lastErrors[1]?.message).toBe("card is undefined");
    const { results: perHour } = await db
      .prepare(
        `SELECT strftime('%Y-%m-%d %H:00', ts / 1000, 'unixepoch') AS hour, outcome, count(*) AS invocations
         FROM "${name}" WHERE type = 'invocation' GROUP BY hour, outcome ORDER BY hour, outcome`,
      )
      .all();
    // The docs' exact text (docs/sinks/d1.md) runs too; its last-24-hours filter leaves out these 2025 rows.
    const docs = [
      `SELECT datetime(ts / 1000, 'unixepoch') AS at, type, message
FROM tailfan_logs WHERE script = 'api' AND level = 'error' ORDER BY ts DESC LIMIT 50`,
      `SELECT strftime('%Y-%m-%d %H:00', ts / 1000, 'unixepoch') AS hour, outcome, count(*) AS invocations
FROM tailfan_logs WHERE type = 'invocation' AND ts > (unixepoch() - 86400) * 1000
GROUP BY hour, outcome ORDER BY hour, outcome`,
    ];
    for (const sql of docs) {
      const { results } = await db.prepare(sql.replace("tailfan_logs", `"${name}"`)).all();
      expect(results).toEqual([]);
    }
    expect(perHour).toEqual([
      { hour: "2025-03-14 15:00", outcome: "exception", invocations: 1 },
      { hour: "2025-03-14 15:00", outcome: "ok", invocations: 1 },
      { hour: "2025-03-14 16:00", outcome: "exceededCpu", invocations: 1 },
    ]);
  });
});

describe("d1 sink: encode and error classes", () => {
  it("encode maps records to rows without touching D1, and absent fields become NULL", () => {
    const records = serialized([
      { ...traceItem({ script: "d1-sched" }), scriptName: null, event: { cron: "*/5 * * * *", scheduledTime: T0 } },
    ]);
    const rows = sinkFor("never_created").encode(records);
    const first = must(rows[0]);
    expect(first).toMatchObject({ script: null, status: null, event_type: "scheduled", type: "invocation" });
    expect(first.record).toBe(must(records[0]).line);
  });

  it.each([
    ["D1_ERROR: no such column: foo: SQLITE_ERROR", "fail"],
    ["D1_ERROR: table t has no column named x: SQLITE_ERROR", "fail"],
    ['D1_ERROR: near "INSERTZ": syntax error at offset 0: SQLITE_ERROR', "fail"],
    ["D1_TYPE_ERROR: Type 'undefined' not supported for value 'undefined'", "fail"],
    ["D1_ERROR: string or blob too big: SQLITE_TOOBIG", "fail"],
    ["D1_ERROR: UNIQUE constraint failed: t.x: SQLITE_CONSTRAINT", "fail"],
    ["D1_ERROR: too many SQL variables at offset 10: SQLITE_ERROR", "fail"],
    ["D1_ERROR: no such table: logs: SQLITE_ERROR", "retry"],
    ["D1_ERROR: database is locked: SQLITE_BUSY", "retry"],
    ["D1_ERROR: Network connection lost.", "retry"],
    ["D1_ERROR: D1 DB is overloaded. Too many requests queued.", "retry"],
    ["D1_ERROR: D1 DB reset because its code was updated.", "retry"],
    ["D1_ERROR: Cannot resolve D1 DB due to transient issue on remote node.", "retry"],
    ["D1_ERROR: Internal error in D1 DB storage caused object to be reset.", "retry"],
    ["Error: something nobody has seen before", "retry"],
  ])("%s → %s", (message, expected) => {
    expect(classifyD1Error(message)).toBe(expected);
  });

  it("a D1 batch that throws a transient error maps to retry, never a throw", async () => {
    const broken = {
      prepare: (sql: string) => db.prepare(sql),
      batch: async () => {
        throw new Error("D1_ERROR: D1 DB is overloaded. Requests queued for too long.");
      },
      exec: async () => ({ count: 0, duration: 0 }),
    };
    const options = v.parse(d1Sink.options, { binding: "BROKEN" });
    const sink = d1Sink.create(options, { name: "broken", env: { BROKEN: broken } });
    const result = await sink.send(sink.encode(someRecords(1, "d1-broken")), AbortSignal.timeout(5_000));
    expect(result).toMatchObject({ outcome: "retry" });
    if (result.outcome === "retry") expect(result.reason).toContain("overloaded");
  });
});
