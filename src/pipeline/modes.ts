/**
 * Delivery modes: what tail() does with an invocation's scrubbed records.
 * Each mode keeps its rules beside it; adding one is an entry in
 * DELIVERY_MODES (and its name in the config's `mode` picklist).
 */
import type { DeliveryConfig, ResolvedConfig } from "../config";
import type { DeliveryOptions, SinkReport } from "../delivery/deliver";
import type { StatsBatch } from "../stats";
import { bufferedMode } from "./buffered";
import { directMode } from "./direct";
import type { PreparedRecords } from "./views";

/** What a mode is given: the invocation's config, bindings, counters and per-attempt knobs. */
export interface ModeContext {
  config: ResolvedConfig;
  env: Record<string, unknown>;
  stats: StatsBatch;
  options: DeliveryOptions;
}

export interface DeliveryMode {
  /**
   * Stages 5 to 9 for one tail() invocation: route, serialize, then deliver
   * and settle (or hand the records on, to be delivered later). Resolves to
   * the settled reports of what was sent now; never rejects on a sink's failure.
   */
  fromTail(prepared: PreparedRecords, mc: ModeContext): Promise<SinkReport[]>;
}

/** The modes by their `DELIVERY.mode` name; the compiler catches a name without an entry. */
export const DELIVERY_MODES: Readonly<Record<DeliveryConfig["mode"], DeliveryMode>> = {
  direct: directMode,
  buffered: bufferedMode,
};
