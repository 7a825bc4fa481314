/**
 * docs/sinks.md is a contract: each sink type's option table lists exactly the
 * options its schema has, with the schema's defaults. A default the schema
 * holds is written as its value in code (`1000`, `"POST"`, `{}`); an option
 * without one is `required`, or names the secret it reads by default, or says
 * where its value comes from. The JSDoc on an option in its sink's file, where
 * it says `Default X`, says the schema's default too.
 */
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import doc from "../../docs/sinks.md?raw";
import { type AnySinkDefinition, SINK_TYPES } from "../../sinks";
import { rulesSchema } from "../../sinks/alert-rules";

type Entries = Record<string, v.GenericSchema>;

const sources = import.meta.glob("../../sinks/*.ts", { query: "?raw", import: "default", eager: true });

/** The option entries of a sink's schema: a strict object, or one inside a pipe of cross-checks. */
function entriesOf(schema: v.GenericSchema): Entries {
  const s = schema as v.GenericSchema & { entries?: Entries; pipe?: v.GenericSchema[] };
  if (s.entries) return s.entries;
  const first = s.pipe?.[0];
  if (first === undefined) throw new Error(`no object schema in ${schema.type}`);
  return entriesOf(first);
}

interface Row {
  option: string;
  default: string;
}

/** The section of `## \`type\`` up to the next `## `. */
function section(type: string): string | undefined {
  const start = doc.indexOf(`\n## \`${type}\``);
  if (start < 0) return undefined;
  const end = doc.indexOf("\n## ", start + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

/** The rows of the section's first `| option | default | what |` table, one per option. */
function optionRows(text: string): Row[] | undefined {
  const lines = text.split("\n");
  const head = lines.findIndex((l) => /^\| option \| default \|/.test(l));
  if (head < 0) return undefined;
  const rows: Row[] = [];
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith("|")) break;
    const [option = "", byDefault = ""] = line.split(" | ").map((c) => c.replace(/^\| /, "").trim());
    // One row may document options that go together: `username`, `password`.
    for (const name of option.split(", ")) rows.push({ option: name.replace(/`/g, ""), default: byDefault });
  }
  return rows;
}

/** A documented default that is a value: the code span the cell starts with, read as JSON. */
function documentedValue(cell: string): { value: unknown } | undefined {
  const m = /^`([^`]+)`/.exec(cell);
  if (!m) return undefined;
  try {
    return { value: JSON.parse(m[1] as string) };
  } catch {
    return undefined;
  }
}

/** What is wrong with one row against its schema entry, or undefined. */
function rowProblem(def: AnySinkDefinition, name: string, entry: v.GenericSchema, row: Row): string | undefined {
  const secret = def.defaultSecrets?.[name];
  if (secret !== undefined && !row.default.includes(secret)) return `should name the secret ${secret}`;
  const optional = entry.type === "optional";
  const byDefault = optional ? v.getDefault(entry as v.OptionalSchema<v.GenericSchema, unknown>) : undefined;
  if (byDefault !== undefined) {
    const written = documentedValue(row.default);
    if (written === undefined) return `should be \`${JSON.stringify(byDefault)}\`, the schema's default`;
    try {
      expect(written.value).toEqual(byDefault);
    } catch {
      return `says ${row.default}, the schema's default is \`${JSON.stringify(byDefault)}\``;
    }
    return undefined;
  }
  if (secret !== undefined) return undefined;
  if (!optional && row.default !== "required") return `should be "required"`;
  if (optional && row.default === "required") return "is optional in the schema, not required";
  if (optional && documentedValue(row.default) !== undefined) return "names a value, but the schema has no default";
  return undefined;
}

/** The sink whose documented table a sink shares by using the very same schema (otlp_traces takes otlp's). */
function sharedWith(def: AnySinkDefinition): AnySinkDefinition | undefined {
  return Object.values(SINK_TYPES).find(
    (other) => other !== def && other.options === def.options && section(other.type),
  );
}

/** The JSDoc of each option written in the sink's own definition (options from shared blocks have theirs there). */
function optionDocs(type: string, names: readonly string[]): Map<string, string> {
  const docs = new Map<string, string>();
  const source = Object.values(sources).find((text) => text.includes(`type: "${type}",`));
  if (source === undefined) return docs;
  const definition = source.slice(source.indexOf(`type: "${type}",`));
  for (const m of definition.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*(\w+):/g)) {
    const name = m[2] as string;
    if (names.includes(name) && !docs.has(name)) docs.set(name, (m[1] as string).replace(/\s*\n\s*\*\s?/g, " "));
  }
  return docs;
}

/** The default a JSDoc states as a value (`Default \`true\``, `Default 1000`); undefined when it says it in words. */
function jsdocDefault(text: string): { value: unknown } | undefined {
  const m = /Default (?:`([^`]+)`|(\d+))[.;,]/.exec(text);
  if (!m) return undefined;
  if (m[2] !== undefined) return { value: Number(m[2]) };
  const code = m[1] as string;
  try {
    return { value: JSON.parse(code) };
  } catch {
    // A bare string in a code span: `POST`, `logs`.
    return { value: code };
  }
}

describe("docs/sinks.md option tables agree with the schemas", () => {
  for (const def of Object.values(SINK_TYPES)) {
    it(def.type, () => {
      const text = section(def.type);
      expect(text, `no section ## \`${def.type}\``).toBeDefined();
      expect(doc, "the table of sink types lists it").toContain(`| [\`${def.type}\`](#`);
      const rows = optionRows(text ?? "");
      if (rows === undefined) {
        const owner = sharedWith(def);
        expect(owner, `${def.type}: no option table, and no other sink has the same schema`).toBeDefined();
        expect(text, `says it has the options of the ${owner?.type} sink`).toContain(
          `the options of the \`${owner?.type}\` sink`,
        );
        return;
      }
      const entries = entriesOf(def.options as v.GenericSchema);
      expect(rows.map((r) => r.option).sort()).toEqual(Object.keys(entries).sort());
      const problems = rows.flatMap((row) => {
        const entry = entries[row.option];
        const problem = entry && rowProblem(def, row.option, entry, row);
        return problem ? [`${row.option}: ${problem}`] : [];
      });
      expect(problems).toEqual([]);
    });

    it(`${def.type}: the JSDoc defaults are the schema's`, () => {
      const entries = entriesOf(def.options as v.GenericSchema);
      const mismatches: string[] = [];
      for (const [name, text] of optionDocs(def.type, Object.keys(entries))) {
        const stated = jsdocDefault(text);
        const entry = entries[name] as v.GenericSchema;
        if (stated === undefined || entry.type !== "optional") continue;
        const actual = v.getDefault(entry as v.OptionalSchema<v.GenericSchema, unknown>);
        if (JSON.stringify(stated.value) !== JSON.stringify(actual))
          mismatches.push(`${name}: JSDoc says ${JSON.stringify(stated.value)}, schema ${JSON.stringify(actual)}`);
      }
      expect(mismatches).toEqual([]);
    });
  }

  it("the alert rules table agrees with the `rules` schema, and so do the JSDoc defaults", () => {
    const start = doc.indexOf("\n## Alert rules");
    expect(start).toBeGreaterThan(0);
    const text = doc.slice(start, doc.indexOf("\n## ", start + 1));
    const rows = optionRows(text) ?? [];
    const entries = entriesOf(rulesSchema as v.GenericSchema);
    expect(rows.map((r) => r.option).sort()).toEqual(Object.keys(entries).sort());
    const noSecrets = { defaultSecrets: undefined } as unknown as AnySinkDefinition;
    const problems = rows.flatMap((row) => {
      const entry = entries[row.option];
      const problem = entry && rowProblem(noSecrets, row.option, entry, row);
      return problem ? [`${row.option}: ${problem}`] : [];
    });
    expect(problems).toEqual([]);
    const source = Object.entries(sources).find(([file]) => file.endsWith("/alert-rules.ts"))?.[1] as string;
    const schema = source.slice(source.indexOf("export const rulesSchema"));
    const stated = [...schema.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*(\w+):/g)].flatMap((m) => {
      const value = jsdocDefault(m[1] as string);
      return value === undefined ? [] : [[m[2] as string, value.value] as const];
    });
    expect(stated.map(([name]) => name).sort()).toEqual([
      "binding",
      "flushMs",
      "groupBy",
      "maxGroups",
      "windowMinutes",
    ]);
    for (const [name, value] of stated)
      expect(value, name).toEqual(v.getDefault(entries[name] as v.OptionalSchema<v.GenericSchema, unknown>));
  });

  it("the JSDoc of options is found and read", () => {
    const docs = optionDocs("http", ["url", "method", "format"]);
    expect([...docs.keys()].sort()).toEqual(["format", "method", "url"]);
    expect(jsdocDefault(docs.get("method") ?? "")).toEqual({ value: "POST" });
    expect(jsdocDefault("Most records per object. Default 10000.")).toEqual({ value: 10000 });
    expect(jsdocDefault("Default: the secret `DD_API_KEY`.")).toBeUndefined();
  });

  it("a broken table is caught: a missing option, a wrong default, a value where the schema has none", () => {
    const http = SINK_TYPES.http as AnySinkDefinition;
    const entries = entriesOf(http.options as v.GenericSchema);
    const gzip = entries.gzip as v.GenericSchema;
    expect(rowProblem(http, "gzip", gzip, { option: "gzip", default: "`true`" })).toMatch(
      /schema's default is `false`/,
    );
    expect(rowProblem(http, "gzip", gzip, { option: "gzip", default: "`false`" })).toBeUndefined();
    expect(rowProblem(http, "url", entries.url as v.GenericSchema, { option: "url", default: "none" })).toMatch(
      /required/,
    );
    const datadog = SINK_TYPES.datadog as AnySinkDefinition;
    const dd = entriesOf(datadog.options as v.GenericSchema);
    expect(
      rowProblem(datadog, "apiKey", dd.apiKey as v.GenericSchema, { option: "apiKey", default: "required" }),
    ).toMatch(/DD_API_KEY/);
    expect(
      rowProblem(datadog, "endpoint", dd.endpoint as v.GenericSchema, { option: "endpoint", default: '`"x"`' }),
    ).toMatch(/no default/);
  });
});
