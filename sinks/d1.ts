import * as v from "valibot";
import { describeError } from "./shared";
import { defineSink, type SerializedRecord } from "./types";

/**
 * D1 limits (https://developers.cloudflare.com/d1/platform/limits/), which
 * apply to each statement inside a `db.batch()`:
 * - "Maximum bound parameters per query: 100"
 * - "Maximum string, BLOB or table row size: 2,000,000 bytes (2 MB)"
 * - "Maximum SQL statement length: 100,000 bytes" (our statement text is a few hundred bytes; values are bound)
 * - "Maximum SQL query duration: 30 seconds", which "also applies to the entire batch call"
 * - "Queries per Worker invocation: 1000 (Workers Paid) / 50 (Free)"
 */
export const D1_MAX_BOUND_PARAMETERS = 100;
export const D1_MAX_ROW_BYTES = 2_000_000;

/** The table's columns, in insert order. */
export const D1_COLUMNS = [
  "id",
  "ts",
  "script",
  "level",
  "type",
  "outcome",
  "event_type",
  "status",
  "message",
  "invocation_id",
  "record",
] as const;

/** One row of the table. */
export interface D1Row {
  /** The record id: the primary key, so a retried insert is ignored. */
  id: string;
  /** The record's timestamp, epoch ms. */
  ts: number;
  script: string | null;
  level: string;
  type: string;
  outcome: string;
  event_type: string;
  status: number | null;
  message: string;
  invocation_id: string;
  /** The whole record as JSON. */
  record: string;
}

/** 9 rows × 11 columns = 99 bound parameters, within the 100 per statement. */
export const D1_ROWS_PER_STATEMENT = Math.floor(D1_MAX_BOUND_PARAMETERS / D1_COLUMNS.length);
/** A statement closes before its bound values pass this many bytes (a larger row goes alone). */
export const D1_STATEMENT_MAX_BYTES = 1_000_000;
/** Statements per `db.batch()` call: the batch runs as one transaction within D1's 30 s. */
export const D1_BATCH_MAX_STATEMENTS = 50;
/** Bytes of bound values per `db.batch()` call (a soft cap: one large statement still goes). */
export const D1_BATCH_MAX_BYTES = 4_000_000;
/**
 * A row holds the record JSON and its message again (never longer than the
 * JSON), plus a few short columns: 990 kB of JSON keeps the row under 2 MB.
 */
export const D1_MAX_RECORD_BYTES = 990_000;

/** SQLite identifier we can interpolate without quoting problems; `sqlite_` and `_cf_` are reserved. */
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Rows of one INSERT statement. */
export type D1Statement = D1Row[];
/** Statements of one `db.batch()` call. */
export type D1Batch = D1Statement[];

function rowBytes(row: D1Row): number {
  // Upper bound in UTF-8: three bytes per UTF-16 unit; the short columns are counted generously.
  return (row.record.length + row.message.length) * 3 + 512;
}

/**
 * Cuts rows into `db.batch()` calls of INSERT statements within D1's limits:
 * at most 9 rows (99 bound parameters) and about 1 MB of values per
 * statement, at most 50 statements and about 4 MB per batch call.
 */
