/** Small valibot building blocks the config readers share. */
import * as v from "valibot";

/** A whole number in [min, max]; the bounds' messages name the unit ("must be at least 1024 bytes"). */
export const intIn = (min: number, max: number, unit: string) =>
  v.pipe(
    v.number(),
    v.integer("must be a whole number"),
    v.minValue(min, `must be at least ${min} ${unit}`),
    v.maxValue(max, `must be at most ${max} ${unit}`),
  );
