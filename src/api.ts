/**
 * The admin API for trying things out before (or instead of) deploying them:
 * POST /config/check validates a candidate config, POST /routes/test shows
 * where records would go and what each sink would receive (sending nothing),
 * POST /replay runs a `wrangler tail --format json` capture through the real
 * pipeline. All of it sits behind the admin-token middleware of `createApp`.
 */
import type { Context } from "hono";
import type { Hono } from "hono/tiny";
import { SINK_TYPES } from "../sinks/index";
import { buildConfig, loadConfig, type ResolvedConfig, summarizeConfig } from "./config";
import { splitBatches } from "./delivery/batch";
import { depthOf, MAX_CONFIG_DEPTH } from "./env";
import { utf8Length } from "./json";
import { normalizeTraceItems } from "./normalize";
import { dropOwnEvents, planDelivery, prepareRecords } from "./pipeline";
import type { LogRecord } from "./record";
import { routeRecord } from "./router";
import { handleTail } from "./tail";

type Bindings = Record<string, unknown>;
type Env = { Bindings: Bindings };
type Ctx = Context<Env>;

/** Largest request body the API reads: 1 MiB. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Most TraceItems one request may carry. */
export const MAX_ITEMS = 1000;
/** Characters of a record's message shown by /routes/test. */
const MESSAGE_CHARS = 200;
/** Characters of an encoded body shown in a preview. */
const PREVIEW_CHARS = 2048;

/** The config vars a candidate may set; anything else (bindings, secrets) always comes from the deployment. */
export const CANDIDATE_KEYS = ["SINKS", "ROUTES", "DELIVERY", "SCRUB", "LIMITS", "SELF_NAME"] as const;

class HttpError extends Error {
  constructor(
    readonly status: 400 | 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

/** A TraceItem the request could not use: where it was and why. */
export interface Rejected {
  /** 1-based line the item starts on; null for items of a JSON array. */
  line: number | null;
  /** 1-based position among the request's items. */
  item: number;
  reason: string;
}

interface Parsed {
  items: unknown[];
  rejected: Rejected[];
}

/** Reads the body as text, refusing (413) anything over MAX_BODY_BYTES without buffering more than that. */
async function readBody(c: Ctx): Promise<string> {
  const declared = Number(c.req.header("content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) throw tooLarge(declared);
  const body = c.req.raw.body;
  if (body === null) return "";
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      throw tooLarge(MAX_BODY_BYTES, true);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(all);
  } catch {
    throw new HttpError(400, "the body is not valid UTF-8 text");
  }
}

function tooLarge(bytes: number, atLeast = false): HttpError {
  return new HttpError(
    413,
    `the body is ${atLeast ? "more than " : ""}${bytes} bytes; the limit is ${MAX_BODY_BYTES} bytes (1 MiB): split the capture into smaller requests`,
  );
}

function typeName(x: unknown): string {
  if (x === null) return "null";
  if (Array.isArray(x)) return "an array";
  return typeof x === "object" ? "an object" : `a ${typeof x}`;
}

/** Why a parsed value cannot be a TraceItem (as the runtime hands it or `wrangler tail` prints it), or null. */
export function traceItemProblem(x: unknown): string | null {
  if (x === null || typeof x !== "object" || Array.isArray(x)) {
    return `expected a JSON object (a TraceItem), got ${typeName(x)}`;
  }
  const item = x as Record<string, unknown>;
  if (typeof item.outcome !== "string") {
    return `"outcome" ${item.outcome === undefined ? "is missing" : "must be a string"}: not a TraceItem as printed by wrangler tail --format json`;
  }
  for (const key of ["logs", "exceptions", "diagnosticsChannelEvents"]) {
    if (item[key] !== undefined && item[key] !== null && !Array.isArray(item[key])) {
      return `"${key}" must be an array, got ${typeName(item[key])}`;
    }
  }
  const ts = item.eventTimestamp;
  if (ts !== undefined && ts !== null && typeof ts !== "number") {
    return `"eventTimestamp" must be a number (epoch ms) or null, got ${typeName(ts)}`;
  }
  return null;
}

function jsonError(err: unknown): string {
  return `not valid JSON (${err instanceof Error ? err.message : String(err)})`;
}

/**
 * Splits text into top-level JSON values with the line each starts on: NDJSON
 * (one per line) and `wrangler tail --format json` output (pretty-printed
 * objects, one after another) alike. A line that starts with `{` in column 0
 * while a value is still open begins a new one, so a truncated object costs
 * only itself.
 */
export function splitJsonValues(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  const lines = text.split(/\r?\n/);
  let current: { line: number; parts: string[]; depth: number; started: boolean } | null = null;
  const close = () => {
    if (current) out.push({ line: current.line, text: current.parts.join("\n") });
    current = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (current !== null && line.startsWith("{")) close();
    if (current === null) {
      if (line.trim() === "") continue;
      current = { line: i + 1, parts: [], depth: 0, started: false };
    }
    const cur = current as { line: number; parts: string[]; depth: number; started: boolean };
    cur.parts.push(line);
    let inString = false;
    let escaped = false;
    for (const ch of line) {
      if (inString) {
        if (escaped) escaped = false;
        else if (ch === "\\") escaped = true;
        else if (ch === '"') inString = false;
        continue;
      }
      if (ch === '"') inString = true;
      else if (ch === "{" || ch === "[") cur.depth++;
      else if (ch === "}" || ch === "]") cur.depth--;
      if (ch.trim() !== "") cur.started = true;
    }
    // A JSON string never spans lines, so the depth is back to 0 at the end of a complete value.
    if (cur.started && cur.depth <= 0) close();
  }
  close();
  return out;
}

/** Parses newline-delimited or concatenated TraceItems; every bad one is rejected with its line. */
export function parseTraceText(text: string): Parsed {
  const items: unknown[] = [];
  const rejected: Rejected[] = [];
  const values = splitJsonValues(text);
  if (values.length > MAX_ITEMS) throw tooManyItems(values.length);
  values.forEach((value, i) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value.text);
    } catch (err) {
      const open =
        value.text.split("\n").length > 1
          ? ` (the value starting here spans ${value.text.split("\n").length} lines)`
          : "";
      rejected.push({ line: value.line, item: i + 1, reason: `${jsonError(err)}${open}` });
      return;
    }
    const problem = traceItemProblem(parsed);
    if (problem) rejected.push({ line: value.line, item: i + 1, reason: problem });
    else items.push(parsed);
  });
  return { items, rejected };
}

