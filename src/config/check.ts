/** Checks across variables, once each has been read on its own. */
import type { ConfigError } from "../issues";
import type { DeliveryConfig } from "./delivery";
import type { ResolvedRoute } from "./routes";
import type { ResolvedSink } from "./sinks";

/** A warning per sink that no route names: with ROUTES set, it receives nothing. */
export function unroutedSinks(sinks: readonly ResolvedSink[], routes: readonly ResolvedRoute[] | null): string[] {
  if (routes === null) return [];
  const routed = new Set(routes.flatMap((r) => r.sinks));
  return sinks
    .filter((s) => !routed.has(s.name))
    .map((s) => `sink "${s.name}" is named by no route, so it receives nothing`);
}

/** What a sink may ask for only when tail() itself delivers: buffered messages carry globally scrubbed records. */
export function checkBufferedSinks(
  delivery: DeliveryConfig,
  sinks: readonly ResolvedSink[],
  positions: ReadonlyMap<string, number>,
  errors: ConfigError[],
): void {
  if (delivery.mode !== "buffered") return;
  for (const sink of sinks) {
    const at = `[${positions.get(sink.name)}]`;
    if (sink.unredacted) {
      errors.push({
        variable: "SINKS",
        path: `${at}.unredacted`,
        message: 'needs DELIVERY.mode = "direct": buffered messages carry the records as the runtime redacted them',
      });
    }
    if (sink.scrubber !== undefined) {
      errors.push({
        variable: "SINKS",
        path: `${at}.scrub`,
        message: 'needs DELIVERY.mode = "direct": buffered messages carry the records scrubbed by the global SCRUB',
      });
    }
  }
}
