/**
 * Decodes an OTLP/HTTP JSON traces body through the official
 * `ExportTraceServiceRequest` type (protobufjs code generated from
 * opentelemetry-proto, shipped in @opentelemetry/otlp-transformer): the body
 * as a receiver reads it, re-encoded to protobuf bytes and decoded again.
 * Node side only (see test/e2e/otlp-wire.test.ts for why).
 */
import { createRequire } from "node:module";
import type { ProtoMessageType } from "../sinks/wire/otlp";

type Obj = Record<string, unknown>;

const require = createRequire(import.meta.url);
const root = require("@opentelemetry/otlp-transformer/build/src/generated/root.js") as {
  opentelemetry: { proto: { collector: { trace: { v1: { ExportTraceServiceRequest: ProtoMessageType } } } } };
};
export const ExportTraceServiceRequest = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

const ID_FIELDS = ["traceId", "spanId", "parentSpanId"];
const hexToBase64 = (hex: string) => Buffer.from(hex, "hex").toString("base64");
const base64ToHex = (b64: string) => Buffer.from(b64, "base64").toString("hex");

function mapIds(json: unknown, f: (id: string) => string): unknown {
  const copy = structuredClone(json) as { resourceSpans?: { scopeSpans?: { spans?: Obj[] }[] }[] };
  for (const rs of copy.resourceSpans ?? [])
    for (const ss of rs.scopeSpans ?? [])
      for (const s of ss.spans ?? []) for (const k of ID_FIELDS) if (typeof s[k] === "string") s[k] = f(s[k] as string);
  return copy;
}

export interface DecodedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** The enum's name, e.g. `SPAN_KIND_SERVER`. */
  kind: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: Obj }[];
  status: { code?: string; message?: string };
}

export interface DecodedTraces {
  resourceSpans: { resource: { attributes: { key: string; value: Obj }[] }; scopeSpans: { spans: DecodedSpan[] }[] }[];
}

/**
 * The body decoded as a collector would: hex ids (OTLP's deviation from
 * proto3 JSON) read as bytes, verified, encoded and decoded through protobuf,
 * then back to JSON with 64-bit values as strings and enums by name. Throws
 * with the reason when the body is not a valid ExportTraceServiceRequest.
 */
export function decodeTraces(body: string): DecodedTraces {
  const json = JSON.parse(body) as unknown;
  const message = ExportTraceServiceRequest.fromObject(mapIds(json, hexToBase64) as Obj);
  const problem = ExportTraceServiceRequest.verify(message);
  if (problem) throw new Error(`not an ExportTraceServiceRequest: ${problem}`);
  const decoded = ExportTraceServiceRequest.decode(ExportTraceServiceRequest.encode(message).finish());
  const back = ExportTraceServiceRequest.toObject(decoded, {
    longs: String,
    enums: String,
    bytes: String,
    defaults: true,
  });
  return mapIds(back, base64ToHex) as DecodedTraces;
}

/** Every span of a decoded request, with its resource's attributes as a plain object. */
export function spansOf(t: DecodedTraces): (DecodedSpan & { resource: Obj })[] {
  return t.resourceSpans.flatMap((rs) => {
    const resource = Object.fromEntries(rs.resource.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
    return rs.scopeSpans.flatMap((ss) => ss.spans.map((s) => ({ ...s, resource })));
  });
}

/** A span's attributes as a plain object of their single values. */
export function attrs(s: { attributes: { key: string; value: Obj }[] }): Obj {
  return Object.fromEntries(s.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
}
