/**
 * Safety properties of the scrubbing (src/scrub/) and size limits
 * (src/limits/) stages.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, limitRecord } from "../../src/limits";
import { normalizeTraceItems } from "../../src/normalize";
import { CONTEXT_KEYS } from "../../src/record";
import { compileScrubber, DEFAULT_SCRUB, scrubRecords } from "../../src/scrub";
import { utf8Length } from "../../src/text";
import { anyString, smallTraceBatch, traceBatch } from "./arbitraries";
import { params, TIMEOUT } from "./settings";

const NOW = Date.UTC(2026, 10, 21, 8, 0, 0);

// ---------------------------------------------------------------- planted secrets

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const b64url = (min: number, max: number) =>
  fc.array(fc.constantFrom(...B64URL), { minLength: min, maxLength: max }).map((c) => c.join(""));
const base64json = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");

/** A JWT: header.payload.signature, base64url. */
const jwt = fc
  .tuple(fc.constantFrom("HS256", "RS256", "ES256"), fc.string({ minLength: 1, maxLength: 12 }), b64url(32, 64))
  .map(([alg, sub, sig]) => `${base64json({ alg, typ: "JWT" })}.${base64json({ sub, iat: 1700000000 })}.${sig}`);

/** An AWS access key id: AKIA and 16 upper-case letters or digits 2-7. */
const awsKey = fc
  .array(fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), { minLength: 16, maxLength: 16 })
  .map((c) => `AKIA${c.join("")}`);

/** A Luhn-valid 16-digit Visa-like card number, plain or grouped with spaces or dashes. */
const card = fc
  .tuple(fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 14, maxLength: 14 }), fc.constantFrom("", " ", "-"))
  .map(([digits, sep]) => {
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
  });

/** A bearer token (the secret is the token; "Bearer " is kept by any scrubber). */
const bearer = b64url(24, 48).map((t) => ({ text: `Bearer ${t}`, secret: t, bearer: true }));

const secret = fc.oneof(
  jwt.map((s) => ({ text: s, secret: s })),
  awsKey.map((s) => ({ text: s, secret: s })),
  card.map((s) => ({ text: s, secret: s })),
  bearer,
);

/** What separates a secret from the text around it. */
const sep = fc.constantFrom(" ", "\n", '"', "'", "=", ":", ",", "(", ")", "[", "]", "\t", "; ");
/** Filler that cannot glue onto a secret: fuzzed text ending (or starting) with a separator. */
const filler = anyString;

const planted = fc
  .tuple(secret, fc.constantFrom("message", "args", "stack", "url", "header", "diagnostic"), filler, sep, sep, filler)
  .map(([s, where, before, s1, s2, after]) => {
    const text = `${before}${s1}${s.text}${s2}${after}`;
    const item: Record<string, unknown> = {
      event: {
        request: { url: "https://api.example.com/v1/items", method: "GET", headers: {} },
        response: { status: 200 },
      },
      eventTimestamp: NOW,
      outcome: "ok",
      scriptName: "shop-api",
      logs: [],
      exceptions: [],
      diagnosticsChannelEvents: [],
    };
    if (where === "message") item.logs = [{ level: "error", message: [text], timestamp: NOW }];
    else if (where === "args")
      item.logs = [{ level: "log", message: ["ctx", { deep: [{ value: text }] }], timestamp: NOW }];
    else if (where === "stack")
      item.exceptions = [
        { name: "Error", message: "boom", stack: `Error: boom${text}\n    at f (w.js:1:1)`, timestamp: NOW },
      ];
    else if (where === "url")
      // A bare token is only a secret by its name: in a URL it goes in access_token; the others in any parameter.
      (item.event as { request: { url: string } }).request.url =
        `https://api.example.com/v1/items?${"bearer" in s ? "access_token" : "q"}=${encodeURIComponent(s.secret)}&next=1`;
    else if (where === "header")
      (item.event as { request: { headers: Record<string, string> } }).request.headers = { "x-debug": text };
    else item.diagnosticsChannelEvents = [{ channel: "app", message: { note: text }, timestamp: NOW }];
    return { item, secret: s.secret, where, before: s1 };
  });

