/**
 * A local stand-in for third-party HTTP backends. It records every request
 * (gunzipping bodies), answers according to the path, and serves what it
 * received for inspection:
 *
 *   POST /ok/<label>                 200
 *   POST /status/<code>/<label>      that status (`?retryAfter=N` adds Retry-After)
 *   POST /tattle/<code>/<label>      that status, with a body quoting the request's credentials and URL, as
 *                                    careless backends do
 *   POST /hang/<label>               never answers (until the client gives up)
 *   POST /ctl/<label>                answers as the behaviour set for <label> says (200 when none is set)
 *   POST /__behave?label=<label>&mode=<mode>[&retryAfter=N][&for=N]
 *                                    sets <label>'s behaviour: mode `ok`, a status code (`500`, `429`, ...),
 *                                    `hang` (never answer) or `drop` (destroy the socket without answering);
 *                                    `retryAfter` adds Retry-After; `for=N` applies it to the next N
 *                                    requests, then back to ok. Can be changed while requests flow.
 *   GET  /__received?label=<label>   the recorded requests, as JSON
 *   POST /__reset                    forget everything (requests and behaviours)
 *
 * Every request is recorded, including the ones answered with an error, hung
 * or dropped, with `at` (when it was read) and `answer` (what it got).
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import type { ReceivedRequest } from "./received";

export type { ReceivedRequest };

/** How `/ctl/<label>` answers. */
export interface Behaviour {
  /** `ok` (200), any status code, `hang` (never answer) or `drop` (destroy the socket). */
  mode: "ok" | "hang" | "drop" | number;
  /** Retry-After header value to send with a status answer. */
  retryAfter?: string;
  /** Apply to the next N requests only, then back to ok. Unlimited when absent. */
  for?: number;
}

export interface Receiver {
  url: string;
  port: number;
  received: ReceivedRequest[];
  /** Sets (or with `null` clears) the behaviour of `/ctl/<label>`; the same as POST /__behave. */
  behave(label: string, behaviour: Behaviour | null): void;
  close(): Promise<void>;
}

/** Parses a behaviour from /__behave's query; throws with a reason on a bad one. */
function parseBehaviour(q: URLSearchParams): Behaviour {
  const raw = q.get("mode") ?? "ok";
  let mode: Behaviour["mode"];
  if (raw === "ok" || raw === "hang" || raw === "drop") mode = raw;
  else if (/^[1-5]\d\d$/.test(raw)) mode = Number(raw);
  else throw new Error(`mode must be ok, hang, drop or a status code, got ${JSON.stringify(raw)}`);
  const b: Behaviour = { mode };
  const retryAfter = q.get("retryAfter");
  if (retryAfter !== null) b.retryAfter = retryAfter;
  const n = q.get("for");
  if (n !== null) {
    if (!/^\d+$/.test(n)) throw new Error(`for must be a count, got ${JSON.stringify(n)}`);
    b.for = Number(n);
  }
  return b;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

export async function startReceiver(port = 0): Promise<Receiver> {
  const received: ReceivedRequest[] = [];
  const behaviours = new Map<string, Behaviour>();
  const behave = (label: string, b: Behaviour | null) => {
    if (b === null || b.mode === "ok" || b.for === 0) behaviours.delete(label);
    else behaviours.set(label, { ...b });
  };
  /** The behaviour for this request of `label`, counting it against `for`. */
  const take = (label: string): Behaviour => {
    const b = behaviours.get(label);
    if (!b) return { mode: "ok" };
    if (b.for !== undefined) {
      b.for--;
      if (b.for <= 0) behaviours.delete(label);
    }
    return b;
  };
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/__behave") {
      const label = url.searchParams.get("label");
      try {
        if (label === null || label === "") throw new Error("label is required");
        const b = parseBehaviour(url.searchParams);
        behave(label, b);
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ label, ...b }));
      } catch (err) {
        res.statusCode = 400;
        res.end(err instanceof Error ? err.message : String(err));
      }
      return;
    }
    if (url.pathname === "/__received") {
      const label = url.searchParams.get("label");
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(label === null ? received : received.filter((r) => r.label === label)));
      return;
    }
    if (url.pathname === "/__reset") {
      received.length = 0;
      behaviours.clear();
      res.end("ok");
      return;
    }
    const raw = await readBody(req);
    const gz = req.headers["content-encoding"] === "gzip";
    const parts = url.pathname.split("/").filter(Boolean);
    const route = parts[0] ?? "ok";
    const label = route === "status" || route === "tattle" ? (parts[2] ?? "") : (parts[1] ?? "");
    // What this request gets: from the path, or from the label's behaviour under /ctl/.
    let b: Behaviour;
    if (route === "ctl") b = take(label);
    else if (route === "hang") b = { mode: "hang" };
    else if (route === "status" || route === "tattle") {
      b = { mode: Number(parts[1] ?? 500) };
      const retryAfter = url.searchParams.get("retryAfter");
      if (retryAfter !== null) b.retryAfter = retryAfter;
    } else b = { mode: "ok" };
    const headers: Record<string, string> = {};
    for (const [k, val] of Object.entries(req.headers)) if (typeof val === "string") headers[k] = val;
    let body: string;
    try {
      body = (gz ? gunzipSync(raw) : raw).toString("utf8");
    } catch {
      body = raw.toString("utf8");
    }
    received.push({
      label,
      method: req.method ?? "",
      path: url.pathname,
      headers,
      body,
      wireBytes: raw.length,
      at: Date.now(),
      answer: b.mode === "ok" ? 200 : b.mode,
    });
    if (b.mode === "hang") return; // never answer
    if (b.mode === "drop") {
      req.socket.destroy();
      return;
    }
    if (b.mode !== "ok") {
      if (b.retryAfter !== undefined) res.setHeader("retry-after", b.retryAfter);
      res.statusCode = b.mode;
      const creds = [req.headers.authorization, req.headers["dd-api-key"]].filter(Boolean).join(" ");
      res.end(route === "tattle" ? `invalid credentials ${creds} for ${url.href}` : `answered ${res.statusCode}`);
      return;
    }
    res.statusCode = 200;
    res.end("ok");
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const actualPort = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    received,
    behave,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
