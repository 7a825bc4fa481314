/**
 * The otlp sink's JSON checked against the official OpenTelemetry protobuf
 * definitions: the generated `ExportLogsServiceRequest` shipped in
 * @opentelemetry/otlp-transformer (protobufjs static code built from
 * opentelemetry-proto). It runs on the Node side because protobufjs needs
 * `long` for 64-bit fields, and in workerd its optional-module loader (eval)
 * is refused, so nanosecond times would lose precision. sinks/otlp.ts is pure
 * TypeScript, so its `encode` runs here unchanged, fed with records the real
 * normalizer makes from every captured and synthetic TraceItem fixture.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { serializeRecord } from "../../src/json";
import { normalizeTraceItems } from "../../src/normalize";
import type { SerializedRecord } from "../../src/record";
import { type ProtoMessageType, protoRoundTripProblems, validateOtlp } from "../sinks/wire/otlp";

/** The part of the sink definition this test uses. */
interface OtlpSinkLike {
  options: v.GenericSchema;
  create(
    options: unknown,
    ctx: { name: string; env: Record<string, unknown> },
  ): {
    encode(batch: readonly SerializedRecord[]): { body: string };
  };
}

/**
 * The sink is loaded at run time rather than imported statically: a static
 * import would put sinks/shared.ts into this project's type check, whose DOM
 * lib rejects its `Uint8Array` request bodies. The workers project type-checks
 * the sink against the Workers types.
 */
const sinkModule = "../../sinks/otlp";
const { otlpSink } = (await import(/* @vite-ignore */ sinkModule)) as { otlpSink: OtlpSinkLike };

const require = createRequire(import.meta.url);
const root = require("@opentelemetry/otlp-transformer/build/src/generated/root.js") as {
  opentelemetry: { proto: { collector: { logs: { v1: { ExportLogsServiceRequest: ProtoMessageType } } } } };
};
const ExportLogsServiceRequest = root.opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest;

function fixtureItems(file: string): Record<string, unknown>[] {
  const json = JSON.parse(readFileSync(join(import.meta.dirname, "../fixtures", file), "utf8")) as Record<
    string,
    unknown
  >;
  return Object.entries(json)
    .filter(([k]) => !k.startsWith("_"))
    .map(([, item]) => item as Record<string, unknown>);
}

const records: SerializedRecord[] = normalizeTraceItems([
  ...fixtureItems("trace-items.json"),
  ...fixtureItems("trace-items.synthetic.json"),
]).map(serializeRecord);

function encode(batch: readonly SerializedRecord[], raw: Record<string, unknown> = {}): string {
  const options = v.parse(otlpSink.options, { endpoint: "http://127.0.0.1:1", ...raw });
  const sink = otlpSink.create(options, { name: "wire", env: {} });
  return sink.encode(batch).body;
}

// biome-ignore lint/suspicious/noExplicitAny: tests poke at arbitrary JSON shapes.
type Loose = Record<string, any>;

const problems = (body: string) => [...validateOtlp(body), ...protoRoundTripProblems(body, ExportLogsServiceRequest)];

