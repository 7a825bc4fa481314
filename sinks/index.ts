/**
 * The sink registry: the one place sink types are listed, each under its own
 * `type`, so a name cannot be written twice or disagree. `src/` reaches sinks
 * only through here.
 */
import type { AlertPoster } from "./alert-rules";
import { analyticsEngineSink } from "./analytics-engine";
import { axiomSink } from "./axiom";
import { betterstackSink } from "./betterstack";
import { d1Sink } from "./d1";
import { datadogSink } from "./datadog";
import { discordPoster, discordSink } from "./discord";
import { elasticsearchSink } from "./elasticsearch";
import { honeycombSink } from "./honeycomb";
import { httpSink } from "./http";
import { kvSink } from "./kv";
import { lokiSink } from "./loki";
import { newrelicSink } from "./newrelic";
import { otlpSink } from "./otlp";
import { otlpMetricsSink } from "./otlp-metrics";
import { otlpTracesSink } from "./otlp-traces";
import { pipelineSink } from "./pipeline";
import { queueSink } from "./queue";
import { r2Sink } from "./r2";
import { sentrySink } from "./sentry";
import { slackPoster, slackSink } from "./slack";
import { splunkSink } from "./splunk";
import type { AnySinkDefinition } from "./types";
import { webhookPoster, webhookSink } from "./webhook";

export const SINK_TYPES: Readonly<Record<string, AnySinkDefinition>> = {
  [httpSink.type]: httpSink,
  [kvSink.type]: kvSink,
  [r2Sink.type]: r2Sink,
  [queueSink.type]: queueSink,
  [d1Sink.type]: d1Sink,
  [analyticsEngineSink.type]: analyticsEngineSink,
  [datadogSink.type]: datadogSink,
  [lokiSink.type]: lokiSink,
  [splunkSink.type]: splunkSink,
  [elasticsearchSink.type]: elasticsearchSink,
  [otlpSink.type]: otlpSink,
  [otlpTracesSink.type]: otlpTracesSink,
  [otlpMetricsSink.type]: otlpMetricsSink,
  [pipelineSink.type]: pipelineSink,
  [newrelicSink.type]: newrelicSink,
  [axiomSink.type]: axiomSink,
  [betterstackSink.type]: betterstackSink,
  [honeycombSink.type]: honeycombSink,
  [sentrySink.type]: sentrySink,
  [slackSink.type]: slackSink,
  [discordSink.type]: discordSink,
  [webhookSink.type]: webhookSink,
};

/** How the alert rules' object posts, per sink type that takes `rules`. */
export const ALERT_POSTERS: Readonly<Record<string, AlertPoster>> = {
  [slackSink.type]: slackPoster,
  [discordSink.type]: discordPoster,
  [webhookSink.type]: webhookPoster,
};

export type {
  AddResult,
  AlertEvent,
  AlertPoster,
  AlertTarget,
  GroupDelta,
  RuleSettings,
} from "./alert-rules";

export type { Aggregate, Aggregation, AnySinkDefinition, BatchLimits, BindingKind, SendResult, Sink } from "./types";
