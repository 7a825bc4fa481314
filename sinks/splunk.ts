import * as v from "valibot";
import { utf8Length } from "../src/text";
import { type Entry, type MultiPayload, packBodies, sendBodies } from "./multi";
import { batchOptions, credentialOption, endpointOption, gzipOption, postPayload } from "./shared";
import { defineSink, type SerializedRecord } from "./types";

/** Splunk's classic HEC `max_content_length` (inputs.conf); newer Splunk Enterprise allows far more. */
export const SPLUNK_DEFAULT_MAX_REQUEST_BYTES = 1_000_000;
/** Room kept per event for the envelope around the record (time, host, source, fields, ...). */
const SPLUNK_EVENT_ROOM = 4096;

const metaString = v.pipe(
  v.string(),
  v.minLength(1, "must not be empty"),
  v.maxLength(1024, "is at most 1024 characters"),
);

/**
 * The HEC event URL: `<endpoint>/services/collector/event`, unless the
 * endpoint already names `/services/collector[/event[/1.0]]`. Query kept.
 */
export function hecEventUrl(endpoint: string): string {
  const u = new URL(endpoint);
  if (!/\/services\/collector(\/event(\/1\.0)?)?\/?$/.test(u.pathname))
    u.pathname = `${u.pathname.replace(/\/+$/, "")}/services/collector/event`;
  return u.toString();
}

/** Epoch milliseconds as HEC's `time`: epoch seconds with millisecond decimals. */
export function hecTime(ms: number): number {
  return Math.round(ms) / 1000;
}

export const splunkSink = defineSink({
  type: "splunk",
  description: "Sends records to a Splunk HTTP Event Collector (/services/collector/event) as JSON events.",
  writesLine: true,
  options: v.strictObject({
    /**
     * HEC base URL, such as `https://hec.example.com:8088` or `https://http-inputs-<stack>.splunkcloud.com`;
     * `/services/collector/event` is appended unless the URL already ends with `/services/collector...`. Required.
     */
    endpoint: endpointOption.required,
    /** HEC token, sent as `Authorization: Splunk <token>`. Default: the secret `SPLUNK_HEC_TOKEN`. */
    token: credentialOption,
    /** Index of every event; must be allowed for the token. Default: the token's default index. */
    index: v.optional(metaString),
    /** `source` of every event. Default: the record's script name, else `tailfan`. */
    source: v.optional(metaString),
    /** `sourcetype` of every event. Default `cloudflare:workers`. */
    sourcetype: v.optional(metaString, "cloudflare:workers"),
    /** `host` of every event. Default: not set (Splunk uses the HEC input's default). */
    host: v.optional(metaString),
    gzip: gzipOption(true),
    ...batchOptions({ maxRecords: 1000, maxBytes: 800_000 }),
    /**
     * Largest request body the HEC takes (its `max_content_length`), before gzip; a batch over it is sent as
     * several requests. Default 1000000.
     */
    maxRequestBytes: v.optional(
      v.pipe(v.number(), v.integer(), v.minValue(16 * 1024), v.maxValue(800 * 1024 * 1024)),
      SPLUNK_DEFAULT_MAX_REQUEST_BYTES,
    ),
  }),
  batch: (o) => ({
    maxRecords: o.maxRecords,
    maxBytes: o.maxBytes,
    maxRecordBytes: o.maxRequestBytes - SPLUNK_EVENT_ROOM,
  }),
  defaultSecrets: { token: "SPLUNK_HEC_TOKEN" },
  create(o) {
    const url = hecEventUrl(o.endpoint);
    const host = o.host === undefined ? "" : `,"host":${JSON.stringify(o.host)}`;
    const sourcetype = `,"sourcetype":${JSON.stringify(o.sourcetype)}`;
    const index = o.index === undefined ? "" : `,"index":${JSON.stringify(o.index)}`;

    function entry(item: SerializedRecord): Entry {
      const r = item.record;
      // Indexed fields: string values only (HEC rejects nested objects in `fields`).
      const fields: Record<string, string> = { level: r.level, outcome: r.outcome, event_type: r.eventType };
      if (r.scriptName) fields.script = r.scriptName;
      let head = "{";
      if (Number.isFinite(r.timestamp)) head += `"time":${hecTime(r.timestamp)},`;
      head +=
        `"source":${JSON.stringify(o.source ?? r.scriptName ?? "tailfan")}${sourcetype}${host}${index}` +
        `,"fields":${JSON.stringify(fields)},"event":`;
      return { text: `${head}${item.line}}`, bytes: utf8Length(head) + item.bytes + 1 };
    }

    return {
      encode(batch): MultiPayload {
        // Concatenated JSON objects, one per line (HEC accepts whitespace between events).
        const bodies = packBodies(
          batch.map(entry),
          { maxEntries: Number.POSITIVE_INFINITY, maxBytes: o.maxRequestBytes },
          { open: "", sep: "\n", close: "\n" },
        );
        return { bodies, records: batch.length };
      },
      send(payload, signal) {
        const headers = { authorization: `Splunk ${o.token}` };
        return sendBodies(payload, (body) =>
          postPayload({ url, body, contentType: "application/json", headers, gzip: o.gzip }, signal),
        );
      },
    };
  },
});
