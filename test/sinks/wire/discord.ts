/**
 * Checks a body against Discord's Execute Webhook rules
 * (https://discord.com/developers/docs/resources/webhook#execute-webhook and
 * https://discord.com/developers/docs/resources/message#embed-object-embed-limits):
 * - one of `content`, `embeds` (or files, components, poll) is required;
 * - `content` at most 2000 characters; at most 10 embeds;
 * - embed limits: title 256, description 4096, 25 fields (name 256, value 1024), footer text 2048,
 *   author name 256, and 6000 characters over all embeds of a message;
 * - `allowed_mentions.parse` only `roles`, `users`, `everyone`;
 * - `flags` only SUPPRESS_EMBEDS (1 << 2) and SUPPRESS_NOTIFICATIONS (1 << 12);
 * - `username` 1 to 80 characters.
 * Returns the problems found; empty when the message is valid.
 */

export const DISCORD_CONTENT_MAX = 2000;

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

const len = (x: unknown) => (typeof x === "string" ? x.length : 0);

export function validateDiscord(body: string, headers?: Record<string, string>): string[] {
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
  const { content, embeds } = msg;
  if (content !== undefined && typeof content !== "string") problems.push("content must be a string");
  if (typeof content === "string" && content.length > DISCORD_CONTENT_MAX)
    problems.push(`content has ${content.length} characters; at most ${DISCORD_CONTENT_MAX}`);
  const hasContent = typeof content === "string" && content.trim() !== "";
  const hasEmbeds = Array.isArray(embeds) && embeds.length > 0;
  if (!hasContent && !hasEmbeds) problems.push("one of content or embeds is required");
  if (embeds !== undefined) {
    if (!Array.isArray(embeds)) problems.push("embeds must be a list");
    else {
      if (embeds.length > 10) problems.push(`${embeds.length} embeds; at most 10`);
      let total = 0;
      embeds.forEach((e, i) => {
        if (!isObject(e)) {
          problems.push(`embeds[${i}] must be an object`);
          return;
        }
        const limit = (what: string, value: unknown, max: number) => {
          if (len(value) > max) problems.push(`embeds[${i}].${what} has ${len(value)} characters; at most ${max}`);
          total += len(value);
        };
        limit("title", e.title, 256);
        limit("description", e.description, 4096);
        if (isObject(e.footer)) limit("footer.text", e.footer.text, 2048);
        if (isObject(e.author)) limit("author.name", e.author.name, 256);
        if (e.fields !== undefined) {
          if (!Array.isArray(e.fields)) problems.push(`embeds[${i}].fields must be a list`);
          else {
            if (e.fields.length > 25) problems.push(`embeds[${i}] has ${e.fields.length} fields; at most 25`);
            e.fields.forEach((f, j) => {
              if (!isObject(f) || typeof f.name !== "string" || typeof f.value !== "string")
                problems.push(`embeds[${i}].fields[${j}] needs a name and a value`);
              else {
                limit(`fields[${j}].name`, f.name, 256);
                limit(`fields[${j}].value`, f.value, 1024);
              }
            });
          }
        }
      });
      if (total > 6000) problems.push(`embeds hold ${total} characters; at most 6000 per message`);
    }
  }
  if (msg.allowed_mentions !== undefined) {
    const am = msg.allowed_mentions;
    const parse = isObject(am) ? am.parse : undefined;
    if (!isObject(am)) problems.push("allowed_mentions must be an object");
    else if (
      parse !== undefined &&
      (!Array.isArray(parse) || parse.some((p) => !["roles", "users", "everyone"].includes(p)))
    )
      problems.push("allowed_mentions.parse may only hold roles, users, everyone");
  }
  if (msg.flags !== undefined) {
    const f = msg.flags;
    if (typeof f !== "number" || !Number.isInteger(f) || (f & ~((1 << 2) | (1 << 12))) !== 0)
      problems.push("flags may only set SUPPRESS_EMBEDS (4) and SUPPRESS_NOTIFICATIONS (4096)");
  }
  if (
    msg.username !== undefined &&
    (typeof msg.username !== "string" || msg.username.length < 1 || msg.username.length > 80)
  )
    problems.push("username must be 1 to 80 characters");
  return problems;
}
