/**
 * The env vars the config is built from, listed once: the reader takes its
 * values through a record keyed by this list (so a var missing here cannot be read) and the
 * isolate's cache key is made of the same list. Secrets and bindings are not
 * in it: they are fixed for a deployment, and a new deployment is a new isolate.
 */

/** Vars holding a table or a list (a JSON string or a TOML value): measured against Cloudflare's size limit. */
export const TABLE_VARS = ["SINKS", "ROUTES", "DELIVERY", "SCRUB", "LIMITS"] as const;

/** Every config var, in the order they are read. */
export const CONFIG_VARS = [...TABLE_VARS, "SELF_NAME"] as const;

export type ConfigVar = (typeof CONFIG_VARS)[number];
