/** Moved: the one env-var reader lives in config/env.ts. */
export * from "./config/env";
