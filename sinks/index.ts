/** The sink registry: the one place sink types are listed. `src/` reaches sinks only through here. */
import { httpSink } from "./http";
import { kvSink } from "./kv";
import { queueSink } from "./queue";
import { r2Sink } from "./r2";
import type { AnySinkDefinition } from "./types";

export const SINK_TYPES: Readonly<Record<string, AnySinkDefinition>> = {
  http: httpSink,
  kv: kvSink,
  r2: r2Sink,
  queue: queueSink,
};

export type { AnySinkDefinition, BatchLimits, BindingKind, SendResult, Sink } from "./types";
