/**
 * Checks a `_bulk` request against the Elasticsearch Bulk API rules
 * (https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-bulk,
 * same for OpenSearch's `_bulk`). Returns the problems found; empty when valid.
 */

/** "The actions are specified in the request body using a newline delimited JSON (NDJSON) structure": these four. */
const ACTIONS = new Set(["index", "create", "update", "delete"]);

/** Metadata an action line may carry (Bulk API: "action_and_meta_data"). */
const ACTION_META = new Set([
  "_index",
  "_id",
  "routing",
  "version",
  "version_type",
  "if_seq_no",
  "if_primary_term",
  "pipeline",
  "require_alias",
  "require_data_stream",
  "dynamic_templates",
  "list_executed_pipelines",
  "retry_on_conflict",
  "_source",
]);

export interface ElasticsearchWireOptions {
  /** The request path has no index (`/_bulk`), so every action must name `_index`. Default true. */
  requireIndex?: boolean;
  /** Every action must carry `_id` (tailfan's rule: retries answer 409 instead of duplicating). Default true. */
  requireId?: boolean;
  /** The target is a data stream: only `create` is allowed and documents need `@timestamp`. Default false. */
  dataStream?: boolean;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

export function validateElasticsearch(
  body: string,
  headers?: Record<string, string>,
  options: ElasticsearchWireOptions = {},
): string[] {
  const { requireIndex = true, requireId = true, dataStream = false } = options;
  const problems: string[] = [];
  if (headers) {
    // "When sending requests to this endpoint the Content-Type header should be set to application/x-ndjson."
    const type = (headers["content-type"] ?? "").split(";")[0]?.trim();
    if (type !== "application/x-ndjson")
      problems.push(`content-type is ${JSON.stringify(type)}, not application/x-ndjson`);
  }
  // A bulk request without actions is refused ("request body is required" / "at least one request").
  if (body === "") return [...problems, "empty body: a bulk request needs at least one action"];
  // "The final line of data must end with a newline character (\n)."
  if (!body.endsWith("\n")) problems.push("body does not end with a newline");
  const lines = (body.endsWith("\n") ? body.slice(0, -1) : body).split("\n");
  const parsed: unknown[] = [];
  lines.forEach((line, i) => {
    // Lines are NDJSON: one complete JSON value per line, so no pretty-printing and no blank lines.
    if (line.trim() === "") {
      problems.push(`line ${i + 1}: empty line`);
      parsed.push(undefined);
      return;
    }
    try {
      parsed.push(JSON.parse(line));
    } catch (err) {
      problems.push(`line ${i + 1}: not JSON (${err instanceof Error ? err.message : String(err)})`);
      parsed.push(undefined);
    }
  });
  const ids = new Set<string>();
  let i = 0;
  while (i < parsed.length) {
    const action = parsed[i];
    const at = `line ${i + 1}`;
    if (!isObject(action)) {
      problems.push(`${at}: action line is not a JSON object`);
      i += 2;
      continue;
    }
    const keys = Object.keys(action);
    const name = keys[0] ?? "";
    if (keys.length !== 1) problems.push(`${at}: action line must have exactly one key, has ${keys.length}`);
    if (!ACTIONS.has(name))
      problems.push(`${at}: unknown action ${JSON.stringify(name)} (index, create, update, delete)`);
    if (dataStream && name !== "create")
      problems.push(`${at}: data streams only take "create", not ${JSON.stringify(name)}`);
    const meta = action[name];
    if (!isObject(meta)) problems.push(`${at}: the ${name} action's metadata is not an object`);
    else {
      for (const k of Object.keys(meta))
        if (!ACTION_META.has(k)) problems.push(`${at}: unknown action metadata ${JSON.stringify(k)}`);
      if (meta._index !== undefined && (typeof meta._index !== "string" || meta._index === ""))
        problems.push(`${at}: _index must be a non-empty string`);
      if (requireIndex && meta._index === undefined) problems.push(`${at}: _index missing (the path names no index)`);
      if (meta._id !== undefined && (typeof meta._id !== "string" || meta._id === ""))
        problems.push(`${at}: _id must be a non-empty string`);
      // "_id ... must be no larger than 512 bytes".
      else if (typeof meta._id === "string" && new TextEncoder().encode(meta._id).byteLength > 512)
        problems.push(`${at}: _id longer than 512 bytes`);
      if (requireId && meta._id === undefined) problems.push(`${at}: _id missing`);
      if (typeof meta._id === "string") {
        if (ids.has(meta._id)) problems.push(`${at}: _id ${JSON.stringify(meta._id)} appears twice in one request`);
        ids.add(meta._id);
      }
    }
    // "delete does not expect a source on the next line"; the others are followed by their document.
    if (name === "delete") {
      i += 1;
      continue;
    }
    if (i + 1 >= parsed.length) {
      problems.push(`${at}: ${name} action without a document line`);
      break;
    }
    const doc = parsed[i + 1];
    if (!isObject(doc)) problems.push(`line ${i + 2}: document is not a JSON object`);
    else if (dataStream && typeof doc["@timestamp"] !== "string" && typeof doc["@timestamp"] !== "number")
      problems.push(`line ${i + 2}: a data stream document needs @timestamp`);
    else if (name === "update" && !("doc" in doc) && !("script" in doc) && !("upsert" in doc))
      problems.push(`line ${i + 2}: an update needs doc, script or upsert`);
    i += 2;
  }
  return problems;
}
