/**
 * Reading a sink's shaping options (`fields`, `exclude`, `rename`, `add`)
 * with the path of every mistake, e.g. `SINKS[1].rename["a"]`. The rules,
 * written so a shape never does something its author did not mean:
 * - `fields` and `exclude` do not go together (one keeps, one drops);
 * - paths are dotted (`event.request.headers`), no empty segment, no `__proto__`;
 * - a rename's source must survive `fields`/`exclude`, and its target must not
 *   land on a field the record keeps, another target, or inside its own source;
 * - `add` must not overwrite a field the record keeps or a rename target;
 * - `limited` and `limitedFields` (the size limits' marks) cannot be dropped,
 *   renamed or added.
 * Without `fields`, "a field the record keeps" means the record's own
 * top-level fields (docs/record.md) that are not excluded or renamed away.
 */

import type { ConfigError } from "../issues";
import { typeName } from "../issues";
import { OWN_KEYS } from "../json";
import { CONTEXT_KEYS, RECORD_TYPES } from "../record";
import { isObject, segmentsOf } from "./paths";

export interface ShapeSpec {
  /** Keep only these dotted paths (and the size limits' marks). */
  fields?: string[];
  /** Drop these dotted paths. */
  exclude?: string[];
  /** `{ "from.path" = "to.path" }`, applied after `fields`/`exclude`. */
  rename?: Record<string, string>;
  /** Static fields (strings, numbers, booleans) set last, e.g. `{ env = "prod" }`. */
  add?: Record<string, string | number | boolean>;
}

/** The sink keys that shape, in the order they apply. */
export const SHAPE_KEYS = ["fields", "exclude", "rename", "add"] as const;

const MARKS = new Set(["limited", "limitedFields"]);

/** Every top-level field a record can have. */
const RECORD_FIELDS = new Set<string>([...CONTEXT_KEYS, ...RECORD_TYPES.flatMap((t) => OWN_KEYS[t])]);

const MOST_PATHS = 200;
const MOST_SEGMENTS = 16;

const within = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}.`);
const overlaps = (a: string, b: string) => within(a, b) || within(b, a);
const keyPath = (key: string) => `[${JSON.stringify(key)}]`;

interface Reader {
  at: string;
  errors: ConfigError[];
}

function fail(r: Reader, path: string, message: string): void {
  r.errors.push({ variable: "SINKS", path: `${r.at}${path}`, message });
}

/** Why `path` is not a usable dotted path, or null. */
function pathProblem(path: string): string | null {
  const segs = segmentsOf(path);
  if (segs === null) {
    return path === ""
      ? 'is empty; write a dotted path such as "event.request.headers"'
      : `"${path}" has an empty segment; write a dotted path such as "event.request.headers"`;
  }
  if (segs.length > MOST_SEGMENTS) return `"${path}" is deeper than ${MOST_SEGMENTS} segments`;
  if (segs.includes("__proto__")) return `"${path}" names __proto__, which no record field can be`;
  if (MARKS.has(segs[0] as string)) {
    return `"${path}" is one of the size limits' marks (limited, limitedFields), which a shape leaves alone`;
  }
  return null;
}

function readPaths(r: Reader, key: "fields" | "exclude", raw: unknown): string[] | undefined {
  if (!Array.isArray(raw) || raw.length === 0) {
    fail(
      r,
      `.${key}`,
      `expected a non-empty list of dotted paths like ["message", "event.request.url"], got ${typeName(raw)}`,
    );
    return undefined;
  }
  if (raw.length > MOST_PATHS) {
    fail(r, `.${key}`, `has ${raw.length} paths; at most ${MOST_PATHS}`);
    return undefined;
  }
  const before = r.errors.length;
  const seen = new Map<string, number>();
  for (const [i, p] of raw.entries()) {
    const at = `.${key}[${i}]`;
    if (typeof p !== "string") {
      fail(r, at, `expected a dotted path (a string), got ${typeName(p)}`);
      continue;
    }
    const problem = pathProblem(p);
    const prior = seen.get(p);
    if (problem) fail(r, at, problem);
    else if (prior !== undefined) fail(r, at, `"${p}" is listed twice (also ${key}[${prior}])`);
    else seen.set(p, i);
  }
  return r.errors.length > before ? undefined : (raw as string[]);
}

function readTable(r: Reader, key: "rename" | "add", raw: unknown): Record<string, unknown> | undefined {
  const example = key === "rename" ? '{ "event.request.url" = "url_full" }' : '{ env = "prod" }';
  if (!isObject(raw) || Object.keys(raw).length === 0) {
    fail(r, `.${key}`, `expected a non-empty table like ${example}, got ${typeName(raw)}`);
    return undefined;
  }
  if (Object.keys(raw).length > MOST_PATHS) {
    fail(r, `.${key}`, `has ${Object.keys(raw).length} entries; at most ${MOST_PATHS}`);
    return undefined;
  }
  return raw;
}

