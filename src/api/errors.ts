/**
 * The API's refusals: a route throws `refuse(status, message)` and the app's
 * one `onError` answers `{ "error": message }` with that status, secrets
 * replaced (see `apiErrorResponse`).
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { answer, secretValues } from "./redact";

/** The statuses the API refuses a request with: the caller's to fix. */
export type RefusalStatus = 400 | 413 | 415;

export function refuse(status: RefusalStatus, message: string): HTTPException {
  return new HTTPException(status, { message });
}

/** The answer to a refusal thrown anywhere below a route, or null for any other error (the last resort's). */
export function apiErrorResponse(err: unknown, c: Context<{ Bindings: Record<string, unknown> }>): Response | null {
  if (!(err instanceof HTTPException)) return null;
  return answer(c, { error: err.message }, err.status as RefusalStatus, secretValues(c.env));
}
