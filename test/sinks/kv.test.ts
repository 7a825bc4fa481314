import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { type KvEntry, type KvMetadata, kvSink } from "../../sinks/kv";
import { keySegment, ndjson } from "../../sinks/shared";
import type { SerializedRecord } from "../../src/record";
import { sinkContract } from "./contract";
import { asJson, bindings, makeSink, must, parseNdjson, serialized, T0, traceItem, uid } from "./helpers";

sinkContract({
  def: kvSink,
  valid: { binding: "LOGS_KV" },
  resolved: {
    binding: "LOGS_KV",
    key: "logs/{date}/{script}/{ts}-{id}",
    per: "invocation",
    format: "ndjson",
    maxRecords: 1000,
  },
  invalid: [
    { name: "a binding of the wrong type", options: { binding: 7 }, path: "binding" },
    { name: "a ttl given as a string", options: { binding: "LOGS_KV", ttl: "3600" }, path: "ttl" },
    { name: "a ttl under 60 s", options: { binding: "LOGS_KV", ttl: 30 }, path: "ttl" },
    { name: "a key that is not a string", options: { binding: "LOGS_KV", key: ["logs"] }, path: "key" },
    { name: "maxRecords 0", options: { binding: "LOGS_KV", maxRecords: 0 }, path: "maxRecords" },
    { name: "an unknown grouping", options: { binding: "LOGS_KV", per: "day" }, path: "per" },
  ],
  rejecting: [
    { name: "the binding does not exist", options: { binding: "NO_SUCH_KV" } },
    // A Queue where a namespace should be: put() does not exist on it.
    { name: "the binding is not a KV namespace", options: { binding: "LOGS_QUEUE" } },
  ],
  abortIsHonoured: false,
});

/** Three invocations of one script, with known levels. */
function threeInvocations(script: string): {
  records: SerializedRecord[];
  byInvocation: Map<string, SerializedRecord[]>;
} {
  const records = serialized([
    // ok, info + warn logs → highest level warn
    traceItem({
      script,
      path: "/a",
      eventTimestamp: T0,
      logs: [
        { level: "info", message: ["loading cart"] },
        { level: "warn", message: ["slow upstream", { ms: 950 }] },
      ],
    }),
    // exception outcome, a debug log and an exception → error
    traceItem({
      script,
      path: "/b",
      outcome: "exception",
      status: 500,
      eventTimestamp: T0 + 1_000,
      logs: [{ level: "debug", message: ["about to charge"] }],
      exceptions: [{ name: "TypeError", message: "card is undefined" }],
    }),
    // ok with only a console.log → info (log ranks with info)
    traceItem({ script, path: "/c", eventTimestamp: T0 + 2_000, logs: [{ level: "log", message: ["fine"] }] }),
  ]);
  const byInvocation = new Map<string, SerializedRecord[]>();
  for (const r of records) {
    const list = byInvocation.get(r.record.invocationId) ?? [];
    list.push(r);
    byInvocation.set(r.record.invocationId, list);
  }
  return { records, byInvocation };
}

