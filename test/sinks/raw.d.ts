/** Vite's `?raw` import: the file's text, for tests that hold the docs to the code. */
declare module "*?raw" {
  const text: string;
  export default text;
}

/** Vite's `import.meta.glob`, eager and raw: every matching file's text by path. */
interface ImportMeta {
  glob(pattern: string, options: { query: "?raw"; import: "default"; eager: true }): Record<string, string>;
}