/** What a shape keeps of a record before rename and add: answers "would this path land on a kept field?" */
function keptCollision(spec: { fields?: string[]; exclude?: string[] }, renamedAway: Set<string>, path: string) {
  if (spec.fields) return spec.fields.find((f) => !renamedAway.has(f) && overlaps(f, path));
  const top = path.split(".")[0] as string;
  if (!path.includes(".") && RECORD_FIELDS.has(top)) {
    const dropped = spec.exclude?.some((x) => x === top) || renamedAway.has(top);
    return dropped ? undefined : top;
  }
  return undefined;
}

/**
 * A sink entry's shaping, checked; undefined when it has none, null when it
 * has errors (pushed to `errors`).
 */
export function readShape(
  raw: Record<string, unknown>,
  at: string,
  errors: ConfigError[],
): ShapeSpec | null | undefined {
  if (SHAPE_KEYS.every((k) => raw[k] === undefined)) return undefined;
  const r: Reader = { at, errors };
  const before = errors.length;
  const spec: ShapeSpec = {};
  if (raw.fields !== undefined) {
    const fields = readPaths(r, "fields", raw.fields);
    if (fields) spec.fields = fields;
  }
  if (raw.exclude !== undefined) {
    if (raw.fields !== undefined) {
      fail(
        r,
        ".exclude",
        "cannot be used with fields: fields keeps only the paths it lists, so there is nothing to exclude; use one of them",
      );
    } else {
      const exclude = readPaths(r, "exclude", raw.exclude);
      if (exclude) spec.exclude = exclude;
    }
  }
  if (errors.length > before) return null;

  const renamedAway = new Set<string>();
  const targets = new Map<string, string>();
  if (raw.rename !== undefined) {
    const table = readTable(r, "rename", raw.rename);
    if (!table) return null;
    for (const from of Object.keys(table)) renamedAway.add(from);
    for (const [from, to] of Object.entries(table)) {
      const at = `.rename${keyPath(from)}`;
      const fromProblem = pathProblem(from);
      if (fromProblem) {
        fail(r, at, `the source ${fromProblem}`);
        continue;
      }
      if (typeof to !== "string") {
        fail(r, at, `expected the new name as a dotted path (a string), got ${typeName(to)}`);
        continue;
      }
      const toProblem = pathProblem(to);
      if (toProblem) {
        fail(r, at, `the new name ${toProblem}`);
        continue;
      }
      if (overlaps(from, to)) {
        fail(r, at, `"${from}" cannot be renamed to "${to}": one is inside the other`);
        continue;
      }
      const excluded = spec.exclude?.find((x) => within(from, x));
      if (excluded !== undefined) {
        fail(r, at, `"${from}" is removed by exclude ("${excluded}") before it could be renamed`);
        continue;
      }
      const kept = keptCollision(spec, renamedAway, to);
      if (kept !== undefined) {
        fail(
          r,
          at,
          `"${to}" would overwrite "${kept}", which the record keeps; exclude or rename "${kept}" too, or pick another name`,
        );
        continue;
      }
      const other = [...targets].find(([t]) => overlaps(t, to));
      if (other) {
        fail(r, at, `"${to}" clashes with the target of rename["${other[1]}"] ("${other[0]}")`);
        continue;
      }
      targets.set(to, from);
    }
    if (errors.length > before) return null;
    spec.rename = table as Record<string, string>;
  }

  if (raw.add !== undefined) {
    const table = readTable(r, "add", raw.add);
    if (!table) return null;
    const added: string[] = [];
    for (const [key, value] of Object.entries(table)) {
      const at = `.add${keyPath(key)}`;
      const problem = pathProblem(key);
      if (problem) {
        fail(r, at, problem);
        continue;
      }
      if (
        !(
          typeof value === "string" ||
          typeof value === "boolean" ||
          (typeof value === "number" && Number.isFinite(value))
        )
      ) {
        fail(r, at, `expected a string, number or boolean, got ${typeName(value)}`);
        continue;
      }
      if (typeof value === "string" && /\$\{[A-Za-z_][A-Za-z0-9_]*\}/.test(value)) {
        fail(
          r,
          at,
          "is written as it is: secrets are never read into records, so a ${NAME} reference does not belong here",
        );
        continue;
      }
      const kept = keptCollision(spec, renamedAway, key);
      if (kept !== undefined) {
        fail(
          r,
          at,
          `would overwrite "${kept}", which the record keeps; exclude or rename "${kept}" first, or pick another name`,
        );
        continue;
      }
      const target = [...targets.keys()].find((t) => overlaps(t, key));
      if (target !== undefined) {
        fail(r, at, `clashes with the rename target "${target}"`);
        continue;
      }
      const twin = added.find((k) => overlaps(k, key));
      if (twin !== undefined) {
        fail(r, at, `clashes with add["${twin}"]: one is inside the other`);
        continue;
      }
      added.push(key);
    }
    if (errors.length > before) return null;
    spec.add = table as Record<string, string | number | boolean>;
  }
  return spec;
}
