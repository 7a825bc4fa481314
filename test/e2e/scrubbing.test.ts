/**
 * Default scrubbing on the real runtime: a producer logs a JWT, an AWS access
 * key, a card number and a bearer token (in messages, objects, an uncaught
 * exception, the URL), and none of them reaches any sink.
 */
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogRecord } from "../../src/record";
import { type Receiver, startReceiver } from "../support/receiver";
import { type Bundle, bundleTailfan, readNdjsonObjects, until } from "./helpers";

const JWT =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
const AWS_KEY = "AKIAIOSFODNN7EXAMPLE";
const CARD = "4111 1111 1111 1111";
const BEARER = "Bearer s3cr3tT0kenValue9876";
const PLANTED = [JWT, AWS_KEY, CARD, CARD.replaceAll(" ", ""), "s3cr3tT0kenValue9876"];

const PRODUCER = `export default {
  async fetch(request) {
    const url = new URL(request.url);
    console.log("user token", ${JSON.stringify(JWT)});
    console.info("aws config", { accessKeyId: ${JSON.stringify(AWS_KEY)}, region: "eu-west-1" });
    console.warn("charging card ${CARD} for order 1234567890123456");
    console.error("upstream said: Authorization: ${BEARER}");
    if (url.pathname === "/crash") throw new Error("bad token ${JWT}");
    return new Response("ok");
  },
};`;

let mf: Miniflare;
let receiver: Receiver;
let bundle: Bundle;

beforeAll(async () => {
  receiver = await startReceiver();
  bundle = await bundleTailfan();
  const sinks = [
    { name: "archive", type: "r2", binding: "LOGS_R2", prefix: "scrub-e2e" },
    { name: "collector", type: "http", url: `${receiver.url}/ok/scrub`, format: "ndjson" },
  ];
  mf = new Miniflare(
    convertV4MiniflareOptions({
      workers: [
        { name: "producer", modules: true, script: PRODUCER, compatibilityDate: "2025-11-01", tails: ["tailfan"] },
        {
          name: "tailfan",
          modules: true,
          scriptPath: bundle.script,
          modulesRoot: bundle.dir,
          compatibilityDate: "2025-11-01",
          bindings: { SINKS: JSON.stringify(sinks) },
          r2Buckets: ["LOGS_R2"],
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

describe("default scrubbing", () => {
  it("lets no planted secret through to any sink, and says what it removed", async () => {
    for (const path of [`/pay?card=${encodeURIComponent(CARD)}&access_token=${JWT}`, "/crash"]) {
      await (await mf.dispatchFetch(`http://localhost${path}`, { headers: { "x-debug": BEARER } })).text();
    }
    const bucket = await mf.getR2Bucket("LOGS_R2", "tailfan");
    const archived = await until(
      "both invocations archived",
      () => readNdjsonObjects<LogRecord>(bucket, "scrub-e2e/"),
      (rs) => rs.filter((r) => r.type === "invocation").length >= 2,
    );
    await until(
      "the collector",
      () => receiver.received.filter((r) => r.label === "scrub"),
      // Both invocations' records, in one request or two (an isolate's invocations share deliveries).
      (rs) => rs.flatMap((r) => r.body.split("\n")).filter((line) => line.includes('"type":"invocation"')).length >= 2,
    );
    const sent = receiver.received.filter((r) => r.label === "scrub").map((r) => r.body);
    const everything = [JSON.stringify(archived), ...sent].join("\n");
    for (const secret of PLANTED) expect(everything, secret).not.toContain(secret);
    // What was there is marked, so a reader knows why a value is missing.
    for (const kind of ["jwt", "aws_access_key", "card", "bearer"]) expect(everything).toContain(`[REDACTED:${kind}]`);
    // The order id that only looks like a card is kept.
    expect(everything).toContain("1234567890123456");
    expect(archived.some((r) => r.type === "exception" && r.message.startsWith("bad token [REDACTED:jwt]"))).toBe(true);
  });
});
