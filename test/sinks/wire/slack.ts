/**
 * Checks a body against Slack's incoming-webhook message rules:
 * - https://api.slack.com/messaging/webhooks: a JSON body with `text` (or blocks, with `text` as the fallback).
 * - https://api.slack.com/methods/chat.postMessage: `text` is truncated above 40,000 characters.
 * - https://api.slack.com/reference/block-kit/blocks: at most 50 blocks; a section's text at most 3,000 characters.
 * - https://api.slack.com/reference/surfaces/formatting#escaping: `&`, `<` and `>` must be escaped
 *   as `&amp;`, `&lt;`, `&gt;` unless they form a control sequence (`<url|label>`, `<@U123>`, `<!here>`, ...).
 * Returns the problems found; empty when the message is valid.
 */

export const SLACK_TEXT_MAX = 40_000;

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** Problems with `&`, `<` and `>` in mrkdwn text. */
function escapingProblems(text: string): string[] {
  const problems: string[] = [];
  const bareAmp = /&(?!amp;|lt;|gt;)/.exec(text);
  if (bareAmp) problems.push(`text has an unescaped & at ${bareAmp.index}`);
  // Remove the control sequences; no < or > may remain.
  const rest = text.replace(/<(?:[@#!][^<>\s]*|(?:https?|mailto):[^<>\s]*)(?:\|[^<>]*)?>/g, "");
  const raw = /[<>]/.exec(rest);
  if (raw) problems.push(`text has an unescaped ${raw[0]} outside a control sequence`);
  return problems;
}

export function validateSlack(body: string, headers?: Record<string, string>, textLimit = SLACK_TEXT_MAX): string[] {
  const problems: string[] = [];
  if (headers && !/^application\/json/.test(headers["content-type"] ?? ""))
    problems.push("content-type must be application/json");
  let msg: unknown;
  try {
    msg = JSON.parse(body);
  } catch {
    return [...problems, "body is not JSON"];
  }
  if (!isObject(msg)) return [...problems, "body must be a JSON object"];
  const { text, blocks } = msg;
  if (blocks === undefined) {
    if (typeof text !== "string" || text.trim() === "") problems.push("text is required (a non-empty string)");
  } else if (text !== undefined && typeof text !== "string") problems.push("text must be a string");
  if (typeof text === "string") {
    if (text.length > textLimit) problems.push(`text has ${text.length} characters; at most ${textLimit}`);
    problems.push(...escapingProblems(text));
  }
  if (blocks !== undefined) {
    if (!Array.isArray(blocks) || blocks.length === 0) problems.push("blocks must be a non-empty list");
    else {
      if (blocks.length > 50) problems.push(`${blocks.length} blocks; at most 50`);
      blocks.forEach((b, i) => {
        if (!isObject(b) || typeof b.type !== "string") problems.push(`blocks[${i}] needs a type`);
        else if (b.type === "section") {
          const t = isObject(b.text) ? b.text.text : undefined;
          if (typeof t === "string" && t.length > 3000)
            problems.push(`blocks[${i}] section text has ${t.length} characters; at most 3000`);
        }
      });
    }
  }
  for (const flag of ["unfurl_links", "unfurl_media", "mrkdwn"])
    if (msg[flag] !== undefined && typeof msg[flag] !== "boolean") problems.push(`${flag} must be a boolean`);
  return problems;
}
