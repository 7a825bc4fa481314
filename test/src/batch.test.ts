import { describe, expect, it } from "vitest";
import { splitBatches } from "../../src/delivery/batch";
import type { SerializedRecord } from "../../src/record";

/** The obvious version, measuring every line: the fast one must cut exactly the same batches. */
function reference(items: SerializedRecord[], maxRecords: number, maxBytes: number, maxRecordBytes = Infinity) {
  const batches: SerializedRecord[][] = [];
  const oversized: SerializedRecord[] = [];
  let current: SerializedRecord[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = new TextEncoder().encode(item.line).length;
    if (size > maxRecordBytes) {
      oversized.push(item);
      continue;
    }
    if (current.length > 0 && (current.length >= maxRecords || bytes + size + 1 > maxBytes)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size + 1;
  }
  if (current.length > 0) batches.push(current);
  return { batches, oversized };
}

let seed = 42;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};
const ALPHABET = ["a", "b", "z", " ", "é", "€", "日", "😀"];

function line(n: number, mix: number): SerializedRecord {
  let s = "";
  for (let i = 0; i < n; i++) s += rnd() < mix ? (ALPHABET[4 + Math.floor(rnd() * 4)] as string) : "x";
  return {
    record: {} as SerializedRecord["record"],
    line: s,
    get bytes() {
      return new TextEncoder().encode(s).length;
    },
  };
}

describe("splitBatches", () => {
  it("cuts the same batches as exact measuring, ASCII and multi-byte alike", () => {
    for (let round = 0; round < 200; round++) {
      const mix = round % 4 === 0 ? 0 : rnd();
      const items = Array.from({ length: 1 + Math.floor(rnd() * 60) }, () => line(Math.floor(rnd() * 300), mix));
      const maxRecords = 1 + Math.floor(rnd() * 30);
      const maxBytes = 50 + Math.floor(rnd() * 3000);
      const maxRecordBytes = rnd() < 0.5 ? undefined : 100 + Math.floor(rnd() * 800);
      const got = splitBatches(items, { maxRecords, maxBytes, maxRecordBytes });
      const want = reference(items, maxRecords, maxBytes, maxRecordBytes);
      expect(got.batches.map((b) => b.map((i) => items.indexOf(i)))).toEqual(
        want.batches.map((b) => b.map((i) => items.indexOf(i))),
      );
      expect(got.oversized).toEqual(want.oversized);
    }
  });

  it("does not measure lines when the bounds decide", () => {
    let measured = 0;
    const items = Array.from({ length: 100 }, (_, i) => ({
      record: {} as SerializedRecord["record"],
      line: `{"n":${i}}`,
      get bytes() {
        measured++;
        return this.line.length;
      },
    }));
    expect(splitBatches(items, { maxRecords: 1000, maxBytes: 1024 * 1024 }).batches).toHaveLength(1);
    expect(measured).toBe(0);
  });
});
