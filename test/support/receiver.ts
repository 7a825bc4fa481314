/**
 * A local stand-in for third-party HTTP backends. It records every request
 * (gunzipping bodies), answers according to the path, and serves what it
 * received for inspection:
 *
 *   POST /ok/<label>                 200
 *   POST /status/<code>/<label>      that status (`?retryAfter=N` adds Retry-After)
 *   POST /hang/<label>               never answers (until the client gives up)
 *   GET  /__received?label=<label>   the recorded requests, as JSON
 *   POST /__reset                    forget everything
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import type { ReceivedRequest } from "./received";

export type { ReceivedRequest };

export interface Receiver {
  url: string;
  port: number;
  received: ReceivedRequest[];
  close(): Promise<void>;
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
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/__received") {
      const label = url.searchParams.get("label");
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(label === null ? received : received.filter((r) => r.label === label)));
      return;
    }
    if (url.pathname === "/__reset") {
      received.length = 0;
      res.end("ok");
      return;
    }
    const raw = await readBody(req);
    const gz = req.headers["content-encoding"] === "gzip";
    const parts = url.pathname.split("/").filter(Boolean);
    const mode = parts[0] ?? "ok";
    const label = mode === "status" ? (parts[2] ?? "") : (parts[1] ?? "");
    const headers: Record<string, string> = {};
    for (const [k, val] of Object.entries(req.headers)) if (typeof val === "string") headers[k] = val;
    received.push({
      label,
      method: req.method ?? "",
      path: url.pathname,
      headers,
      body: (gz ? gunzipSync(raw) : raw).toString("utf8"),
      wireBytes: raw.length,
    });
    if (mode === "hang") return; // never answer
    if (mode === "status") {
      const retryAfter = url.searchParams.get("retryAfter");
      if (retryAfter !== null) res.setHeader("retry-after", retryAfter);
      res.statusCode = Number(parts[1] ?? 500);
      res.end(`answered ${res.statusCode}`);
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
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
