import { describe, expect, it } from "vitest";
import { formatConfigErrors } from "../../src/config";
import { MAX_DEPTH, RecordSerializer, serializeRecord, toJson } from "../../src/json";
import {
  DEFAULT_LIMITS,
  isLimited,
  type LimitedRecord,
  type LimitsConfig,
  limitRecord,
  limitSerialized,
  parseLimitsConfig,
} from "../../src/limits";
import { normalizeTraceItems } from "../../src/normalize";
import { CONTEXT_KEYS, type LogRecord, type SerializedRecord } from "../../src/record";
import captured from "../fixtures/trace-items.json";
import synthetic from "../fixtures/trace-items.synthetic.json";
import { deepFreeze, must, T0, traceItem, utf8 } from "../sinks/helpers";

const L = DEFAULT_LIMITS;
const KIB64 = 64 * 1024;

const IDENTITY_KEYS = ["id", "type", "timestamp", "level", "logLevel", "exceptionName", "channel"];

/** A lone surrogate anywhere: a cut must never make one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function records(item: Record<string, unknown>): LogRecord[] {
  return normalizeTraceItems([item]);
}

function byType<T extends LogRecord["type"]>(rs: LogRecord[], type: T): Extract<LogRecord, { type: T }> {
  return must(rs.find((r) => r.type === type) as Extract<LogRecord, { type: T }> | undefined, type);
}

/** Limits a record through the hot path and checks what every result must satisfy. */
function limited(record: LogRecord, config: LimitsConfig = L): { item: SerializedRecord; out: LimitedRecord } {
  const before = JSON.stringify(record);
  const item = limitSerialized(serializeRecord(record), config);
  const out = item.record as LimitedRecord;
  // Valid JSON that parses back to exactly the record, measured exactly.
  expect(JSON.parse(item.line)).toEqual(JSON.parse(JSON.stringify(out)));
  expect(item.bytes).toBe(utf8(item.line));
  // Context and identity untouched; the input unchanged.
  for (const key of [...CONTEXT_KEYS, ...IDENTITY_KEYS]) {
    expect((out as unknown as Record<string, unknown>)[key], key).toEqual(
      (record as unknown as Record<string, unknown>)[key],
    );
  }
  expect(JSON.stringify(record)).toBe(before);
  return { item, out };
}

function hugeItem(): Record<string, unknown> {
  let deep: unknown = "bottom";
  for (let i = 0; i < 100; i++) deep = { d: deep };
  const item = traceItem({
    logs: [
      { level: "log", message: ["x".repeat(1024 * 1024)] },
      { level: "info", message: Array.from({ length: 10_000 }, (_, i) => ({ sku: `SKU-${i}`, n: i })) },
      { level: "warn", message: ["deep", deep] },
    ],
    exceptions: [{ name: "Error", message: "boom" }],
  });
  const exceptions = item.exceptions as { stack: string }[];
  (exceptions[0] as { stack: string }).stack = `Error: boom\n${"    at frame (worker.js:1:1)\n".repeat(10_000)}`;
  const event = item.event as { request: { cf: Record<string, unknown> } };
  const cf: Record<string, unknown> = { colo: "DFW", country: "US" };
  for (let i = 0; i < 50_000; i++) cf[`k${i}`] = "v".repeat(90);
  event.request.cf = cf;
  item.diagnosticsChannelEvents = [{ channel: "db", message: { rows: "r".repeat(300_000) }, timestamp: T0 + 9 }];
  return item;
}

