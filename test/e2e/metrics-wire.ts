/**
 * Decodes an OTLP/HTTP JSON metrics body through the official
 * `ExportMetricsServiceRequest` type (protobufjs code generated from
 * opentelemetry-proto, shipped in @opentelemetry/otlp-transformer): the body
 * as a receiver reads it, encoded to protobuf bytes and decoded again.
 * Node side only (see test/e2e/otlp-wire.test.ts for why).
 */
import { createRequire } from "node:module";
import { type ProtoMessageType, protoRoundTripProblems } from "../sinks/wire/otlp";

type Obj = Record<string, unknown>;

const require = createRequire(import.meta.url);
const root = require("@opentelemetry/otlp-transformer/build/src/generated/root.js") as {
  opentelemetry: { proto: { collector: { metrics: { v1: { ExportMetricsServiceRequest: ProtoMessageType } } } } };
};
export const ExportMetricsServiceRequest = root.opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest;

/** What is wrong with a body as an ExportMetricsServiceRequest: a field protobuf does not know, a wrong type, ... */
export function metricsProblems(body: string): string[] {
  return protoRoundTripProblems(body, ExportMetricsServiceRequest);
}

export interface DecodedPoint {
  attributes: { key: string; value: Obj }[];
  startTimeUnixNano: string;
  timeUnixNano: string;
  asInt?: string;
  count?: string;
  sum?: number;
  bucketCounts?: string[];
  explicitBounds?: number[];
  min?: number;
  max?: number;
}

export interface DecodedMetric {
  name: string;
  unit: string;
  description: string;
  sum?: { aggregationTemporality: string; isMonotonic: boolean; dataPoints: DecodedPoint[] };
  histogram?: { aggregationTemporality: string; dataPoints: DecodedPoint[] };
}

export interface DecodedMetrics {
  resourceMetrics: {
    resource: { attributes: { key: string; value: Obj }[] };
    scopeMetrics: { scope: { name: string; version: string }; metrics: DecodedMetric[] }[];
  }[];
}

/** The body decoded as a collector would, 64-bit values as strings and enums by name; throws when it is not valid. */
export function decodeMetrics(body: string): DecodedMetrics {
  const type = ExportMetricsServiceRequest;
  const message = type.fromObject(JSON.parse(body) as Obj);
  const problem = type.verify(message);
  if (problem) throw new Error(`not an ExportMetricsServiceRequest: ${problem}`);
  const decoded = type.decode(type.encode(message).finish());
  return type.toObject(decoded, { longs: String, enums: String }) as unknown as DecodedMetrics;
}

const flat = (kvs: { key: string; value: Obj }[]) =>
  Object.fromEntries(kvs.map((a) => [a.key, Object.values(a.value)[0]]));

/** Every data point of metric `name`, with its resource's and its own attributes as plain objects. */
export function pointsOf(
  m: DecodedMetrics,
  name: string,
): (DecodedPoint & { resource: Obj; attrs: Obj; metric: DecodedMetric })[] {
  return m.resourceMetrics.flatMap((rm) =>
    rm.scopeMetrics.flatMap((sm) =>
      sm.metrics
        .filter((metric) => metric.name === name)
        .flatMap(
          (metric) =>
            (metric.sum ?? metric.histogram)?.dataPoints.map((p) => ({
              ...p,
              resource: flat(rm.resource.attributes),
              attrs: flat(p.attributes),
              metric,
            })) ?? [],
        ),
    ),
  );
}
