/**
 * Checks that a binding the config names exists and is of the kind it is used
 * as, with the wrangler.toml line that declares it when it is not.
 */
import type { BindingKind } from "../../sinks/index";

const BINDING_SHAPE: Record<BindingKind, { methods: string[]; toml: (name: string) => string }> = {
  kv: { methods: ["get", "put", "list"], toml: (n) => `[[kv_namespaces]] binding = "${n}"` },
  r2: { methods: ["get", "put", "head"], toml: (n) => `[[r2_buckets]] binding = "${n}"` },
  queue: { methods: ["send", "sendBatch"], toml: (n) => `[[queues.producers]] binding = "${n}"` },
  d1: { methods: ["prepare", "batch", "exec"], toml: (n) => `[[d1_databases]] binding = "${n}"` },
  analytics_engine: {
    methods: ["writeDataPoint"],
    toml: (n) => `[[analytics_engine_datasets]] binding = "${n}"`,
  },
  // The alert rules' object (the counters object is checked by checkDurableObject).
  durable_object: {
    methods: ["idFromName", "get"],
    toml: (n) => `[[durable_objects.bindings]] name = "${n}", class_name = "TailfanAlerts"`,
  },
};

/** What is wrong with the binding `name` used as `kind`; null when nothing is. */
export function checkBinding(env: Record<string, unknown>, name: string, kind: BindingKind): string | null {
  const shape = BINDING_SHAPE[kind];
  const binding = env[name];
  if (binding === undefined || binding === null) {
    return `no binding named "${name}"; add ${shape.toml(name)} to wrangler.toml`;
  }
  const b = binding as Record<string, unknown>;
  if (!shape.methods.every((m) => typeof b[m] === "function")) {
    return `binding "${name}" is not a ${kind} binding; declare it as ${shape.toml(name)}`;
  }
  return null;
}

/** What is wrong with the Durable Object namespace binding `name`; null when nothing is. */
export function checkDurableObject(env: Record<string, unknown>, name: string): string | null {
  const ns = env[name] as { idFromName?: unknown } | undefined;
  if (ns === undefined || ns === null) {
    return `no binding named "${name}"; add [[durable_objects.bindings]] name = "${name}", class_name = "TailfanStats" to wrangler.toml`;
  }
  if (typeof ns.idFromName !== "function") return `binding "${name}" is not a Durable Object namespace`;
  return null;
}
