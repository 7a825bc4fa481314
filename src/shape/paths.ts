/** Dotted paths into a record (`event.request.headers`): reading, removing and setting, copying only what changes. */
import { setOwn } from "../json";
import type { Json } from "../record";

export type JsonObject = { [key: string]: Json };

/** A path's segments; null when it is not a dotted path (empty, or an empty segment). */
export function segmentsOf(path: string): string[] | null {
  if (path === "") return null;
  const parts = path.split(".");
  return parts.every((p) => p !== "") ? parts : null;
}

export function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Paths as a tree of segments: `true` at the end of a path. A path ends any longer one under it. */
export type PathTree = Map<string, PathTree | true>;

export function treeOf(paths: readonly (readonly string[])[]): PathTree {
  const root: PathTree = new Map();
  for (const segs of paths) {
    let node = root;
    for (let i = 0; i < segs.length; i++) {
      const seg = segs[i] as string;
      const last = i === segs.length - 1;
      const next = node.get(seg);
      if (next === true) break;
      if (last) node.set(seg, true);
      else if (next === undefined) {
        const child: PathTree = new Map();
        node.set(seg, child);
        node = child;
      } else node = next;
    }
  }
  return root;
}

/** Only what the tree names, in the tree's order; objects without any named field are left out. */
export function pickTree(obj: JsonObject, tree: PathTree): JsonObject {
  const out: JsonObject = {};
  for (const [key, sub] of tree) {
    if (!Object.hasOwn(obj, key)) continue;
    const value = obj[key] as Json;
    if (sub === true) setOwn(out, key, value);
    else if (isObject(value)) {
      const inner = pickTree(value, sub);
      if (Object.keys(inner).length > 0) setOwn(out, key, inner);
    }
  }
  return out;
}

/** Without what the tree names; the object itself when it has none of it. */
export function dropTree(obj: JsonObject, tree: PathTree): JsonObject {
  let out: JsonObject | null = null;
  for (const [key, sub] of tree) {
    if (!Object.hasOwn(obj, key)) continue;
    const value = obj[key] as Json;
    if (sub === true) {
      out ??= { ...obj };
      delete out[key];
    } else if (isObject(value)) {
      const inner = dropTree(value, sub);
      if (inner !== value) {
        out ??= { ...obj };
        setOwn(out, key, inner);
      }
    }
  }
  return out ?? obj;
}

export function getPath(obj: JsonObject, segs: readonly string[]): Json | undefined {
  let node: Json = obj;
  for (const seg of segs) {
    if (!isObject(node) || !Object.hasOwn(node, seg)) return undefined;
    node = node[seg] as Json;
  }
  return node;
}

/**
 * Sets (or with `value` undefined, removes) the value at a path, in `obj`
 * itself, which must be a copy the caller owns; nested objects on the way
 * are copied before they change, and made where missing. A path through a
 * value that is not an object is left alone.
 */
export function setPath(obj: JsonObject, segs: readonly string[], value: Json | undefined): void {
  let node = obj;
  for (let i = 0; i < segs.length - 1; i++) {
    const seg = segs[i] as string;
    const next = Object.hasOwn(node, seg) ? node[seg] : undefined;
    if (next === undefined) {
      if (value === undefined) return;
      const made: JsonObject = {};
      setOwn(node, seg, made);
      node = made;
    } else if (isObject(next)) {
      const copy = { ...next };
      setOwn(node, seg, copy);
      node = copy;
    } else return;
  }
  const last = segs[segs.length - 1] as string;
  if (value === undefined) delete node[last];
  else setOwn(node, last, value);
}