describe("LIMITS config", () => {
  const parse = (raw: unknown) => parseLimitsConfig(raw, "LIMITS");
  const errors = (raw: unknown) => formatConfigErrors(parse(raw).errors);

  it("defaults when unset or empty", () => {
    for (const raw of [undefined, null, "", "  "]) {
      expect(parse(raw)).toEqual({
        config: { maxRecordBytes: 65536, maxMessageChars: 16384, maxDepth: 16, maxArrayItems: 1000 },
        errors: [],
      });
    }
  });

  it("takes a TOML table or the same as a JSON string, filling in the rest", () => {
    const want = { maxRecordBytes: 131072, maxMessageChars: 16384, maxDepth: 8, maxArrayItems: 1000 };
    expect(parse({ maxRecordBytes: 131072, maxDepth: 8 })).toEqual({ config: want, errors: [] });
    expect(parse('{"maxRecordBytes":131072,"maxDepth":8}')).toEqual({ config: want, errors: [] });
  });

  it("names LIMITS.<path> and the allowed range", () => {
    expect(errors({ maxRecordBytes: 100 })).toBe("LIMITS.maxRecordBytes: must be at least 1024 bytes");
    expect(errors({ maxRecordBytes: 2 * 1024 * 1024 })).toBe("LIMITS.maxRecordBytes: must be at most 1048576 bytes");
    expect(errors({ maxDepth: 1 })).toMatch(/^LIMITS\.maxDepth: must be at least 2 levels/);
    expect(errors({ maxDepth: 64 })).toMatch(/^LIMITS\.maxDepth: must be at most 16 levels/);
    expect(errors({ maxArrayItems: 2.5 })).toBe("LIMITS.maxArrayItems: must be a whole number");
    expect(errors({ maxBytes: 1 })).toMatch(/^LIMITS\.maxBytes: unknown option; known options: maxRecordBytes, /);
    expect(errors([1])).toBe("LIMITS: expected a table, got an array");
    expect(parse({ maxRecordBytes: 10, maxDepth: 99 }).errors.map((e) => e.path)).toEqual([
      ".maxRecordBytes",
      ".maxDepth",
    ]);
    // With errors the caller still gets usable defaults.
    expect(parse({ maxRecordBytes: 10 }).config).toEqual({ ...L });
  });

  it("never echoes the value it refuses", () => {
    const secret = "hunter2-do-not-print";
    for (const raw of [
      { maxRecordBytes: secret },
      `{"maxRecordBytes": ${secret}}`,
      `{${secret}`,
      { maxDepth: [secret] },
    ]) {
      const text = errors(raw);
      expect(text).toMatch(/^LIMITS/);
      expect(text).not.toContain("hunter2");
    }
    expect(errors({ maxRecordBytes: "65536" })).toBe("LIMITS.maxRecordBytes: expected number, got a string");
  });
});

describe("limitSerialized: the fast path", () => {
  const items = Object.entries({ ...captured, ...synthetic })
    .filter(([k]) => k !== "_comment")
    .map(([, x]) => x);

  it("returns every real fixture record as the very same item and record", () => {
    const serializer = new RecordSerializer();
    const all = normalizeTraceItems(items);
    expect(all.length).toBeGreaterThan(40);
    for (const record of all) {
      const item = serializer.serialize(record);
      expect(limitSerialized(item, L)).toBe(item);
      expect(limitRecord(record, L)).toEqual({ record, truncated: false, cutBytes: 0 });
      expect(limitRecord(record, L).record).toBe(record);
    }
  });

  it("decides a short line by its length: neither measures it nor reads more of the record than its message", () => {
    const [, log] = records(traceItem());
    const read: string[] = [];
    const spy = new Proxy(must(log), {
      get(target, key, receiver) {
        read.push(String(key));
        return Reflect.get(target, key, receiver);
      },
    });
    const line = JSON.stringify(log);
    const item: SerializedRecord = {
      record: spy,
      line,
      get bytes(): number {
        throw new Error("measured a line that cannot be over the limit");
      },
    };
    expect(limitSerialized(item, L)).toBe(item);
    expect(read).toEqual(["message"]);
  });

  it("still holds a short line to maxMessageChars", () => {
    const [, log] = records(traceItem({ logs: [{ level: "log", message: ["n".repeat(20_000)] }] }));
    const item = serializeRecord(must(log));
    expect(item.line.length * 3).toBeLessThanOrEqual(KIB64); // short enough for the length test alone
    const out = limitSerialized(item, L);
    // The marker is sized for the most digits N could have: here "…[truncated 3617 bytes]" is one short of that.
    expect(out.record.message.length).toBeLessThanOrEqual(L.maxMessageChars);
    expect(out.record.message.length).toBeGreaterThan(L.maxMessageChars - 3);
    expect(out.record.message).toMatch(/^n+…\[truncated \d+ bytes\]$/);
    expect((out.record as LimitedRecord).limitedFields).toEqual(["message"]);
  });

  it("measures a line between a third of the limit and the limit, once, and keeps it when it fits", () => {
    const [, log] = records(traceItem({ logs: [{ level: "log", message: ["é".repeat(15_000), "x".repeat(15_000)] }] }));
    const base = serializeRecord(must(log));
    let measured = 0;
    const item: SerializedRecord = {
      record: base.record,
      line: base.line,
      get bytes(): number {
        measured++;
        return base.bytes;
      },
    };
    expect(item.line.length).toBeGreaterThan(KIB64 / 3);
    expect(limitSerialized(item, { ...L, maxMessageChars: 40_000 })).toBe(item);
    expect(measured).toBe(1);
    // The same line, whose é take two bytes each, is over a 40 000 byte limit.
    const cut = limitSerialized(item, { ...L, maxMessageChars: 40_000, maxRecordBytes: 40_000 });
    expect(cut).not.toBe(item);
    expect(cut.bytes).toBeLessThanOrEqual(40_000);
  });

  it("a cut record is within the limits, so limiting it again (as queue() does with its line) changes nothing", () => {
    const [, log] = records(traceItem({ logs: [{ level: "log", message: ["x".repeat(300_000)] }] }));
    const { item } = limited(must(log));
    expect(limitSerialized(item, L)).toBe(item);
    const fromQueue: SerializedRecord = { record: JSON.parse(item.line), line: item.line, bytes: item.bytes };
    expect(limitSerialized(fromQueue, L)).toBe(fromQueue);
    expect(isLimited(fromQueue.record)).toBe(true);
  });
});

