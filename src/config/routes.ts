/** ROUTES: which sinks receive which records; unset, every sink takes what its own filter accepts. */
import * as v from "valibot";
import {
  compileFilter,
  compileUnsampled,
  FILTER_KEYS,
  type FilterSpec,
  filterEntries,
  oneOrMany,
  type RecordPredicate,
} from "../filter";
import { type ConfigError, issuesToErrors } from "../issues";
import { readList } from "./env";

export interface ResolvedRoute {
  sinks: string[];
  filter: FilterSpec;
  matches: RecordPredicate;
  /** The filter without its sampling; null when it does not sample. */
  unsampled: RecordPredicate | null;
}

const routeSchema = v.strictObject({
  sinks: oneOrMany(v.string()),
  ...filterEntries,
});

/** Reads ROUTES (null when unset); a route naming a sink not in `sinkNames` is an error. */
export function readRoutes(raw: unknown, sinkNames: ReadonlyMap<string, number>, errors: ConfigError[]) {
  const rawRoutes = readList(
    "ROUTES",
    raw,
    errors,
    'write a JSON array like [{"sinks":["all"]}] or use a TOML array of tables in [vars]',
  );
  if (rawRoutes === null) return null;
  const routes: ResolvedRoute[] = [];
  for (const [i, entry] of rawRoutes.entries()) {
    const parsed = v.safeParse(routeSchema, entry);
    if (!parsed.success) {
      errors.push(...issuesToErrors("ROUTES", `[${i}]`, parsed.issues, ["sinks", ...FILTER_KEYS]));
      continue;
    }
    const { sinks: names, ...filter } = parsed.output;
    const listed = names.length > 1 || Array.isArray((entry as { sinks?: unknown }).sinks);
    names.forEach((n, j) => {
      if (sinkNames.has(n)) return;
      errors.push({
        variable: "ROUTES",
        path: `[${i}].sinks${listed ? `[${j}]` : ""}`,
        message: `no sink named "${n}"; sinks are: ${[...sinkNames.keys()].join(", ") || "(none)"}`,
      });
    });
    routes.push({ sinks: names, filter, matches: compileFilter(filter), unsampled: compileUnsampled(filter) });
  }
  return routes;
}
