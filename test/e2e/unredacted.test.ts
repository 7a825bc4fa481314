/**
 * `unredacted: true` on the real runtime: only the sink that opts in sees the
 * URL and headers the runtime redacted (still scrubbed); the sink beside it
 * keeps the runtime's redaction. Both get the same records otherwise.
 */
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InvocationRecord, LogRecord } from "../../src/record";
import { type Receiver, startReceiver } from "../support/receiver";
import { type Bundle, bundleTailfan, until } from "./helpers";

let mf: Miniflare;
let receiver: Receiver;
let bundle: Bundle;

beforeAll(async () => {
  receiver = await startReceiver();
  bundle = await bundleTailfan();
  const sinks = [
    { name: "plain", type: "http", url: `${receiver.url}/ok/redacted`, format: "ndjson" },
    { name: "open", type: "http", url: `${receiver.url}/ok/unredacted`, format: "ndjson", unredacted: true },
  ];
  mf = new Miniflare(
    convertV4MiniflareOptions({
      workers: [
        {
          name: "producer",
          modules: true,
          script: `export default { fetch() { console.log("hello"); return new Response("ok"); } };`,
          compatibilityDate: "2025-11-01",
          tails: ["tailfan"],
        },
        {
          name: "tailfan",
          modules: true,
          scriptPath: bundle.script,
          modulesRoot: bundle.dir,
          compatibilityDate: "2025-11-01",
          bindings: {
            SINKS: JSON.stringify(sinks),
            DELIVERY: JSON.stringify({ stats: "TAILFAN_STATS" }),
            ADMIN_TOKEN,
          },
          durableObjects: { TAILFAN_STATS: { className: "TailfanStats", useSQLite: true } },
        },
      ],
    }),
  );
  await mf.ready;
});

afterAll(async () => {
  await mf?.dispose();
  await receiver?.close();
  bundle?.remove();
});

const HEX_ID = "0123456789abcdef0123456789abcdef";
const ADMIN_TOKEN = "unredacted-admin-2b7f";

/** What GET /records answers (the part read here). */
interface RecentAnswer {
  records: { type: string; sinks: string[]; line: string | null }[];
}

function recordsAt(label: string): LogRecord[] {
  return receiver.received
    .filter((r) => r.label === label)
    .flatMap((r) =>
      r.body
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as LogRecord),
    );
}

describe("unredacted: true", () => {
  it("gives the opted-in sink the runtime's unredacted URL and headers, and no one else", async () => {
    const res = await mf.dispatchFetch(`http://localhost/orders?id=${HEX_ID}`, {
      headers: { "x-api-key": "plainvalue123", cookie: "session=abc" },
    });
    await res.text();
    await until(
      "both sinks",
      () => Math.min(recordsAt("redacted").length, recordsAt("unredacted").length),
      (n) => n >= 2,
    );
    const [plain, open] = [recordsAt("redacted"), recordsAt("unredacted")];
    expect(plain.map((r) => r.id)).toEqual(open.map((r) => r.id));

    const headersOf = (r: LogRecord | undefined) =>
      ((r as InvocationRecord).event as { request: { headers: Record<string, string> } }).request.headers;
    const plainInv = plain.find((r) => r.type === "invocation");
    const openInv = open.find((r) => r.type === "invocation");
    // The runtime redacts the key, the cookie and the hex id in the query; the plain sink keeps that.
    expect(headersOf(plainInv)["x-api-key"]).toBe("REDACTED");
    expect(headersOf(plainInv).cookie).toBe("REDACTED");
    expect(plainInv?.url).toContain("id=REDACTED");
    for (const r of plain) expect(JSON.stringify(r)).not.toContain(HEX_ID);
    // The opted-in sink sees them, on the invocation record and in every record's url.
    expect(headersOf(openInv)["x-api-key"]).toBe("plainvalue123");
    // Scrubbing still applies to it: the session value is a secret-named parameter.
    expect(headersOf(openInv).cookie).toBe("session=[REDACTED:url_param]");
    for (const r of open) expect(r.url).toBe(`http://localhost/orders?id=${HEX_ID}`);
  });

  it("keeps the redacted, scrubbed records for the dashboard's latest records, never the opted-in view", async () => {
    const tailfan = await mf.getWorker("tailfan");
    const answer = await until(
      "the latest records",
      async () => {
        const res = await tailfan.fetch("http://tailfan/records?limit=100", {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        return (await res.json()) as RecentAnswer;
      },
      (a) => a.records.some((r) => r.type === "invocation"),
    );
    const text = JSON.stringify(answer);
    expect(text).not.toContain(HEX_ID);
    expect(text).not.toContain("plainvalue123");
    const inv = answer.records.find((r) => r.type === "invocation");
    expect(inv?.sinks).toEqual(["plain", "open"]);
    expect(JSON.parse(inv?.line ?? "{}").url).toContain("id=REDACTED");
  });
});