function parseTraceArray(list: unknown[]): Parsed {
  if (list.length > MAX_ITEMS) throw tooManyItems(list.length);
  const items: unknown[] = [];
  const rejected: Rejected[] = [];
  list.forEach((x, i) => {
    const problem = traceItemProblem(x);
    if (problem) rejected.push({ line: null, item: i + 1, reason: problem });
    else items.push(x);
  });
  return { items, rejected };
}

function tooManyItems(n: number): HttpError {
  return new HttpError(
    413,
    `the body holds ${n} items; the limit is ${MAX_ITEMS} TraceItems per request: split the capture into smaller requests`,
  );
}

/** A JSON array of TraceItems, or newline-delimited / concatenated TraceItems. */
function parseTraceBody(text: string, ndjson: boolean): Parsed {
  if (!ndjson && text.trimStart().startsWith("[")) {
    let list: unknown;
    try {
      list = JSON.parse(text);
    } catch (err) {
      throw new HttpError(
        400,
        `the body starts with "[" but is ${jsonError(err)}; send a JSON array of TraceItems or one TraceItem per line`,
      );
    }
    if (!Array.isArray(list)) throw new HttpError(400, "expected a JSON array of TraceItems");
    return parseTraceArray(list);
  }
  const parsed = parseTraceText(text);
  if (parsed.items.length === 0 && parsed.rejected.length === 0) {
    throw new HttpError(400, "the body holds no TraceItems; send a JSON array of TraceItems or one TraceItem per line");
  }
  return parsed;
}

function isNdjson(c: Ctx): boolean {
  return /^application\/(x-)?ndjson\b/i.test(c.req.header("content-type") ?? "");
}

/** Reads a candidate config object; unknown keys are refused so a candidate cannot stand in for bindings or secrets. */
function readCandidate(raw: unknown, where: string): Record<string, unknown> {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new HttpError(
      400,
      `${where} must be a JSON object like { "SINKS": [...], "ROUTES": [...] }, got ${typeName(raw)}`,
    );
  }
  // Refused before any walk: a value nested thousands deep would overflow the stack of whatever recursed over it.
  if (depthOf(raw, MAX_CONFIG_DEPTH + 1) > MAX_CONFIG_DEPTH + 1) {
    throw new HttpError(400, `${where} is nested more than ${MAX_CONFIG_DEPTH} levels deep; no config needs that`);
  }
  const candidate = raw as Record<string, unknown>;
  const unknown = Object.keys(candidate).filter((k) => !(CANDIDATE_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new HttpError(
      400,
      `${where} has unknown key(s) ${unknown.map((k) => JSON.stringify(k)).join(", ")}; allowed: ${CANDIDATE_KEYS.join(", ")} (bindings and secrets always come from the deployment)`,
    );
  }
  if (candidate.SINKS === undefined) {
    throw new HttpError(400, `${where} needs SINKS: an array of sinks, or the same as a JSON string`);
  }
  return candidate;
}