async function listAll(prefix: string) {
  const out: KVNamespaceListKey<KvMetadata>[] = [];
  let cursor: string | undefined;
  do {
    const page: KVNamespaceListResult<KvMetadata> = await bindings.LOGS_KV.list<KvMetadata>({ prefix, cursor });
    out.push(...page.keys);
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return out;
}

describe("kv sink: writes to the real local KV", () => {
  it("default template: one key per invocation, metadata, and NDJSON of exactly its records", async () => {
    const script = uid("kv-shop");
    const { records, byInvocation } = threeInvocations(script);
    expect(byInvocation.size).toBe(3);
    const { sink } = makeSink<KvEntry[]>(kvSink, { binding: "LOGS_KV" });
    const result = await sink.send(sink.encode(records), AbortSignal.timeout(5_000));
    expect(result.outcome).toBe("ok");

    const keys = await listAll(`logs/2025-03-14/${script}/`);
    expect(keys).toHaveLength(3);
    const expectedLevels = ["warn", "error", "info"];
    const expectedOutcomes = ["ok", "exception", "ok"];
    let i = 0;
    for (const [invocationId, items] of byInvocation) {
      const first = must(items[0]).record;
      const key = `logs/2025-03-14/${script}/${first.eventTimestamp}-${invocationId}-0`;
      const listed = keys.find((k) => k.name === key);
      expect(listed, `key ${key} in ${keys.map((k) => k.name).join(", ")}`).toBeDefined();
      expect(must(listed).metadata).toEqual({
        script,
        level: expectedLevels[i],
        outcome: expectedOutcomes[i],
        eventType: "fetch",
        count: items.length,
        ts: first.eventTimestamp,
      });
      expect(must(listed).expiration).toBeUndefined();
      const value = await bindings.LOGS_KV.get(key, "text");
      expect(value).toBe(ndjson(items));
      expect(parseNdjson(must(value))).toEqual(asJson(items));
      i++;
    }
  });

  it("custom template: every variable is filled in from the invocation", async () => {
    const tag = uid("kvtpl");
    const script = "shop/api"; // a slash in user data must not add a key segment
    const records = serialized([
      traceItem({
        script,
        outcome: "exception",
        status: 500,
        eventTimestamp: T0,
        exceptions: [{ name: "Error", message: "boom" }],
      }),
    ]);
    const first = must(records[0]).record;
    const template = `${tag}/{yyyy}/{mm}/{dd}/{hh}/{script}/{outcome}/{level}/{eventType}/{invocation}/{ts}/{id}`;
    const { sink } = makeSink<KvEntry[]>(kvSink, { binding: "LOGS_KV", key: template });
    expect((await sink.send(sink.encode(records), AbortSignal.timeout(5_000))).outcome).toBe("ok");
    const keys = await listAll(`${tag}/`);
    expect(keys.map((k) => k.name)).toEqual([
      `${tag}/2025/03/14/15/shop_api/exception/error/fetch/${first.invocationId}/${T0}/${first.invocationId}-0`,
    ]);
    expect(must(keys[0]).metadata).toMatchObject({
      script: "shop/api",
      level: "error",
      outcome: "exception",
      count: records.length,
    });
  });

  it("records of one invocation spread through the batch are grouped into one entry, order kept", () => {
    const { records, byInvocation } = threeInvocations("kv-interleave");
    // Interleave: round-robin over invocations.
    const lists = [...byInvocation.values()].map((l) => [...l]);
    const mixed: SerializedRecord[] = [];
    while (lists.some((l) => l.length > 0)) for (const l of lists) if (l.length > 0) mixed.push(must(l.shift()));
    expect(mixed).toHaveLength(records.length);
    const { sink } = makeSink<KvEntry[]>(kvSink, { binding: "LOGS_KV" });
    const entries = sink.encode(mixed);
    expect(entries).toHaveLength(3);
    for (const e of entries) {
      const lines = parseNdjson(e.value) as { invocationId: string }[];
      const inv = must(lines[0]).invocationId;
      expect(e.value).toBe(ndjson(must(byInvocation.get(inv))));
      expect(e.metadata.count).toBe(must(byInvocation.get(inv)).length);
    }
  });

  it("ttl sets an expiration that list() shows", async () => {
    const tag = uid("kvttl");
    const records = serialized([traceItem({ script: "shop-api" })]);
    const { sink } = makeSink<KvEntry[]>(kvSink, { binding: "LOGS_KV", key: `${tag}/{id}`, ttl: 3600 });
    const before = Math.floor(Date.now() / 1000);
    expect((await sink.send(sink.encode(records), AbortSignal.timeout(5_000))).outcome).toBe("ok");
    const after = Math.ceil(Date.now() / 1000);
    const keys = await listAll(`${tag}/`);
    expect(keys).toHaveLength(1);
    expect(must(keys[0]).expiration).toBeGreaterThanOrEqual(before + 3600 - 1);
    expect(must(keys[0]).expiration).toBeLessThanOrEqual(after + 3600 + 1);
  });

  it("a template without {id} is rejected at option parsing, naming {id}", () => {
    const res = v.safeParse(kvSink.options, { binding: "LOGS_KV", key: "logs/{date}/{script}/{invocation}" });
    expect(res.success).toBe(false);
    if (res.success) return;
    expect(res.issues.map((i) => i.message).join("\n")).toContain("{id}");
  });

  it("a template with an unknown variable is rejected", () => {
    const res = v.safeParse(kvSink.options, { binding: "LOGS_KV", key: "logs/{host}/{id}" });
    expect(res.success).toBe(false);
  });

  // A filled-in key over KV's 512 bytes is cut and then ends in its record id (`~<id>`), so distinct
  // invocations never overwrite each other.
  it("distinct invocations never share a key, even when the filled-in key is long", async () => {
    const tag = uid("kvlong");
    const script = "s".repeat(200); // keySegment caps it at 128
    const records = serialized([
      traceItem({ script, path: "/one", eventTimestamp: T0 }),
      traceItem({ script, path: "/two", eventTimestamp: T0 }),
    ]);
    const { sink } = makeSink<KvEntry[]>(kvSink, {
      binding: "LOGS_KV",
      key: `${tag}/{script}/{script}/{script}/{script}/{id}`,
    });
    const entries = sink.encode(records);
    expect(entries).toHaveLength(2);
    expect((await sink.send(entries, AbortSignal.timeout(5_000))).outcome).toBe("ok");
    // Both invocations must still be in KV.
    expect(await listAll(`${tag}/`)).toHaveLength(2);
  });
});

describe("kv sink: per = batch", () => {
  it("writes one entry for the whole batch, with metadata that only keeps shared values", async () => {
    const prefix = uid("kv-batch");
    const records = serialized([
      traceItem({ script: "a", path: "/x", logs: [{ level: "warn", message: ["w"] }] }),
      traceItem({ script: "b", path: "/y", logs: [{ level: "info", message: ["i"] }] }),
    ]);
    const { sink } = makeSink<KvEntry[]>(kvSink, { binding: "LOGS_KV", per: "batch", key: `${prefix}/{id}` });
    const entries = sink.encode(records);
    expect(entries).toHaveLength(1);
    expect(entries[0]?.metadata).toMatchObject({ script: null, level: "warn", count: records.length });
    expect(await sink.send(entries, new AbortController().signal)).toEqual({ outcome: "ok" });
    const { keys } = await bindings.LOGS_KV.list({ prefix });
    expect(keys).toHaveLength(1);
    const value = await bindings.LOGS_KV.get(must(keys[0]).name);
    expect(parseNdjson(value ?? "").map((r) => (r as { id: string }).id)).toEqual(records.map((r) => r.record.id));
  });
});

describe("keySegment", () => {
  it("is valid UTF-8 whatever the input: lone surrogates replaced, no cut inside a pair", () => {
    const wellFormed = (s: string) => new TextDecoder().decode(new TextEncoder().encode(s)) === s;
    expect(keySegment("a\ud800b")).toBe("a\ufffdb");
    expect(keySegment("a\udc00b")).toBe("a\ufffdb");
    expect(keySegment(`${"a".repeat(127)}\u{1f600}`)).toBe("a".repeat(127));
    expect(keySegment(`${"a".repeat(126)}\u{1f600}`)).toBe(`${"a".repeat(126)}\u{1f600}`);
    expect(keySegment("..")).toBe("_");
    expect(keySegment("x/y\u0000z")).toBe("x_y_z");
    for (const s of ["\ud800", "\udc00\ud800", `${"é".repeat(127)}\ud83d\ude00`])
      expect(wellFormed(keySegment(s))).toBe(true);
  });
});