describe("limitRecord: cutting", () => {
  it("a 1 MB message: cut to maxMessageChars with a marker that says how much went", () => {
    const [, log] = records(traceItem({ logs: [{ level: "log", message: ["x".repeat(1024 * 1024)] }] }));
    const result = limitRecord(deepFreeze(must(log)), L);
    const out = result.record as LimitedRecord;
    expect(result.truncated).toBe(true);
    expect(out).not.toBe(log);
    expect(out.message.length).toBe(L.maxMessageChars);
    const removed = Number(/…\[truncated (\d+) bytes\]$/.exec(out.message)?.[1]);
    expect(removed).toBe(1024 * 1024 - out.message.indexOf("…"));
    expect(result.cutBytes).toBe(removed);
    expect(out.limited).toBe(true);
    expect(out.limitedFields).toEqual(["message"]);
    expect(log?.message.length).toBe(1024 * 1024);
    expect(utf8(JSON.stringify(out))).toBeLessThanOrEqual(KIB64);
  });

  it("non-finite numbers in a bare record are written as the rest of the pipeline writes them (toJson), not as null", () => {
    const [, log] = records(traceItem({ logs: [{ level: "log", message: ["x".repeat(100 * 1024)] }] }));
    const bare = { ...must(log?.type === "log" ? log : undefined), args: [NaN, Infinity, -Infinity, { n: NaN }] };
    const out = limitRecord(bare as LogRecord, L).record as LimitedRecord;
    const args = out.type === "log" ? must(out.args) : [];
    expect(args).toEqual([toJson(NaN), toJson(Infinity), toJson(-Infinity), { n: toJson(NaN) }]);
    expect(args[0]).toBe("NaN");
  });

  it("10 000 console arguments: the array keeps maxArrayItems elements, the last a marker; message and args listed", () => {
    const args = Array.from({ length: 10_000 }, (_, i) => ({ sku: `SKU-${i}`, n: i }));
    const [, log] = records(traceItem({ logs: [{ level: "info", message: args }] }));
    const { out } = limited(must(log));
    const kept = out.type === "log" ? must(out.args) : [];
    expect(kept).toHaveLength(L.maxArrayItems);
    expect(kept[998]).toEqual({ sku: "SKU-998", n: 998 });
    expect(kept[999]).toBe("…[truncated 9001 items]");
    expect(out.limitedFields).toEqual(["message", "args"]);
  });

  it("deep nesting: normalize already stops at 16 levels; a cut record obeys a smaller maxDepth", () => {
    let deep: unknown = "bottom";
    for (let i = 0; i < 100; i++) deep = { d: deep };
    const [, log] = records(traceItem({ logs: [{ level: "log", message: ["deep", deep] }] }));
    const rec = must(log?.type === "log" ? log : undefined);
    // args is level 0, the object argument level 1: the object at level MAX_DEPTH is a marker.
    let at: unknown = must(rec.args)[1];
    for (let level = 1; level < MAX_DEPTH; level++) at = (at as { d: unknown }).d;
    expect(at).toBe("[MaxDepth]");
    // Within the byte limit it is not walked again.
    expect(limitRecord(rec, { ...L, maxDepth: 4 }).record).toBe(rec);
    // Over it, maxDepth shapes the cut copy.
    const big = { ...rec, message: "m".repeat(70_000) };
    const { out } = limited(big, { ...L, maxDepth: 4, maxMessageChars: 100_000 });
    expect(out.type === "log" && out.args).toEqual(["deep", { d: { d: { d: "[MaxDepth]" } } }]);
    expect(out.limitedFields).toEqual(["message", "args"]);
  });

  it("many logs: small ones pass as they are, each big one is cut on its own", () => {
    const logs = Array.from({ length: 3000 }, (_, i) => ({
      level: "log" as const,
      message: [i % 100 === 0 ? `big ${"y".repeat(200_000)}` : `line ${i}`],
    }));
    const all = records(traceItem({ logs }));
    const serializer = new RecordSerializer();
    let cut = 0;
    for (const record of all) {
      const item = serializer.serialize(record);
      const out = limitSerialized(item, L);
      if (out === item) {
        expect(isLimited(record)).toBe(false);
        continue;
      }
      cut++;
      expect(out.bytes).toBeLessThanOrEqual(KIB64);
      expect(out.record.id).toBe(record.id);
      expect(out.record.message.startsWith("big y")).toBe(true);
    }
    expect(cut).toBe(30);
  });

  it("cuts multi-byte and emoji text on a character boundary, at every possible offset", () => {
    const text = "日本é😀".repeat(30_000);
    const [, log] = records(traceItem({ logs: [{ level: "log", message: [text] }] }));
    for (let chars = 64; chars < 72; chars++) {
      const { out } = limited(must(log), { ...L, maxMessageChars: chars });
      expect(out.message.length).toBeLessThanOrEqual(chars);
      expect(LONE_SURROGATE.test(out.message), out.message).toBe(false);
      expect(text.startsWith(out.message.slice(0, out.message.indexOf("…")))).toBe(true);
    }
    // By bytes: a 300 KB stack of emoji, cut to fit 64 KiB.
    const exception = byType(records(traceItem({ exceptions: [{ name: "Error", message: "e" }] })), "exception");
    const { item, out } = limited({ ...exception, stack: "😀".repeat(100_000) });
    expect(item.bytes).toBeLessThanOrEqual(KIB64);
    expect(item.bytes).toBeGreaterThan(KIB64 - 200);
    const stack = out.type === "exception" ? must(out.stack) : "";
    expect(LONE_SURROGATE.test(stack)).toBe(false);
    expect(stack).toMatch(/^(😀)+…\[truncated \d+ bytes\]$/);
  });

  it("lone surrogates and escapes in the input: counted as written, the line stays valid JSON within the limit", () => {
    const nasty = `${'\ud800"\n\u0001'.repeat(60_000)}`;
    const [, log] = records(traceItem({ logs: [{ level: "log", message: [nasty] }] }));
    const { item, out } = limited(must(log), { ...L, maxMessageChars: 500_000 });
    expect(item.bytes).toBeLessThanOrEqual(KIB64);
    expect(item.bytes).toBeGreaterThan(KIB64 - 200);
    // The lone surrogates that were there stay, escaped, and parse back.
    const back = JSON.parse(item.line) as LogRecord;
    expect(back.message).toBe(out.message);
    expect(nasty.startsWith(out.message.slice(0, out.message.indexOf("…")))).toBe(true);
  });

  it("carries the runtime's own truncated flag through unchanged, apart from limited", () => {
    for (const truncated of [true, false]) {
      const item = { ...traceItem({ logs: [{ level: "log", message: ["z".repeat(100_000)] }] }), truncated };
      const { out } = limited(must(records(item)[1]));
      expect(out.truncated).toBe(truncated);
      expect(out.limited).toBe(true);
    }
  });

  it("lists exactly the fields it cut, and cuts the biggest first", () => {
    // Exception: a 300 KB stack and a 10 KB message; only the stack is cut.
    const base = records(traceItem({ exceptions: [{ name: "TypeError", message: "m" }] }));
    const exception = { ...byType(base, "exception"), message: "q".repeat(10_000), stack: "s".repeat(300_000) };
    const ex = limited(exception).out;
    expect(ex.limitedFields).toEqual(["stack"]);
    expect(ex.message).toBe(exception.message);
    // Diagnostic data.
    const diag = byType(
      records({
        ...traceItem(),
        diagnosticsChannelEvents: [{ channel: "db", message: { a: 1, rows: "r".repeat(200_000) } }],
      }),
      "diagnostic",
    );
    const d = limited({ ...diag, message: "db: rows" }).out;
    expect(d.limitedFields).toEqual(["data"]);
    expect(d.type === "diagnostic" && (d.data as { a: number }).a).toBe(1);
    // Invocation: a 5 MB cf object; method and status, being small, are kept whole.
    const huge = hugeItem();
    const invocation = byType(records(huge), "invocation");
    const inv = limited(invocation).out;
    expect(inv.limitedFields).toEqual(["event"]);
    const event = (inv.type === "invocation" ? inv.event : null) as {
      request: { method: string; cf: Record<string, unknown>; headers: unknown };
      response: unknown;
    };
    expect(event.request.method).toBe("GET");
    expect(event.request.headers).toEqual({});
    expect(event.response).toEqual({ status: 200 });
    expect(event.request.cf.colo).toBe("DFW");
    expect(Object.keys(event.request.cf).at(-1)).toBe("…");
    expect(event.request.cf["…"]).toMatch(/^…\[truncated \d+ keys\]$/);
  });

  it("never changes its input: the runtime's objects are shared by reference", () => {
    const all = records(hugeItem()).map((r) => deepFreeze(r));
    for (const record of all) {
      const before = JSON.stringify(record);
      const result = limitRecord(record, L);
      if (result.truncated) expect(result.record).not.toBe(record);
      expect(JSON.stringify(record)).toBe(before);
    }
  });

  it("keeps keys named __proto__ as data", () => {
    const arg = JSON.parse(`{"__proto__":{"polluted":true},"pad":"${"p".repeat(100_000)}"}`);
    const [, log] = records(traceItem({ logs: [{ level: "log", message: ["x", arg] }] }));
    const { item } = limited(must(log));
    expect(item.line).toContain('"__proto__":{"polluted":true}');
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
  });

  it("a context alone over the limit is kept whole: the record stays over it, marked, for the sink's limit to judge", () => {
    const [, log] = records(
      traceItem({ path: `/${"u".repeat(3000)}`, logs: [{ level: "log", message: ["w".repeat(5000)] }] }),
    );
    const { item, out } = limited(must(log), { ...L, maxRecordBytes: 1024 });
    expect(item.bytes).toBeGreaterThan(1024);
    expect(out.url).toBe(log?.url);
    expect(out.limitedFields).toEqual(["message"]);
    expect(out.message).toMatch(/^…\[truncated 5000 bytes\]$/);
  });
});

