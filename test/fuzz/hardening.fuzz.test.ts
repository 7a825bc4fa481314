/**
 * Two hardening properties: every detector masks its secret in every
 * encoding people log it in, leaving the text around it; and no request of
 * any size or shape makes any route answer 500 (or fall through to the
 * app's last-resort error handler).
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app";
import { compileScrubber, DEFAULT_SCRUB, DETECTOR_KINDS, type DetectorKind, scrubText } from "../../src/scrub";
import { anyString, anyValue, deepValue, jsonValue, traceItem } from "./arbitraries";
import { params, TIMEOUT } from "./settings";

// ---------------------------------------------------------------- encodings

const ALL_ON = compileScrubber({
  ...DEFAULT_SCRUB,
  detectors: Object.fromEntries(DETECTOR_KINDS.map((k) => [k, true])) as Record<DetectorKind, boolean>,
});

const chars = (alphabet: string, min: number, max: number) =>
  fc.array(fc.constantFrom(...alphabet), { minLength: min, maxLength: max }).map((c) => c.join(""));
const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER = "abcdefghijklmnopqrstuvwxyz";
const DIGITS = "0123456789";
const ALNUM = UPPER + LOWER + DIGITS;
const B64URL = `${ALNUM}-_`;
const HEX = "0123456789abcdef";
/** Random text that has a letter of each case and a digit, as random tokens do. */
const mixed = (alphabet: string, min: number, max: number) =>
  fc
    .tuple(chars(alphabet, min, max), chars(UPPER, 1, 1), chars(LOWER, 1, 1), chars(DIGITS, 1, 1))
    .map(([s, a, b, c]) => `${a}${b}${c}${s}`);

function luhnCard(digits: number[], sep: string): string {
  const body = [4, ...digits];
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let d = body[body.length - 1 - i] as number;
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  const all = [...body, (10 - (sum % 10)) % 10].join("");
  return sep === "" ? all : (all.match(/.{4}/g) as string[]).join(sep);
}

/** Per detector: the text as it is logged, and the part of it that is the secret. */
const samples: Record<DetectorKind, fc.Arbitrary<{ text: string; secret: string }>> = {
  jwt: fc
    .tuple(chars(B64URL, 10, 30), chars(B64URL, 10, 40), chars(B64URL, 20, 43))
    .map(([h, p, s]) => `eyJ${h}.eyJ${p}.${s}`)
    .map((t) => ({ text: t, secret: t })),
  aws_access_key: chars(UPPER + DIGITS, 16, 16).map((s) => ({ text: `AKIA${s}`, secret: `AKIA${s}` })),
  aws_secret_key: mixed(`${ALNUM}/+`, 37, 37).map((s) => ({ text: `aws_secret_access_key=${s}`, secret: s })),
  github_token: chars(ALNUM, 36, 40).map((s) => ({ text: `ghp_${s}`, secret: `ghp_${s}` })),
  stripe_key: chars(ALNUM, 24, 30).map((s) => ({ text: `sk_live_${s}`, secret: `sk_live_${s}` })),
  slack_token: fc.oneof(
    fc
      .tuple(chars(DIGITS, 12, 12), chars(ALNUM, 24, 24))
      .map(([n, s]) => ({ text: `xoxb-${n}-${s}`, secret: `xoxb-${n}-${s}` })),
    fc
      .tuple(chars(UPPER + DIGITS, 9, 11), chars(UPPER + DIGITS, 9, 11), chars(ALNUM, 24, 24))
      .map(([t, b, s]) => ({ text: `https://hooks.slack.com/services/T${t}/B${b}/${s}`, secret: `T${t}/B${b}/${s}` })),
  ),
  google_api_key: chars(B64URL, 35, 35).map((s) => ({ text: `AIza${s}`, secret: `AIza${s}` })),
  bearer: fc.oneof(
    mixed(B64URL, 21, 40).map((t) => ({ text: `Bearer ${t}`, secret: t })),
    mixed(ALNUM, 17, 30).map((t) => ({ text: `Authorization: Basic ${t}`, secret: t })),
    fc
      .tuple(chars(HEX, 32, 32), chars(HEX, 32, 32))
      .map(([n, r]) => ({ text: `Digest username="bob", nonce="${n}", response="${r}"`, secret: r })),
  ),
  url_param: fc
    .tuple(fc.constantFrom("token", "access_token", "api_key", "password", "sig"), chars(ALNUM, 8, 24))
    .map(([k, s]) => ({ text: `/reset?${k}=${s}`, secret: s })),
  url_token: mixed(B64URL, 29, 40).map((s) => ({ text: `/reset/${s}`, secret: s })),
  card: fc
    .tuple(fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 14, maxLength: 14 }), fc.constantFrom("", " ", "-"))
    .map(([d, sep]) => luhnCard(d, sep))
    .map((c) => ({ text: c, secret: c })),
  email: fc
    .tuple(chars(LOWER, 3, 10), chars(LOWER, 3, 10))
    .map(([u, d]) => ({ text: `${u}.x@${d}.example.com`, secret: `${u}.x@${d}.example.com` })),
  ipv6: fc
    .array(chars(HEX, 1, 4), { minLength: 8, maxLength: 8 })
    .map((g) => g.join(":"))
    .map((ip) => ({ text: ip, secret: ip })),
  ipv4: fc
    .array(fc.integer({ min: 1, max: 254 }), { minLength: 4, maxLength: 4 })
    .map((o) => o.join("."))
    .map((ip) => ({ text: ip, secret: ip })),
};