function parseJsonBody(text: string): unknown {
  if (text.trim() === "") throw new HttpError(400, "the body is empty; send a JSON object");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `the body is ${jsonError(err)}`);
  }
}

/**
 * Names of every secret the config could resolve (`${NAME}` references in
 * the config vars, the sink types' default secrets, ADMIN_TOKEN), with their
 * values: answers are searched for them as a last line of defence.
 */
function secretValues(env: Bindings, candidate?: Record<string, unknown>): [string, string][] {
  const names = new Set<string>(["ADMIN_TOKEN"]);
  for (const def of Object.values(SINK_TYPES)) for (const s of Object.values(def.defaultSecrets ?? {})) names.add(s);
  for (const source of [env, candidate ?? {}]) {
    for (const key of CANDIDATE_KEYS) {
      const raw = source[key];
      const text = typeof raw === "string" ? raw : (JSON.stringify(raw) ?? "");
      for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) names.add(m[1] as string);
    }
  }
  const out: [string, string][] = [];
  for (const name of names) {
    const value = env[name];
    if (typeof value === "string" && value.length >= 4) out.push([name, value]);
  }
  // Longest first, so a secret that contains another is replaced whole.
  return out.sort((a, b) => b[1].length - a[1].length);
}

/** Answers JSON with every secret value replaced by `${NAME}`. */
function answer(c: Ctx, body: unknown, status: 200 | 400 | 413 | 422 | 503, secrets: [string, string][]): Response {
  let text = JSON.stringify(body);
  for (const [name, value] of secrets) {
    const escaped = JSON.stringify(value).slice(1, -1);
    text = text.split(escaped).join(`\${${name}}`);
  }
  return c.newResponse(text, status, { "content-type": "application/json; charset=UTF-8" });
}

function failure(c: Ctx, err: unknown, secrets: [string, string][]): Response {
  if (err instanceof HttpError) return answer(c, { error: err.message }, err.status as 400 | 413, secrets);
  throw err;
}

/** Makes a payload safe and small to show: long strings cut, long lists shortened, binary as its size. */
function summarize(value: unknown, depth = 0): unknown {
  if (typeof value === "string") {
    return value.length > 200 ? `${value.slice(0, 200)}… (${value.length} chars)` : value;
  }
  if (value === null || typeof value !== "object") return value;
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return `(${value.byteLength} bytes of binary)`;
  if (depth >= 6) return "(…)";
  if (Array.isArray(value)) {
    const shown = value.slice(0, 3).map((x) => summarize(x, depth + 1));
    if (value.length > 3) shown.push(`(… ${value.length - 3} more)`);
    return shown;
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(value)) out[k] = summarize(x, depth + 1);
  return out;
}

/** The first 2 KB of a body string, with its full size. */
function bodyPreview(body: string) {
  return {
    body: body.length > PREVIEW_CHARS ? body.slice(0, PREVIEW_CHARS) : body,
    bodyBytes: utf8Length(body),
    truncated: body.length > PREVIEW_CHARS,
  };
}

/** What a sink would receive for the first batch of the records routed to it. Encodes only; sends nothing. */
function previewOf(payload: unknown) {
  if (typeof payload === "string") return bodyPreview(payload);
  if (payload !== null && typeof payload === "object" && !Array.isArray(payload)) {
    const { body, ...rest } = payload as Record<string, unknown>;
    if (typeof body === "string") return { ...bodyPreview(body), payload: summarize(rest) };
  }
  return { payload: summarize(payload) };
}

