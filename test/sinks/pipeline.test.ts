import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import schema from "../../docs/pipeline-schema.json";
import { PIPELINE_MAX_REQUEST_BYTES, pipelineSink } from "../../sinks/pipeline";
import { splitBatches } from "../../src/delivery/batch";
import { serializeRecord } from "../../src/json";
import { DEFAULT_LIMITS, limitSerialized } from "../../src/limits";
import { normalizeTraceItems } from "../../src/normalize";
import { type LogRecord, RECORD_TYPES } from "../../src/record";
import { InvocationAssembly } from "../../src/stream";
import { otherEvents, queueCutShort, rpcInherited, scheduledWithSpans } from "../fixtures/tail-stream.synthetic";
import captured from "../fixtures/trace-items.json";
import synthetic from "../fixtures/trace-items.synthetic.json";
import { sinkContract } from "./contract";
import { asJson, bigRecords, makeSink, must, someRecords, utf8 } from "./helpers";

sinkContract({
  def: pipelineSink,
  valid: { binding: "LOGS_PIPELINE" },
  resolved: { binding: "LOGS_PIPELINE", maxRecords: 1000 },
  invalid: [
    { name: "a binding of the wrong type", options: { binding: ["LOGS_PIPELINE"] }, path: "binding" },
    { name: "an empty binding name", options: { binding: "" }, path: "binding" },
    { name: "maxRecords 0", options: { binding: "LOGS_PIPELINE", maxRecords: 0 }, path: "maxRecords" },
    { name: "maxRecords as a string", options: { binding: "LOGS_PIPELINE", maxRecords: "10" }, path: "maxRecords" },
  ],
  rejecting: [
    { name: "the binding does not exist", options: { binding: "NO_SUCH_PIPELINE" } },
    { name: "the binding is not a pipeline (a KV namespace)", options: { binding: "LOGS_KV" } },
  ],
  abortIsHonoured: false,
});

/** What Pipelines counts for one send: the records as a JSON array. */
const requestBytes = (records: object[]) => utf8(JSON.stringify(records));

describe("pipeline sink: send() calls within the Pipelines limits", () => {
  it("the test binding is Miniflare's local Pipelines binding", () => {
    expect(typeof (env as unknown as { LOGS_PIPELINE: { send?: unknown } }).LOGS_PIPELINE.send).toBe("function");
  });

  it("records go to the real binding as plain JSON objects, one send per batch, exactly the records' fields", async () => {
    const records = someRecords(20, "pipe-send");
    const { sink, limits } = makeSink<object[]>(pipelineSink, { binding: "LOGS_PIPELINE" });
    const { batches } = splitBatches(records, limits);
    expect(batches).toHaveLength(1);
    const payload = sink.encode(must(batches[0]));
    expect(payload).toEqual(asJson(records));
    // The binding is an RPC stub: a payload it could not serialize would reject here.
    await expect(sink.send(payload, new AbortController().signal)).resolves.toEqual({ outcome: "ok" });
  });

  it("large records are cut into batches of at most 1 MB of JSON per send, none lost", async () => {
    const records = bigRecords(12, 200_000);
    const { sink, limits } = makeSink<object[]>(pipelineSink, { binding: "LOGS_PIPELINE" });
    const { batches, oversized } = splitBatches(records, limits);
    expect(oversized).toEqual([]);
    expect(batches.length).toBeGreaterThan(2);
    let total = 0;
    for (const batch of batches) {
      const payload = sink.encode(batch);
      expect(requestBytes(payload)).toBeLessThanOrEqual(PIPELINE_MAX_REQUEST_BYTES);
      total += payload.length;
      expect(await sink.send(payload, new AbortController().signal)).toEqual({ outcome: "ok" });
    }
    expect(total).toBe(records.length);
  });

  it("maxRecords caps records per send even when they are small", () => {
    const records = someRecords(30, "pipe-cap"); // 60 records
    const { limits } = makeSink(pipelineSink, { binding: "LOGS_PIPELINE", maxRecords: 25 });
    const { batches } = splitBatches(records, limits);
    expect(batches.map((b) => b.length)).toEqual([25, 25, 10]);
  });

  it("a record over 1 MB on its own is set aside, not sent", () => {
    const records = bigRecords(1, 1_100_000);
    const { limits } = makeSink(pipelineSink, { binding: "LOGS_PIPELINE" });
    const { batches, oversized } = splitBatches(records, limits);
    expect(batches).toEqual([]);
    expect(oversized).toHaveLength(1);
  });

  it("a missing binding fails for good, naming the binding; a send that rejects is retried", async () => {
    const { sink } = makeSink<object[]>(pipelineSink, { binding: "NO_SUCH_PIPELINE" });
    const missing = await sink.send([{ a: 1 }], new AbortController().signal);
    expect(missing).toMatchObject({ outcome: "fail" });
    expect(missing.outcome !== "ok" && missing.reason).toContain("NO_SUCH_PIPELINE");
    const broken = pipelineSink.create(
      { binding: "P", maxRecords: 10 },
      { name: "p", env: { P: { send: () => Promise.reject(new Error("ingest unavailable")) } } },
    );
    const retry = await broken.send([{ a: 1 }], new AbortController().signal);
    expect(retry).toMatchObject({ outcome: "retry" });
    expect(retry.outcome !== "ok" && retry.reason).toContain("ingest unavailable");
  });
});