describe("no record from huge input exceeds the limit", () => {
  for (const maxRecordBytes of [KIB64, 4096, 1024]) {
    it(`every record of a monstrous invocation fits ${maxRecordBytes} bytes and survives a JSON round trip`, () => {
      const config = { ...L, maxRecordBytes };
      const all = records(hugeItem());
      expect(all.map((r) => r.type)).toEqual(["invocation", "log", "log", "log", "exception", "diagnostic"]);
      const serializer = new RecordSerializer();
      const lines: string[] = [];
      for (const record of all) {
        const item = limitSerialized(serializer.serialize(record), config);
        expect(item.bytes, record.id).toBeLessThanOrEqual(maxRecordBytes);
        expect(utf8(item.line)).toBe(item.bytes);
        expect(JSON.parse(item.line)).toEqual(JSON.parse(JSON.stringify(item.record)));
        expect(LONE_SURROGATE.test(item.line)).toBe(false);
        lines.push(item.line);
      }
      // The small log ("deep", 16 levels) fits as it is; the rest are cut and say so.
      expect(lines.map((l) => (JSON.parse(l) as LimitedRecord).limitedFields ?? [])).toEqual(
        maxRecordBytes === KIB64
          ? [["event"], ["message"], ["message", "args"], [], ["stack"], ["message", "data"]]
          : expect.any(Array),
      );
    });
  }
});