/** How a logged text may carry the sample: as written, in JSON with `\/`, URL-encoded, form-encoded. */
const ENCODINGS: Record<string, (s: string) => string> = {
  plain: (s) => s,
  json: (s) => JSON.stringify(s).slice(1, -1).replaceAll("/", "\\/"),
  url: (s) => encodeURIComponent(s),
  form: (s) => new URLSearchParams({ q: s }).toString().slice(2),
};

/** Surrounding text that cannot glue onto a secret. */
const words = chars(`${LOWER} .!?`, 0, 30);
const sep = fc.constantFrom(" ", "\n", "\t", "; ");

describe("fuzz: every detector, every encoding", () => {
  it(
    "masks the secret and keeps the surrounding text (a URL-encoded one in a parameter keeps the next parameter)",
    async () => {
      const kinds = Object.keys(samples) as DetectorKind[];
      const sampled = fc.constantFrom(...kinds).chain((kind) => samples[kind].map((s) => ({ kind, ...s })));
      await fc.assert(
        fc.asyncProperty(
          sampled,
          fc.constantFrom(...Object.keys(ENCODINGS)),
          words,
          sep,
          sep,
          words,
          async (sample, encoding, before, s1, s2, after) => {
            const encode = ENCODINGS[encoding] as (s: string) => string;
            // Encoded text sits in a query parameter, with another parameter after it.
            const inner =
              encoding === "url" || encoding === "form" ? `?next=${encode(sample.text)}&page=2` : encode(sample.text);
            const text = `${before}${s1}${inner}${s2}${after}`;
            const out = (await scrubText(text, ALL_ON)).text;
            expect(out, `${sample.kind} ${encoding}`).not.toContain(encode(sample.secret));
            expect(out, `${sample.kind} ${encoding}`).toContain("[REDACTED:");
            expect(out.startsWith(`${before}${s1}`), `${sample.kind} ${encoding}: ${out}`).toBe(true);
            expect(out.endsWith(`${s2}${after}`), `${sample.kind} ${encoding}: ${out}`).toBe(true);
            if (inner.endsWith("&page=2")) expect(out, `${sample.kind} ${encoding}`).toContain("&page=2");
          },
        ),
        params(1000),
      );
    },
    TIMEOUT,
  );
});

// ---------------------------------------------------------------- no route answers 500

const ADMIN = "fuzz-admin-token-8c8c8c8c";
const deployment = {
  ...(env as unknown as Record<string, unknown>),
  ADMIN_TOKEN: ADMIN,
  SINKS: [{ name: "archive", type: "r2", binding: "LOGS_R2", prefix: "fuzz-routes" }],
  DELIVERY: "{}",
};

/** A value nested `n` deep, built without recursion. */
function nested(n: number, leaf: unknown): unknown {
  let v = leaf;
  for (let i = 0; i < n; i++) v = i % 2 === 0 ? [v] : { k: v };
  return v;
}

const deepText = fc
  .tuple(fc.integer({ min: 1, max: 200_000 }), fc.constantFrom("[", '{"a":'))
  .map(([n, open]) => `${open.repeat(n)}1${(open === "[" ? "]" : "}").repeat(n)}`);