describe("pipeline sink: the documented stream schema (docs/pipeline-schema.json)", () => {
  type Field = { name: string; type: "string" | "int64" | "float64" | "bool" | "json"; required: boolean };
  const fields = new Map((schema as { fields: Field[] }).fields.map((f) => [f.name, f]));
  const fits: Record<Field["type"], (v: unknown) => boolean> = {
    string: (v) => typeof v === "string",
    int64: (v) => Number.isSafeInteger(v),
    float64: (v) => typeof v === "number" && Number.isFinite(v),
    bool: (v) => typeof v === "boolean",
    json: () => true,
  };
  /** Every record the fixtures give: captured and synthetic TraceItems, and synthetic streamed invocations. */
  const records = (): Record<string, unknown>[] => {
    const items = [...Object.entries(captured), ...Object.entries(synthetic)]
      .filter(([k]) => !k.startsWith("_"))
      .map(([, item]) => item);
    const streamed = [scheduledWithSpans, queueCutShort, rpcInherited, ...otherEvents].flatMap((f) => {
      const a = new InvocationAssembly(f.onset);
      for (const e of f.events) a.push(e);
      return a.records(0);
    });
    const limited = limitSerialized(serializeRecord(bigRecords(1, 300_000)[0]?.record as LogRecord), DEFAULT_LIMITS);
    return [...normalizeTraceItems(items, 0), ...streamed, limited.record].map(
      (r) => JSON.parse(serializeRecord(r).line) as Record<string, unknown>,
    );
  };

  it("has every field of every record, each value of its column's type; required columns are always there", () => {
    const all = records();
    expect(new Set(all.map((r) => r.type))).toEqual(new Set(RECORD_TYPES));
    const seen = new Set<string>();
    for (const r of all) {
      for (const [key, value] of Object.entries(r)) {
        seen.add(key);
        const field = fields.get(key);
        expect(field, `column for ${key}`).toBeDefined();
        if (value !== null && field)
          expect(fits[field.type](value), `${r.type}.${key} = ${JSON.stringify(value)}`).toBe(true);
      }
      for (const f of fields.values()) if (f.required) expect(r[f.name], `${r.type}.${f.name}`).not.toBeUndefined();
    }
    // And no column that no record has (a renamed field would leave one behind).
    expect([...fields.keys()].filter((k) => !seen.has(k))).toEqual([]);
  });
});
