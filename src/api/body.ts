/** Reading a request body: size-limited by Hono's `bodyLimit`, then strict UTF-8 text. */
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { jsonError } from "./capture";
import { refuse } from "./errors";

type Ctx = Context<{ Bindings: Record<string, unknown> }>;

/** Largest request body the API reads: 1 MiB. */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * Refuses (413) a body over MAX_BODY_BYTES without buffering more than that:
 * by its declared length when it has one, else once the stream passes it.
 */
export const limitBody = bodyLimit({
  maxSize: MAX_BODY_BYTES,
  onError: (c) => {
    const declared = c.req.raw.headers.has("transfer-encoding") ? Number.NaN : Number(c.req.header("content-length"));
    const size = Number.isFinite(declared) ? `${declared}` : `more than ${MAX_BODY_BYTES}`;
    throw refuse(
      413,
      `the body is ${size} bytes; the limit is ${MAX_BODY_BYTES} bytes (1 MiB): split the capture into smaller requests`,
    );
  },
});

/** The body as text (behind `limitBody`); 400 when it is not valid UTF-8. */
export async function readBody(c: Ctx): Promise<string> {
  const bytes = await c.req.arrayBuffer();
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw refuse(400, "the body is not valid UTF-8 text");
  }
}

export function parseJsonBody(text: string): unknown {
  if (text.trim() === "") throw refuse(400, "the body is empty; send a JSON object");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw refuse(400, `the body is ${jsonError(err)}`);
  }
}

export function isNdjson(c: Ctx): boolean {
  return /^application\/(x-)?ndjson\b/i.test(c.req.header("content-type") ?? "");
}
