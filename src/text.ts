/** Text helpers that src/ and sinks/ share (sinks reach them through sinks/shared.ts). */

const encoder = new TextEncoder();
let scratch = new Uint8Array(64 * 1024);

/** UTF-8 byte length of a JS string (lone surrogates count as U+FFFD, as they are sent). */
export function utf8Length(s: string): number {
  // encodeInto into a reused buffer is several times faster than counting in JS.
  if (s.length * 3 > scratch.length) scratch = new Uint8Array(Math.max(s.length * 3, scratch.length * 2));
  return encoder.encodeInto(s, scratch).written;
}

/** Cuts to `max` UTF-16 units with an ellipsis, never splitting a surrogate pair. */
export function cutText(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = Math.max(0, max - 1);
  const c = s.charCodeAt(end - 1);
  if (c >= 0xd800 && c <= 0xdbff) end--;
  return `${s.slice(0, end)}…`;
}

/**
 * The text with its variable parts masked: numbers and long hex runs (ids,
 * hashes, UUIDs) become `#`, so "order 1234 failed" and "order 98 failed"
 * read the same while other words still tell lines apart.
 */
export function maskVariable(text: string): string {
  return text.replace(/\b[0-9a-f]{8,}(?:-[0-9a-f]{4,})*\b/gi, "#").replace(/\d+/g, "#");
}
