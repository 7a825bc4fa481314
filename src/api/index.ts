/**
 * The admin API: routes.ts registers the routes, body.ts limits and reads
 * bodies, capture.ts parses captures, candidate.ts reads candidate configs,
 * preview.ts builds /routes/test's answer, redact.ts and errors.ts answer.
 */
export { MAX_BODY_BYTES } from "./body";
export { CANDIDATE_KEYS } from "./candidate";
export { MAX_ITEMS, parseTraceText, type Rejected, splitJsonValues, traceItemProblem } from "./capture";
export { apiErrorResponse } from "./errors";
export { registerApi } from "./routes";
