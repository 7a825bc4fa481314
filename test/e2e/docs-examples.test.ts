/**
 * The docs are a contract: every config example in README.md and docs/*.md
 * (toml and json blocks, and the JSON a curl posts to /config/check) is
 * checked by tailfan's own POST /config/check on the real runtime, with the
 * bindings of wrangler.toml (what `npm run dev` has) plus those the example
 * itself declares, and its secrets set. A secret an example references must
 * be named in the prose of its section, so the one step it needs is written
 * down. Failures name the file and line of the example.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { experimental_readRawConfig } from "wrangler";
import { type Bundle, bundleTailfan, root } from "./helpers";

const CONFIG_KEYS = ["SINKS", "ROUTES", "DELIVERY", "SCRUB", "LIMITS", "SELF_NAME"];
const ADMIN = "docs-examples-admin-token";

interface Example {
  where: string;
  candidate: Record<string, unknown>;
  /** Binding tables the example declares (to add to wrangler.toml). */
  tables: Record<string, unknown>;
  secrets: string[];
  /** The prose of the example's section, code blocks left out. */
  prose: string;
}

type Raw = Record<string, unknown>;
const tmp = mkdtempSync(join(tmpdir(), "tailfan-docs-"));

function readToml(text: string): Raw {
  const file = join(tmp, "wrangler.toml");
  writeFileSync(file, text);
  return experimental_readRawConfig({ config: file }).rawConfig as Raw;
}

/** Numbered parts (SINKS_1, ...) are joined into their var, as tailfan joins them. */
function candidateOf(vars: Raw): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, value] of Object.entries(vars).sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true }))) {
    const base = k.replace(/_\d+$/, "");
    if (!CONFIG_KEYS.includes(base)) continue;
    if (base === k) out[k] = value;
    else out[base] = [...((out[base] as unknown[]) ?? []), ...(value as unknown[])];
  }
  return out;
}

function examples(): Example[] {
  const files = [
    "README.md",
    ...readdirSync(join(root, "docs"))
      .filter((f) => f.endsWith(".md"))
      .map((f) => `docs/${f}`),
  ];
  const out: Example[] = [];
  for (const file of files) {
    const lines = readFileSync(join(root, file), "utf8").split("\n");
    let section = 0;
    for (let i = 0; i < lines.length; i++) {
      if (/^#{1,6} /.test(lines[i] ?? "")) section = i;
      const fence = /^```(\w+)/.exec(lines[i] ?? "");
      if (!fence) continue;
      const start = i;
      const body: string[] = [];
      for (i++; i < lines.length && !(lines[i] ?? "").startsWith("```"); i++) body.push(lines[i] ?? "");
      const text = body.join("\n");
      if (!CONFIG_KEYS.some((k) => new RegExp(`\\b${k}(_\\d+)?\\b`).test(text))) continue;
      let vars: Raw | undefined;
      let tables: Raw = {};
      if (fence[1] === "toml") {
        const raw = readToml(/^\s*\[vars\]/m.test(text) ? text : `[vars]\n${text}`);
        ({ vars, ...tables } = raw as { vars?: Raw });
      } else if (fence[1] === "json") {
        const parsed = JSON.parse(text) as unknown;
        if (parsed && typeof parsed === "object" && Object.keys(parsed).some((k) => CONFIG_KEYS.includes(k)))
          vars = parsed as Raw;
      } else if (fence[1] === "sh") {
        const posted = /config\/check"[\s\S]*?-d '(\{[\s\S]*?\})'/.exec(text);
        if (posted?.[1]) vars = JSON.parse(posted[1]) as Raw;
      }
      if (vars === undefined) continue;
      const candidate = candidateOf(vars);
      if (Object.keys(candidate).length === 0) continue;
      // /config/check needs SINKS; an example of another var keeps the deployed ones.
      candidate.SINKS ??= deployedSinks;
      let end = i + 1;
      while (end < lines.length && !/^#{1,6} /.test(lines[end] ?? "")) end++;
      const prose = lines
        .slice(section, end)
        .join("\n")
        .replace(/^```[\s\S]*?^```/gm, "");
      const secrets = [
        ...new Set([...JSON.stringify(candidate).matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1] ?? "")),
      ];
      out.push({ where: `${file}:${start + 1}`, candidate, tables, secrets, prose });
    }
  }
  return out;
}

/** Every sink type's default secret names (DD_API_KEY, ...), read from the sink sources. */
function defaultSecrets(): string[] {
  const names = new Set<string>();
  for (const f of readdirSync(join(root, "sinks")).filter((x) => x.endsWith(".ts"))) {
    const text = readFileSync(join(root, "sinks", f), "utf8");
    for (const m of text.matchAll(/defaultSecrets:\s*\{([^}]*)\}/g))
      for (const s of (m[1] ?? "").matchAll(/"([A-Z][A-Z0-9_]*)"/g)) names.add(s[1] ?? "");
  }
  return [...names];
}

/** A stand-in value of the shape the secret holds: a URL, a Sentry DSN, else a token. */
function secretValue(name: string): string {
  if (/DSN$/.test(name)) return "https://0123456789abcdef@o0.ingest.sentry.io/42";
  if (/_URL$/.test(name)) return "https://secret.example.com/hook";
  return `secret-value-${name}`;
}

