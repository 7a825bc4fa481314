import * as v from "valibot";
import { describeError, maxRecordsOption } from "./shared";
import { defineSink } from "./types";

/** Pipelines' documented limit: 1 MB of JSON per ingestion request (a `send` call). */
export const PIPELINE_MAX_REQUEST_BYTES = 1_000_000;

/** The slice of the Pipelines binding this sink uses (`[[pipelines]]` in wrangler.toml). */
interface PipelineBinding {
  send(records: object[]): Promise<void>;
}

function isPipeline(b: unknown): b is PipelineBinding {
  return typeof b === "object" && b !== null && typeof (b as { send?: unknown }).send === "function";
}

export const pipelineSink = defineSink({
  type: "pipeline",
  description:
    "Sends records to a Cloudflare Pipelines stream (the `pipelines` binding), which writes them to R2 as Iceberg or Parquet tables.",
  writesLine: true,
  options: v.strictObject({
    /** Name of the Pipelines binding in wrangler.toml. Required. */
    binding: v.pipe(v.string(), v.minLength(1, "must not be empty")),
    /** Most records per `send` call. Default 1000. */
    maxRecords: maxRecordsOption(1000, 10_000),
  }),
  batch: (o) => ({
    maxRecords: o.maxRecords,
    // The array's brackets and commas count towards the request too.
    maxBytes: PIPELINE_MAX_REQUEST_BYTES - o.maxRecords - 2,
    maxRecordBytes: PIPELINE_MAX_REQUEST_BYTES - 2,
  }),
  create(o, ctx) {
    const binding = ctx.env[o.binding];
    return {
      // Each record as its JSON line parsed back: plain data, exactly the fields every other sink sees.
      encode: (batch): object[] => batch.map((item) => JSON.parse(item.line) as object),
      async send(records, signal) {
        if (!isPipeline(binding)) {
          return {
            outcome: "fail",
            reason: `binding "${o.binding}" is not a Pipelines binding ([[pipelines]] in wrangler.toml)`,
          };
        }
        if (signal.aborted) return { outcome: "retry", reason: "timed out before send" };
        try {
          await binding.send(records);
          return { outcome: "ok" };
        } catch (err) {
          return { outcome: "retry", reason: `Pipelines send failed: ${describeError(err)}` };
        }
      },
    };
  },
});
