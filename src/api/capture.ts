/**
 * Reading a capture: TraceItems as a JSON array, NDJSON, or the
 * pretty-printed objects `wrangler tail --format json` writes one after
 * another; every item that is not a TraceItem is rejected with its place.
 */
import { typeName } from "../issues";
import { refuse } from "./errors";

/** Most TraceItems one request may carry. */
export const MAX_ITEMS = 1000;

/** A TraceItem the request could not use: where it was and why. */
export interface Rejected {
  /** 1-based line the item starts on; null for items of a JSON array. */
  line: number | null;
  /** 1-based position among the request's items. */
  item: number;
  reason: string;
}

export interface Parsed {
  items: unknown[];
  rejected: Rejected[];
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

export function jsonError(err: unknown): string {
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

export function parseTraceArray(list: unknown[]): Parsed {
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

function tooManyItems(n: number): Error {
  return refuse(
    413,
    `the body holds ${n} items; the limit is ${MAX_ITEMS} TraceItems per request: split the capture into smaller requests`,
  );
}

/** A JSON array of TraceItems, or newline-delimited / concatenated TraceItems. */
export function parseTraceBody(text: string, ndjson: boolean): Parsed {
  if (!ndjson && text.trimStart().startsWith("[")) {
    let list: unknown;
    try {
      list = JSON.parse(text);
    } catch (err) {
      throw refuse(
        400,
        `the body starts with "[" but is ${jsonError(err)}; send a JSON array of TraceItems or one TraceItem per line`,
      );
    }
    if (!Array.isArray(list)) throw refuse(400, "expected a JSON array of TraceItems");
    return parseTraceArray(list);
  }
  const parsed = parseTraceText(text);
  if (parsed.items.length === 0 && parsed.rejected.length === 0) {
    throw refuse(400, "the body holds no TraceItems; send a JSON array of TraceItems or one TraceItem per line");
  }
  return parsed;
}

/**
 * The /routes/test body: `{ "events": [...], "config"?: {...} }`, or null
 * when the body is not that envelope (then it is a capture).
 */
export function readEnvelope(text: string, ndjson: boolean): { events: unknown[]; config: unknown } | null {
  if (ndjson || !text.trimStart().startsWith("{")) return null;
  let whole: unknown;
  try {
    whole = JSON.parse(text);
  } catch {
    return null;
  }
  if (whole === null || typeof whole !== "object" || !("events" in whole)) return null;
  const envelope = whole as { events: unknown; config?: unknown };
  const unknown = Object.keys(envelope).filter((k) => k !== "events" && k !== "config");
  if (unknown.length > 0) {
    throw refuse(400, `unknown key(s) ${unknown.join(", ")}; send { "events": [...], "config"?: {...} }`);
  }
  if (!Array.isArray(envelope.events)) throw refuse(400, '"events" must be an array of TraceItems');
  return { events: envelope.events, config: envelope.config };
}
