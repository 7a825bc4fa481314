/**
 * A config that does not load is a fault like a backend that is down: the
 * TraceItems of that time are kept, raw, in the dead-letter bucket under
 * `unconfigured/`, so the operator can replay them through POST /replay once
 * the config is fixed. Only the bindings are read from the raw DELIVERY; the
 * rest of it may be what is broken. SCRUB may be broken too, so the default
 * detectors mask what they find before anything is written: a secret a
 * producer logged never reaches the bucket in the clear.
 */
import { datedKey, putNdjson } from "../../sinks/r2";
import { toJson } from "../json";
import { maskJson, reasonScrubber, type Scrubber } from "../scrub";
import { flushStats, StatsBatch } from "../stats";

let defaultMask: Scrubber | undefined;

/** Where kept TraceItems land in the dead-letter bucket: `unconfigured/<yyyy>/<mm>/<dd>/<time>_<n>.ndjson.gz`. */
export const UNCONFIGURED_PREFIX = "unconfigured";

/** The binding names DELIVERY gives, read without validating anything else; null when unreadable. */
function rawBindings(env: Record<string, unknown>): { deadLetter: unknown; stats: unknown } | null {
  let raw = env.DELIVERY;
  if (typeof raw === "string") {
    try {
      raw = JSON.parse(raw);
    } catch {
      return null;
    }
  }
  if (raw === null || typeof raw !== "object") return null;
  const d = raw as Record<string, unknown>;
  return { deadLetter: d.deadLetter, stats: d.stats };
}

function isBucket(value: unknown): value is R2Bucket {
  const b = value as Partial<R2Bucket> | null;
  return typeof b?.put === "function" && typeof b.createMultipartUpload === "function";
}

function isNamespace(value: unknown): value is DurableObjectNamespace {
  const n = value as Partial<DurableObjectNamespace> | null;
  return typeof n?.idFromName === "function" && typeof n.get === "function";
}

/**
 * Keeps the TraceItems of an invocation whose config did not load; never
 * throws. Returns the sentence the caller logs: where they went, or why they
 * could not be kept.
 */
export async function keepUnconfigured(
  events: readonly unknown[],
  env: Record<string, unknown>,
  now = Date.now(),
): Promise<string> {
  const n = events.length;
  if (n === 0) return "no TraceItems to keep";
  const bindings = rawBindings(env);
  const name = bindings?.deadLetter;
  if (typeof name !== "string" || !isBucket(env[name])) {
    return `${n} TraceItem(s) dropped: bind DELIVERY.deadLetter to an R2 bucket to keep them while the config is broken`;
  }
  const bucket = env[name];
  let body = "";
  defaultMask ??= reasonScrubber(null);
  for (const event of events) body += `${JSON.stringify(maskJson(toJson(event), defaultMask))}\n`;
  const key = datedKey(UNCONFIGURED_PREFIX, now, `${now}_${crypto.randomUUID()}.ndjson.gz`, false);
  try {
    await putNdjson(bucket, key, body, { count: String(n), reason: "the configuration did not load" });
  } catch (err) {
    return `${n} TraceItem(s) dropped: the dead-letter bucket ${name} refused them (${String(err)})`;
  }
  const stats = bindings?.stats;
  if (typeof stats === "string" && isNamespace(env[stats])) {
    // Counted under "*" like the loop guard, as received and dead-lettered so that row adds up too:
    // these TraceItems never reached a sink.
    const batch = new StatsBatch();
    batch.add("*", "received", n);
    batch.add("*", "deadLettered", n);
    await flushStats(env, stats, batch);
  }
  return `${n} TraceItem(s) kept in ${name} at ${key}; replay them with POST /replay once the config is fixed`;
}
