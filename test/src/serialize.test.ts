import { describe, expect, it } from "vitest";
import { fromMessage, toMessages } from "../../src/delivery/durable";
import { RecordSerializer, serializeRecord } from "../../src/json";
import { DEFAULT_LIMITS, limitSerialized } from "../../src/limits";
import { normalizeTraceItems } from "../../src/normalize";
import { utf8Length } from "../../src/text";
import captured from "../fixtures/trace-items.json";
import synthetic from "../fixtures/trace-items.synthetic.json";

const items = Object.entries({ ...captured, ...synthetic })
  .filter(([k]) => k !== "_comment")
  .map(([, v]) => v);

describe("RecordSerializer", () => {
  const records = normalizeTraceItems(items);

  it("each line parses back to exactly its record, for every fixture", () => {
    const serializer = new RecordSerializer();
    for (const record of records) {
      const { line, bytes } = serializer.serialize(record);
      expect(JSON.parse(line)).toEqual(JSON.parse(JSON.stringify(record)));
      expect(bytes).toBe(new TextEncoder().encode(line).length);
    }
  });

  it("shares one context between an invocation's records, without mixing invocations", () => {
    const serializer = new RecordSerializer();
    const lines = records.map((r) => JSON.parse(serializer.serialize(r).line) as Record<string, unknown>);
    for (let i = 0; i < records.length; i++) {
      expect(lines[i]?.invocationId).toBe(records[i]?.invocationId);
      expect(lines[i]?.url).toBe(records[i]?.url);
      expect(lines[i]?.outcome).toBe(records[i]?.outcome);
    }
  });

  it("falls back to a safe copy when a record holds something JSON cannot take", () => {
    const [record] = normalizeTraceItems([{ outcome: "ok", logs: [] }]);
    if (!record) throw new Error("no record");
    const hostile = { ...record, event: { big: 10n } } as unknown as typeof record;
    const { line } = serializeRecord(hostile);
    expect(JSON.parse(line).event).toEqual({ big: "10" });
  });

  it("counts bytes of non-ASCII lines exactly", () => {
    const [, record] = normalizeTraceItems([
      { outcome: "ok", logs: [{ level: "log", message: ["héllo 😀 日本"], timestamp: 1 }] },
    ]);
    if (!record) throw new Error("no record");
    const { line, bytes } = serializeRecord(record);
    expect(bytes).toBe(utf8Length(line));
    expect(bytes).toBeGreaterThan(line.length);
  });

  it("counts bytes exactly when the shared context is not ASCII, for every record of the invocation", () => {
    // The context's size is measured once per invocation and added to each line's own part.
    const records = normalizeTraceItems([
      {
        scriptName: "café-api",
        outcome: "ok",
        event: { request: { url: "https://example.com/日本/😀", method: "GET", headers: {} } },
        logs: [
          { level: "log", message: ["plain"], timestamp: 1 },
          { level: "warn", message: ["héllo", { k: "ü" }], timestamp: 2 },
        ],
      },
    ]);
    const serializer = new RecordSerializer();
    for (const record of records) {
      const { line, bytes } = serializer.serialize(record);
      expect(bytes).toBe(new TextEncoder().encode(line).length);
    }
  });
});

describe("SerializedRecord", () => {
  it("is made one way wherever it comes from: serialized, cut by LIMITS, or read back from a work message", () => {
    // Multi-byte text and a lone surrogate (written as \udXXX, sent as U+FFFD): line.length is not the size.
    const [, log] = normalizeTraceItems([
      {
        ...captured["fetch-console-error"],
        logs: [{ level: "log", message: ["é€😀 \ud800", "y".repeat(70_000)], timestamp: 1 }],
      },
    ]);
    const item = serializeRecord(log as never);
    const cut = limitSerialized(item, DEFAULT_LIMITS);
    expect(cut).not.toBe(item);
    const { bodies } = toMessages({ v: 1, kind: "records", at: 0 }, [item, cut]);
    const back = bodies.flatMap((b) => fromMessage(b).items);
    expect(back).toHaveLength(2);
    for (const x of [item, cut, ...back]) {
      expect(Object.getPrototypeOf(x)).toBe(Object.getPrototypeOf(item));
      expect(x.bytes).toBe(new TextEncoder().encode(x.line).length);
    }
  });
});