export function planBatches(rows: readonly D1Row[]): D1Batch[] {
  const batches: D1Batch[] = [];
  let batch: D1Batch = [];
  let batchBytes = 0;
  let statement: D1Statement = [];
  let statementBytes = 0;
  const closeStatement = () => {
    if (statement.length === 0) return;
    if (
      batch.length > 0 &&
      (batch.length >= D1_BATCH_MAX_STATEMENTS || batchBytes + statementBytes > D1_BATCH_MAX_BYTES)
    ) {
      batches.push(batch);
      batch = [];
      batchBytes = 0;
    }
    batch.push(statement);
    batchBytes += statementBytes;
    statement = [];
    statementBytes = 0;
  };
  for (const row of rows) {
    const size = rowBytes(row);
    if (
      statement.length > 0 &&
      (statement.length >= D1_ROWS_PER_STATEMENT || statementBytes + size > D1_STATEMENT_MAX_BYTES)
    ) {
      closeStatement();
    }
    statement.push(row);
    statementBytes += size;
  }
  closeStatement();
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** `CREATE TABLE IF NOT EXISTS` and its indexes, for `table` (already validated). */
export function schemaSql(table: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS "${table}" (id TEXT PRIMARY KEY, ts INTEGER NOT NULL, script TEXT, level TEXT NOT NULL, type TEXT NOT NULL, outcome TEXT NOT NULL, event_type TEXT NOT NULL, status INTEGER, message TEXT NOT NULL, invocation_id TEXT NOT NULL, record TEXT NOT NULL)`,
    `CREATE INDEX IF NOT EXISTS "${table}_ts" ON "${table}" (ts)`,
    `CREATE INDEX IF NOT EXISTS "${table}_script_ts" ON "${table}" (script, ts)`,
    `CREATE INDEX IF NOT EXISTS "${table}_level_ts" ON "${table}" (level, ts)`,
  ];
}

/** The INSERT for `rows` rows; `OR IGNORE` makes a retry of rows already stored a no-op. */
export function insertSql(table: string, rows: number): string {
  const one = `(${D1_COLUMNS.map(() => "?").join(", ")})`;
  return `INSERT OR IGNORE INTO "${table}" (${D1_COLUMNS.join(", ")}) VALUES ${Array.from({ length: rows }, () => one).join(", ")}`;
}

/** The row for one record. */
export function toRow(item: SerializedRecord): D1Row {
  const r = item.record;
  return {
    id: r.id,
    ts: r.timestamp,
    script: r.scriptName,
    level: r.level,
    type: r.type,
    outcome: r.outcome,
    event_type: r.eventType,
    status: typeof r.status === "number" ? r.status : null,
    message: r.message,
    invocation_id: r.invocationId,
    record: item.line,
  };
}

/**
 * How a D1 error is told apart: D1 puts SQLite's result code in the message
 * (`D1_ERROR: no such column: x: SQLITE_ERROR`) and uses its own constants
 * (`D1_TYPE_ERROR`, `D1_COLUMN_NOTFOUND`) for statements that can never
 * succeed as written (https://developers.cloudflare.com/d1/observability/debug-d1/#error-list):
 * those fail. A busy or locked database, "no such table" (dropped under us:
 * the next attempt creates it again) and everything else, such as "Network
 * connection lost", "D1 DB is overloaded" or "D1 DB reset because its code
 * was updated", which the docs say to retry, is retried.
 */
const TRANSIENT_SQLITE = /SQLITE_(BUSY|LOCKED|IOERR|INTERRUPT|NOMEM|CANTOPEN|PROTOCOL)\b|no such table/i;
const PERMANENT =
  /D1_TYPE_ERROR|D1_COLUMN_NOTFOUND|SQLITE_(ERROR|CONSTRAINT|MISMATCH|TOOBIG|RANGE|FULL|READONLY|AUTH|PERM|CORRUPT|NOTADB|FORMAT)\b|syntax error|no such column|has no column named|too many SQL variables|string or blob too big|statement too long/i;

export function classifyD1Error(message: string): "retry" | "fail" {
  if (TRANSIENT_SQLITE.test(message)) return "retry";
  return PERMANENT.test(message) ? "fail" : "retry";
}

/** Tables this isolate has already created, by binding and table. */
const created = new Set<string>();

export const d1Sink = defineSink({
  type: "d1",
  description: "Inserts each record as one row of a D1 (SQLite) table with indexed columns and the full record JSON.",
  writesLine: true,
  options: v.strictObject({
    /** Name of the D1 database binding in wrangler.toml. Required. */
    binding: v.string(),
    /**
     * Table the rows go to; created with its indexes on first use. Letters, digits and `_`, not
     * starting with a digit, `sqlite_` or `_cf_`. Default `tailfan_logs`.
     */
    table: v.optional(
      v.pipe(
        v.string(),
        v.regex(TABLE_NAME, "must be 1 to 64 letters, digits or '_', not starting with a digit"),
        v.check((t) => !/^(sqlite_|_cf_)/i.test(t), "may not start with sqlite_ or _cf_ (reserved by SQLite and D1)"),
      ),
      "tailfan_logs",
    ),
  }),
  batch: () => ({ maxRecords: 500, maxBytes: 4 * 1024 * 1024, maxRecordBytes: D1_MAX_RECORD_BYTES }),
  bindings: (o) => [{ option: "binding", name: o.binding, kind: "d1" }],
  create(o, ctx) {
    const db = ctx.env[o.binding] as D1Database | undefined;
    const key = `${o.binding}\u0000${o.table}`;
    return {
      encode(batch): D1Row[] {
        return batch.map(toRow);
      },
      async send(rows, signal) {
        if (typeof db?.prepare !== "function" || typeof db.batch !== "function") {
          return { outcome: "fail", reason: `binding "${o.binding}" is not a D1 database` };
        }
        if (rows.length === 0) return { outcome: "ok" };
        try {
          let ddl = created.has(key) ? [] : schemaSql(o.table).map((sql) => db.prepare(sql));
          for (const statements of planBatches(rows)) {
            // After a timeout, stop: the retry sends everything again, and OR IGNORE skips what is stored.
            if (signal.aborted) return { outcome: "retry", reason: "aborted between D1 batch calls" };
            const inserts = statements.map((stmt) =>
              db.prepare(insertSql(o.table, stmt.length)).bind(...stmt.flatMap((row) => D1_COLUMNS.map((c) => row[c]))),
            );
            // The first call also creates the table: one round trip, one transaction.
            await db.batch([...ddl, ...inserts]);
            if (ddl.length > 0) {
              created.add(key);
              ddl = [];
            }
          }
          return { outcome: "ok" };
        } catch (err) {
          const message = describeError(err);
          if (/no such table/i.test(message)) created.delete(key);
          const outcome = classifyD1Error(message);
          return { outcome, reason: `D1 insert into ${o.table} failed: ${message}` };
        }
      },
    };
  },
});
