/** The sink registry: the one place sink types are listed. `src/` reaches sinks only through here. */
import { analyticsEngineSink } from "./analytics-engine";
import { axiomSink } from "./axiom";
import { betterstackSink } from "./betterstack";
import { d1Sink } from "./d1";
import { datadogSink } from "./datadog";
import { discordSink } from "./discord";
import { elasticsearchSink } from "./elasticsearch";
import { honeycombSink } from "./honeycomb";
import { httpSink } from "./http";
import { kvSink } from "./kv";
import { lokiSink } from "./loki";
import { newrelicSink } from "./newrelic";
import { otlpSink } from "./otlp";
import { otlpTracesSink } from "./otlp-traces";
import { pipelineSink } from "./pipeline";
import { queueSink } from "./queue";
import { r2Sink } from "./r2";
import { sentrySink } from "./sentry";
import { slackSink } from "./slack";
import { splunkSink } from "./splunk";
import type { AnySinkDefinition } from "./types";

export const SINK_TYPES: Readonly<Record<string, AnySinkDefinition>> = {
  http: httpSink,
  kv: kvSink,
  r2: r2Sink,
  queue: queueSink,
  d1: d1Sink,
  analytics_engine: analyticsEngineSink,
  datadog: datadogSink,
  loki: lokiSink,
  splunk: splunkSink,
  elasticsearch: elasticsearchSink,
  otlp: otlpSink,
  otlp_traces: otlpTracesSink,
  pipeline: pipelineSink,
  newrelic: newrelicSink,
  axiom: axiomSink,
  betterstack: betterstackSink,
  honeycomb: honeycombSink,
  sentry: sentrySink,
  slack: slackSink,
  discord: discordSink,
};

export type { AnySinkDefinition, BatchLimits, BindingKind, SendResult, Sink } from "./types";