/** The forms in which a secret could show up in JSON output. */
function forms(secret: string): string[] {
  const out = new Set([secret, encodeURIComponent(secret)]);
  const digits = secret.replace(/[ -]/g, "");
  if (/^\d{16}$/.test(digits)) out.add(digits);
  return [...out];
}

describe("fuzz: scrubbing", () => {
  it(
    "planted secrets (JWT, AWS key, card number, bearer token) never survive DEFAULT_SCRUB",
    async () => {
      const scrubber = compileScrubber(DEFAULT_SCRUB);
      await fc.assert(
        fc.asyncProperty(planted, smallTraceBatch, async (plant, others) => {
          const records = normalizeTraceItems([...others, plant.item], NOW);
          const { records: out } = await scrubRecords(records, scrubber);
          const json = JSON.stringify(out);
          for (const f of forms(plant.secret)) expect(json.includes(f), `${plant.where}: ${f} survived`).toBe(false);
        }),
        params(200, 0.2),
      );
    },
    TIMEOUT,
  );
});

// A secret right after a tab or line break inside a non-string console argument reaches `message` as JSON
// (`\teyJ...`), glued to a letter: the detectors also match after such an escape.
describe("fuzz: scrub regressions found by this fuzzer", () => {
  it("a JWT right after a tab inside an object console argument is scrubbed in args and message", async () => {
    const token =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIiwiaWF0IjoxNzAwMDAwMDAwfQ.Xk3_f9aQ2LmZp0Rt7uVw-Yb8cDe1FgHi";
    const item = {
      event: {},
      outcome: "ok",
      logs: [{ level: "log", message: ["ctx", { v: `\t${token}` }], timestamp: NOW }],
    };
    const { records } = await scrubRecords(normalizeTraceItems([item], NOW), compileScrubber(DEFAULT_SCRUB));
    expect(JSON.stringify(records)).not.toContain(token);
  });

  it("a card number grouped with spaces in a URL query (%20) is scrubbed", async () => {
    const item = {
      event: {
        request: { url: "https://shop.example/pay?card=4000%200000%200000%200002", method: "GET", headers: {} },
      },
      outcome: "ok",
      logs: [],
    };
    const { records } = await scrubRecords(normalizeTraceItems([item], NOW), compileScrubber(DEFAULT_SCRUB));
    expect(JSON.stringify(records)).not.toContain("4000%200000%200000%200002");
  });
});

// ---------------------------------------------------------------- limits

/** The invocation context's fields, which are never cut. */
const CONTEXT = new Set<string>(CONTEXT_KEYS);

describe("fuzz: size limits", () => {
  it(
    "every record cut by limitRecord(DEFAULT_LIMITS) is valid JSON within maxRecordBytes",
    () => {
      const max = DEFAULT_LIMITS.maxRecordBytes;
      fc.assert(
        fc.property(traceBatch, (events) => {
          for (const r of normalizeTraceItems(events, NOW)) {
            const { record } = limitRecord(r, DEFAULT_LIMITS);
            const line = JSON.stringify(record);
            expect(JSON.parse(line)).toBeTypeOf("object");
            expect(record.message.length).toBeLessThanOrEqual(DEFAULT_LIMITS.maxMessageChars);
            // The context is never cut: only a record whose context alone nearly fills the limit may stay over it.
            const context = Object.fromEntries(Object.entries(record).filter(([k]) => CONTEXT.has(k)));
            if (utf8Length(JSON.stringify(context)) + 1024 > max) continue;
            expect(utf8Length(line)).toBeLessThanOrEqual(max);
          }
        }),
        params(200, 0.2),
      );
    },
    TIMEOUT,
  );
});
