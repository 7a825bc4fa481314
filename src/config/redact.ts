/** Failure reasons from sinks, redacted where they enter tailfan. */
import type { AnySinkDefinition, SendResult } from "../../sinks/index";

/**
 * The sink type with every failure reason its sinks give passed through
 * `redact`: a backend's error body may quote the credentials it was sent.
 * The one place reasons enter tailfan, so logs, counters, /status, the
 * dashboard and dead letters all see the redacted text.
 */
export function redacting(definition: AnySinkDefinition, redact: (text: string) => string): AnySinkDefinition {
  const message = (err: unknown) => redact(err instanceof Error ? err.message : String(err));
  return {
    ...definition,
    create(options, ctx) {
      const sink = definition.create(options, ctx);
      const aggregation = sink.aggregate;
      return {
        // An aggregating sink's window is encoded with the same redaction as its batches.
        ...(aggregation && {
          aggregate: {
            ...aggregation,
            open() {
              const aggregate = aggregation.open();
              return {
                add: (record) => aggregate.add(record),
                encode() {
                  try {
                    return aggregate.encode();
                  } catch (err) {
                    throw new Error(message(err));
                  }
                },
              };
            },
          },
        }),
        encode(batch) {
          try {
            return sink.encode(batch);
          } catch (err) {
            throw new Error(message(err));
          }
        },
        async send(payload, signal): Promise<SendResult> {
          let result: SendResult;
          try {
            result = await sink.send(payload, signal);
          } catch (err) {
            return { outcome: "fail", reason: `sink threw: ${message(err)}` };
          }
          // Anything but a failure with a reason passes as it came: the core judges a malformed result itself.
          if (typeof result !== "object" || result === null || result.outcome === "ok") return result;
          return typeof result.reason === "string" ? { ...result, reason: redact(result.reason) } : result;
        },
      };
    },
  };
}
