/**
 * The admin API for trying things out before (or instead of) deploying them:
 * POST /config/check validates a candidate config, POST /routes/test shows
 * where records would go and what each sink would receive (sending nothing),
 * POST /replay runs a `wrangler tail --format json` capture through the real
 * pipeline. All of it sits behind the admin-token middleware of `createApp`.
 * A refusal is thrown (`refuse`) and answered by the app's `onError`.
 */
import type { Context } from "hono";
import type { Hono } from "hono/tiny";
import { buildConfig, loadConfig, summarizeConfig } from "../config";
import { handleTail } from "../tail";
import { isNdjson, limitBody, parseJsonBody, readBody } from "./body";
import { readCandidate } from "./candidate";
import { parseTraceArray, parseTraceBody, readEnvelope } from "./capture";
import { routeTest } from "./preview";
import { answer, secretValues } from "./redact";

type Env = { Bindings: Record<string, unknown> };
type Ctx = Context<Env>;

async function configCheck(c: Ctx): Promise<Response> {
  const candidate = readCandidate(parseJsonBody(await readBody(c)), "the body");
  const secrets = secretValues(c.env, candidate);
  // Built fresh, not through loadConfig: nothing is cached and the deployed config is untouched.
  const result = buildConfig({ ...c.env, ...candidate });
  if (!result.ok) return answer(c, { valid: false, errors: result.errors }, 422, secrets);
  return answer(c, { valid: true, ...summarizeConfig(result.config) }, 200, secrets);
}

async function routesTest(c: Ctx): Promise<Response> {
  const env = c.env;
  const text = await readBody(c);
  const ndjson = isNdjson(c);
  const envelope = readEnvelope(text, ndjson);
  const candidate = envelope && envelope.config !== undefined ? readCandidate(envelope.config, '"config"') : undefined;
  const parsed = envelope ? parseTraceArray(envelope.events) : parseTraceBody(text, ndjson);
  const secrets = secretValues(env, candidate);
  const config = candidate ? "candidate" : "deployed";
  const result = candidate ? buildConfig({ ...env, ...candidate }) : loadConfig(env);
  if (!result.ok) return answer(c, { ok: false, config, errors: result.errors }, candidate ? 422 : 503, secrets);
  const test = await routeTest(parsed.items, result.config, env);
  const body = { ok: true, config, accepted: parsed.items.length, rejected: parsed.rejected, ...test };
  return answer(c, body, 200, secrets);
}

async function replay(c: Ctx): Promise<Response> {
  const env = c.env;
  const secrets = secretValues(env);
  const { items, rejected } = parseTraceBody(await readBody(c), isNdjson(c));
  const loaded = loadConfig(env);
  if (!loaded.ok) return answer(c, { ok: false, errors: loaded.errors }, 503, secrets);
  let ctx: Pick<ExecutionContext, "waitUntil">;
  try {
    ctx = c.executionCtx;
  } catch {
    // Outside the runtime's fetch handler (tests, app.request without a context): the reports are awaited anyway.
    ctx = { waitUntil: () => {} };
  }
  const reports = items.length === 0 ? [] : await handleTail(items, env, ctx, { bufferMs: 0 });
  const mode = loaded.config.delivery.mode;
  const body = {
    accepted: items.length,
    rejected,
    mode,
    ...(mode === "buffered"
      ? { note: "buffered delivery: records went to the work queue; queue() delivers and counts them" }
      : {}),
    sinks: reports.map((r) => ({
      sink: r.sink,
      records: r.records,
      delivered: r.delivered,
      // Settled: records queued for a retry are pending and dead-lettered ones kept, as /status counts them.
      pending: r.pending ?? 0,
      deadLettered: r.deadLettered ?? 0,
      failed: r.failed,
      oversized: r.oversized,
      errors: r.errors.slice(0, 5),
    })),
  };
  return answer(c, body, 200, secrets);
}

/** Adds POST /config/check, /routes/test and /replay; call it after the admin-token middleware. */
export function registerApi(app: Hono<Env>): void {
  app.post("/config/check", limitBody, configCheck);
  app.post("/routes/test", limitBody, routesTest);
  app.post("/replay", limitBody, replay);
}