const candidate = fc.record(
  {
    SINKS: fc.oneof(
      jsonValue,
      deepValue,
      // An option holding a value nested thousands deep: the secret resolver and any other walk over it.
      fc
        .integer({ min: 30, max: 5000 })
        .map((n) => [{ name: "h", type: "http", url: "https://x.example", headers: nested(n, "v") }]),
      fc.integer({ min: 30, max: 5000 }).map((n) => JSON.stringify([{ name: "h", type: "http", url: nested(n, 1) }])),
    ),
    ROUTES: fc.oneof(
      jsonValue,
      deepValue,
      fc.integer({ min: 30, max: 5000 }).map((n) => [{ sinks: nested(n, "h") }]),
    ),
    DELIVERY: fc.oneof(jsonValue, anyString),
    SCRUB: fc.oneof(jsonValue, anyString, deepValue),
    LIMITS: fc.oneof(jsonValue, anyString),
  },
  { requiredKeys: [] },
);

/** encodeURIComponent, or the text as is when it holds a lone surrogate (sent raw, as a client may). */
const uri = (s: string) => {
  try {
    return encodeURIComponent(s);
  } catch {
    return s;
  }
};

const safeJson = (x: unknown) => {
  try {
    return JSON.stringify(x) ?? "null";
  } catch {
    return "null";
  }
};

const body = fc.oneof(
  { arbitrary: anyString, weight: 3 },
  { arbitrary: fc.oneof(anyValue, jsonValue, deepValue).map(safeJson), weight: 3 },
  { arbitrary: deepText, weight: 2 },
  { arbitrary: candidate.map(safeJson), weight: 6 },
  {
    arbitrary: fc.record({ events: fc.array(traceItem, { maxLength: 3 }), config: candidate }).map(safeJson),
    weight: 2,
  },
  { arbitrary: fc.array(traceItem, { maxLength: 4 }).map(safeJson), weight: 2 },
  { arbitrary: fc.array(traceItem, { maxLength: 4 }).map((xs) => xs.map(safeJson).join("\n")), weight: 1 },
  { arbitrary: fc.integer({ min: 1_000_000, max: 1_200_000 }).map((n) => `[${"1,".repeat(n / 2)}1]`), weight: 1 },
  { arbitrary: anyString.map((s) => `token=${uri(s)}`), weight: 1 },
);

const ROUTES: [string, string][] = [
  ["GET", "/health"],
  ["GET", "/status"],
  ["GET", "/"],
  ["GET", "/records"],
  ["POST", "/config/check"],
  ["POST", "/routes/test"],
  ["POST", "/replay"],
  ["POST", "/login"],
  ["POST", "/logout"],
  ["POST", "/no/such/route"],
];

describe("fuzz: no route answers 500", () => {
  it(
    "any body, depth, size, content type and credential, on every route",
    async () => {
      const app = createApp();
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...ROUTES),
          body,
          fc.constantFrom(
            "application/json",
            "application/x-ndjson",
            "application/x-www-form-urlencoded",
            "text/plain",
            "",
          ),
          fc.oneof(
            { arbitrary: fc.constant(`Bearer ${ADMIN}`), weight: 6 },
            { arbitrary: fc.constantFrom("Bearer wrong", "", "Basic x"), weight: 2 },
          ),
          fc.oneof(
            fc.constant(""),
            anyString.map((s) => `?minutes=${uri(s)}&limit=${uri(s)}`),
          ),
          async ([method, path], text, type, authorization, query) => {
            const headers: Record<string, string> = { "cf-connecting-ip": crypto.randomUUID() };
            if (type) headers["content-type"] = type;
            if (authorization) headers.authorization = authorization;
            const ctx = createExecutionContext();
            const res = await app.request(
              `${path}${query}`,
              method === "GET" ? { headers } : { method, headers, body: text },
              deployment,
              ctx,
            );
            await waitOnExecutionContext(ctx);
            const answer = await res.text();
            expect(res.status, `${method} ${path}: ${answer.slice(0, 300)}`).not.toBe(500);
            // The last-resort handler is not an answer either: each route answers its own errors.
            expect(answer, `${method} ${path}`).not.toContain("the request could not be handled");
          },
        ),
        params(100, 0.05),
      );
    },
    TIMEOUT,
  );
});