describe("otlp sink: wire format against the official protobuf types", () => {
  it("the fixtures give records of every type", () => {
    expect(new Set(records.map((r) => r.record.type))).toEqual(
      new Set(["invocation", "log", "exception", "diagnostic"]),
    );
    expect(records.length).toBeGreaterThan(50);
  });

  it("every fixture record, in one request, decodes as an ExportLogsServiceRequest with every field kept", () => {
    const body = encode(records);
    expect(problems(body)).toEqual([]);
    const json = JSON.parse(body) as { resourceLogs: { scopeLogs: { logRecords: unknown[] }[] }[] };
    const count = json.resourceLogs.reduce((n, rl) => n + (rl.scopeLogs[0]?.logRecords.length ?? 0), 0);
    expect(count).toBe(records.length);
  });

  it("each record alone decodes too (with and without serviceName)", () => {
    for (const record of records) {
      expect(problems(encode([record])), record.record.id).toEqual([]);
      expect(problems(encode([record], { serviceName: "shop" })), record.record.id).toEqual([]);
    }
  });

  it("decoded through protobuf, times are exact nanoseconds and severities are the OpenTelemetry numbers", () => {
    const body = encode(records);
    const message = ExportLogsServiceRequest.fromObject(JSON.parse(body) as Record<string, unknown>);
    const back = ExportLogsServiceRequest.toObject(
      ExportLogsServiceRequest.decode(ExportLogsServiceRequest.encode(message).finish()),
      {
        longs: String,
        enums: String,
      },
    ) as {
      resourceLogs: {
        scopeLogs: { logRecords: { timeUnixNano: string; severityNumber: string; severityText: string }[] }[];
      }[];
    };
    const decoded = back.resourceLogs.flatMap((rl) => rl.scopeLogs.flatMap((sl) => sl.logRecords));
    const byLevel: Record<string, string> = {
      debug: "SEVERITY_NUMBER_DEBUG",
      info: "SEVERITY_NUMBER_INFO",
      log: "SEVERITY_NUMBER_INFO",
      warn: "SEVERITY_NUMBER_WARN",
      error: "SEVERITY_NUMBER_ERROR",
    };
    for (const r of decoded) expect(r.severityNumber).toBe(byLevel[r.severityText]);
    const times = new Set(decoded.map((r) => r.timeUnixNano));
    for (const item of records)
      expect(times.has(`${BigInt(Math.floor(item.record.timestamp)) * 1_000_000n}`)).toBe(true);
  });
});

describe("otlp wire validator with the protobuf types: rejects malformed requests", () => {
  const good = () => JSON.parse(encode(records.slice(0, 4))) as Loose;
  const first = (j: Loose) => j.resourceLogs[0].scopeLogs[0].logRecords[0];

  const cases: { name: string; mutate: (j: Loose) => void; want: RegExp }[] = [
    {
      name: "a time as a number (precision lost past 2^53)",
      mutate: (j) => {
        first(j).timeUnixNano = Number("1741964966535000001");
      },
      want: /timeUnixNano/,
    },
    {
      name: "a snake_case field name",
      mutate: (j) => {
        const r = first(j);
        r.severity_text = r.severityText;
        delete r.severityText;
      },
      want: /severity_text/,
    },
    {
      name: "an enum by name",
      mutate: (j) => {
        first(j).severityNumber = "SEVERITY_NUMBER_INFO";
      },
      want: /severityNumber/,
    },
    {
      name: "an intValue as a number",
      mutate: (j) => {
        first(j).attributes.push({ key: "n", value: { intValue: 5 } });
      },
      want: /intValue/,
    },
    {
      name: "two members of the AnyValue oneof",
      mutate: (j) => {
        first(j).body = { stringValue: "a", boolValue: true };
      },
      want: /oneof|multiple|value/,
    },
    {
      name: "a base64 trace id",
      mutate: (j) => {
        first(j).traceId = "AAECAwQFBgcICQoLDA0ODw==";
      },
      want: /traceId/,
    },
    {
      name: "a misspelled field inside an attribute value",
      mutate: (j) => {
        first(j).attributes[0].value = { stringVal: "x" };
      },
      want: /stringVal/,
    },
  ];

  it("the unmutated request passes both checks", () => {
    expect(problems(JSON.stringify(good()))).toEqual([]);
  });

  it.each(cases)("$name", ({ mutate, want }) => {
    const j = good();
    mutate(j);
    const body = JSON.stringify(j);
    const viaProto = protoRoundTripProblems(body, ExportLogsServiceRequest);
    expect(viaProto.length, "the protobuf round trip must notice").toBeGreaterThan(0);
    expect(viaProto.join("\n")).toMatch(want);
    expect(validateOtlp(body).join("\n")).toMatch(want);
  });
});
