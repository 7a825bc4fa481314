/** Plain JSON as JSON.stringify sees a value, within the depth and array-length limits. */
import { primitiveJson, setOwn } from "../json";
import type { Json } from "../record";
import { type Cut, sizeOfAny } from "./measure";
import { itemMarker } from "./shrink";

export interface ShapeState {
  readonly maxDepth: number;
  readonly maxArrayItems: number;
  changed: boolean;
  cut: Cut;
}

function isPlainObject(obj: object): boolean {
  const proto = Object.getPrototypeOf(obj);
  return proto === Object.prototype || proto === null;
}

/**
 * Plain JSON as JSON.stringify sees a value (toJSON applied, undefined and
 * functions left out of objects, null in arrays), with containers at depth
 * `maxDepth` replaced by "[MaxDepth]" and arrays shortened to
 * `maxArrayItems` elements, the last one a marker. What is already plain
 * and within the limits is returned as it is, not copied.
 */
export function shape(value: unknown, depth: number, st: ShapeState): Json | undefined {
  if (value === null || typeof value !== "object") return primitiveJson(value);
  let obj = value as object;
  try {
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") {
      const replaced: unknown = toJSON.call(obj);
      if (replaced === null || typeof replaced !== "object") return shape(replaced, depth, st);
      obj = replaced;
    }
    if (depth >= st.maxDepth) {
      st.changed = true;
      st.cut.bytes += sizeOfAny(obj);
      return "[MaxDepth]";
    }
    return Array.isArray(obj) ? shapeArray(obj, depth, st) : shapeObject(obj, depth, st);
  } catch {
    st.changed = true;
    return "[Unserializable]";
  }
}

/** An array within the limits, copied only if something in it changes. */
function shapeArray(obj: unknown[], depth: number, st: ShapeState): Json[] {
  let n = obj.length;
  let out: Json[] | null = null;
  if (n > st.maxArrayItems) {
    st.changed = true;
    n = st.maxArrayItems - 1;
    st.cut.bytes += sizeOfAny(obj.slice(n)) - 1;
    out = [];
  }
  for (let i = 0; i < n; i++) {
    const x: unknown = obj[i];
    const copy = shape(x, depth + 1, st) ?? null;
    if (out === null && copy !== x) out = (obj as Json[]).slice(0, i);
    out?.push(copy);
  }
  if (out === null) return obj as Json[];
  if (n < obj.length) out.push(itemMarker(obj.length - n));
  return out;
}

/** An object's own fields, copied only if something in it changes. */
function shapeObject(obj: object, depth: number, st: ShapeState): { [key: string]: Json } {
  // Objects made by the runtime (event info with getters) are always copied.
  const keys = Object.keys(obj);
  let out: { [key: string]: Json } | null = isPlainObject(obj) ? null : {};
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    let x: unknown;
    let copy: Json | undefined;
    try {
      x = (obj as Record<string, unknown>)[key];
      copy = shape(x, depth + 1, st);
    } catch {
      copy = undefined;
    }
    if (out === null && (copy !== x || copy === undefined)) {
      out = {};
      for (let j = 0; j < i; j++) {
        const k = keys[j] as string;
        setOwn(out, k, (obj as Record<string, Json>)[k] as Json);
      }
    }
    if (out !== null && copy !== undefined) setOwn(out, key, copy);
  }
  return out ?? (obj as { [key: string]: Json });
}