/** Route detail per record and an encoded preview per sink: the same steps as tail(), up to the send. */
async function routeTest(items: readonly unknown[], config: ResolvedConfig, env: Bindings) {
  const own = dropOwnEvents(items, config.selfName);
  const { records, views } = await prepareRecords(normalizeTraceItems(own.events), config);
  const routes = config.routes;
  const detail = records.map((r: LogRecord) => {
    const sinks = routeRecord(r, config.table);
    return {
      id: r.id,
      type: r.type,
      level: r.level,
      message: r.message.length > MESSAGE_CHARS ? r.message.slice(0, MESSAGE_CHARS) : r.message,
      sinks,
      matchedRoutes:
        routes === null ? ("inline filter" as const) : routes.flatMap((route, i) => (route.matches(r) ? [i] : [])),
      dropped: sinks.length === 0,
    };
  });
  const targets = planDelivery(records, config, env, undefined, views);
  const sinks = config.sinks.map((s) => {
    const target = targets.find((t) => t.name === s.name);
    if (!target) return { sink: s.name, type: s.type, records: 0, batches: 0, oversized: 0, preview: null };
    const { batches, oversized } = splitBatches(target.items, target.batch);
    const first = batches[0];
    let preview: unknown = null;
    if (first) {
      try {
        preview = { records: first.length, ...previewOf(target.sink.encode(first)) };
      } catch (err) {
        preview = {
          records: first.length,
          error: `encode failed: ${err instanceof Error ? err.message : String(err)}`,
        };
      }
    }
    return {
      sink: s.name,
      type: s.type,
      records: target.items.length,
      batches: batches.length,
      oversized: oversized.length,
      preview,
    };
  });
  return { droppedLoop: own.dropped, records: detail, sinks };
}

/** Adds POST /config/check, /routes/test and /replay; call it after the admin-token middleware. */
export function registerApi(app: Hono<Env>): void {
  app.post("/config/check", async (c) => {
    const env = c.env;
    let secrets = secretValues(env);
    try {
      const raw = parseJsonBody(await readBody(c));
      const candidate = readCandidate(raw, "the body");
      secrets = secretValues(env, candidate);
      // Built fresh, not through loadConfig: nothing is cached and the deployed config is untouched.
      const result = buildConfig({ ...env, ...candidate });
      if (!result.ok) return answer(c, { valid: false, errors: result.errors }, 422, secrets);
      return answer(c, { valid: true, ...summarizeConfig(result.config) }, 200, secrets);
    } catch (err) {
      return failure(c, err, secrets);
    }
  });

  app.post("/routes/test", async (c) => {
    const env = c.env;
    let secrets = secretValues(env);
    try {
      const text = await readBody(c);
      const ndjson = isNdjson(c);
      let parsed: Parsed | undefined;
      let candidate: Record<string, unknown> | undefined;
      if (!ndjson && text.trimStart().startsWith("{")) {
        let whole: unknown;
        try {
          whole = JSON.parse(text);
        } catch {
          whole = undefined;
        }
        if (whole !== null && typeof whole === "object" && "events" in whole) {
          const envelope = whole as { events: unknown; config?: unknown };
          const unknown = Object.keys(envelope).filter((k) => k !== "events" && k !== "config");
          if (unknown.length > 0) {
            throw new HttpError(
              400,
              `unknown key(s) ${unknown.join(", ")}; send { "events": [...], "config"?: {...} }`,
            );
          }
          if (!Array.isArray(envelope.events)) throw new HttpError(400, '"events" must be an array of TraceItems');
          if (envelope.config !== undefined) candidate = readCandidate(envelope.config, '"config"');
          parsed = parseTraceArray(envelope.events);
        }
      }
      parsed ??= parseTraceBody(text, ndjson);
      if (candidate) secrets = secretValues(env, candidate);
      const result = candidate ? buildConfig({ ...env, ...candidate }) : loadConfig(env);
      if (!result.ok) {
        return answer(
          c,
          { ok: false, config: candidate ? "candidate" : "deployed", errors: result.errors },
          candidate ? 422 : 503,
          secrets,
        );
      }
      const test = await routeTest(parsed.items, result.config, env);
      return answer(
        c,
        {
          ok: true,
          config: candidate ? "candidate" : "deployed",
          accepted: parsed.items.length,
          rejected: parsed.rejected,
          ...test,
        },
        200,
        secrets,
      );
    } catch (err) {
      return failure(c, err, secrets);
    }
  });

  app.post("/replay", async (c) => {
    const env = c.env;
    const secrets = secretValues(env);
    try {
      const text = await readBody(c);
      const { items, rejected } = parseTraceBody(text, isNdjson(c));
      const loaded = loadConfig(env);
      if (!loaded.ok) return answer(c, { ok: false, errors: loaded.errors }, 503, secrets);
      let ctx: Pick<ExecutionContext, "waitUntil">;
      try {
        ctx = c.executionCtx;
      } catch {
        // Outside the runtime's fetch handler (tests, app.request without a context): the reports are awaited anyway.
        ctx = { waitUntil: () => {} };
      }
      const reports = items.length === 0 ? [] : await handleTail(items, env, ctx);
      return answer(
        c,
        {
          accepted: items.length,
          rejected,
          mode: loaded.config.delivery.mode,
          ...(loaded.config.delivery.mode === "buffered"
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
        },
        200,
        secrets,
      );
    } catch (err) {
      return failure(c, err, secrets);
    }
  });
}