/** Miniflare binding options for wrangler.toml-style binding tables. */
interface Bindings {
  kvNamespaces: Record<string, string>;
  r2Buckets: Record<string, string>;
  d1Databases: Record<string, string>;
  analyticsEngineDatasets: Record<string, { dataset: string }>;
  queueProducers: Record<string, string>;
  durableObjects: Record<string, { className: string; useSQLite: boolean }>;
  pipelines: Record<string, string>;
}

function bindingsOf(config: Raw, into: Bindings): string[] {
  const unknown: string[] = [];
  for (const [kind, value] of Object.entries(config)) {
    const list = (Array.isArray(value) ? value : []) as Raw[];
    if (kind === "kv_namespaces") for (const b of list) into.kvNamespaces[String(b.binding)] = String(b.binding);
    else if (kind === "r2_buckets") for (const b of list) into.r2Buckets[String(b.binding)] = String(b.binding);
    else if (kind === "d1_databases") for (const b of list) into.d1Databases[String(b.binding)] = String(b.binding);
    else if (kind === "analytics_engine_datasets")
      for (const b of list) into.analyticsEngineDatasets[String(b.binding)] = { dataset: String(b.dataset) };
    else if (kind === "pipelines") for (const b of list) into.pipelines[String(b.binding)] = String(b.stream);
    else if (kind === "queues") {
      for (const b of ((value as Raw).producers ?? []) as Raw[])
        into.queueProducers[String(b.binding)] = String(b.queue);
    } else if (kind === "durable_objects") {
      for (const b of ((value as Raw).bindings ?? []) as Raw[])
        into.durableObjects[String(b.name)] = { className: String(b.class_name), useSQLite: true };
    } else if (!["vars", "migrations"].includes(kind)) unknown.push(kind);
  }
  return unknown;
}

const deployedSinks = (readToml(readFileSync(join(root, "wrangler.toml"), "utf8")).vars as Raw).SINKS;
const all = examples();
let mf: Miniflare;
let bundle: Bundle;
let url: string;
const unknownTables: string[] = [];

beforeAll(async () => {
  bundle = await bundleTailfan();
  const into: Bindings = {
    kvNamespaces: {},
    r2Buckets: {},
    d1Databases: {},
    analyticsEngineDatasets: {},
    queueProducers: {},
    durableObjects: {},
    pipelines: {},
  };
  const wrangler = readToml(readFileSync(join(root, "wrangler.toml"), "utf8"));
  bindingsOf(wrangler, into);
  for (const e of all) for (const kind of bindingsOf(e.tables, into)) unknownTables.push(`${e.where}: [[${kind}]]`);
  const secrets = [...new Set([...defaultSecrets(), ...all.flatMap((e) => e.secrets)])];
  mf = new Miniflare(
    convertV4MiniflareOptions({
      workers: [
        {
          name: "tailfan",
          modules: true,
          scriptPath: bundle.script,
          modulesRoot: bundle.dir,
          compatibilityDate: "2025-11-01",
          bindings: {
            // wrangler.toml's own vars, as on `npm run dev`.
            ...Object.fromEntries(
              Object.entries((wrangler.vars ?? {}) as Raw).map(([k, x]) => [
                k,
                typeof x === "string" ? x : JSON.stringify(x),
              ]),
            ),
            ADMIN_TOKEN: ADMIN,
            ...Object.fromEntries(secrets.map((s) => [s, secretValue(s)])),
          },
          ...into,
        },
      ],
    }),
  );
  url = (await mf.ready).toString();
});

afterAll(async () => {
  await mf?.dispose();
  bundle?.remove();
  rmSync(tmp, { recursive: true, force: true });
});

describe("config examples in README.md and docs/", () => {
  it("are found (a broken extractor would check nothing)", () => {
    expect(all.length).toBeGreaterThanOrEqual(20);
    // The README's worked config, the curl of docs/api.md and the split SINKS_1/SINKS_2 of docs/configuration.md.
    expect(all.some((e) => e.where.startsWith("README.md:"))).toBe(true);
    expect(all.some((e) => e.where.startsWith("docs/api.md:"))).toBe(true);
    expect(
      all.some(
        (e) =>
          e.where.startsWith("docs/configuration.md:") &&
          Array.isArray(e.candidate.SINKS) &&
          (e.candidate.SINKS as unknown[]).length === 3,
      ),
    ).toBe(true);
    expect(unknownTables).toEqual([]);
  });

  for (const e of all) {
    it(`${e.where} passes POST /config/check`, async () => {
      const res = await fetch(new URL("/config/check", url), {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify(e.candidate),
      });
      const body = (await res.json()) as {
        valid: boolean;
        errors?: { variable: string; path: string; message: string }[];
      };
      const errors = (body.errors ?? []).map((x) => `${e.where}: ${x.variable}${x.path}: ${x.message}`);
      expect(errors).toEqual([]);
      expect(res.status).toBe(200);
    });

    if (e.secrets.length > 0) {
      it(`${e.where} says which secret it needs`, () => {
        expect(
          e.secrets.filter((s) => !e.prose.includes(s)).map((s) => `${e.where}: ${s} is not named in its section`),
        ).toEqual([]);
      });
    }
  }
});
