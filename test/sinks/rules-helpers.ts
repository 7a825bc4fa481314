/**
 * Helpers for the alert rules' tests: exception TraceItems, the rule's
 * object (the real local Durable Object), the receiver's requests as they
 * arrive, and `later`, which moves the object's clock fields back and runs
 * its alarm, as if that much time had passed.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { TailfanAlerts } from "../../src/index";
import type { ReceivedRequest } from "../support/received";
import { received, serialized, T0, traceItem } from "./helpers";

export const vars = env as unknown as Record<string, unknown>;
const ns = vars.TAILFAN_ALERTS as DurableObjectNamespace<TailfanAlerts>;
export const stubOf = (rule: string) => ns.get(ns.idFromName(rule));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One invocation that threw `name: message` in `script`, with no other logs. */
export function thrown(message: string, opts: { name?: string; script?: string; at?: number } = {}) {
  return traceItem({
    script: opts.script ?? "shop-api",
    outcome: "exception",
    eventTimestamp: opts.at ?? T0,
    logs: [],
    exceptions: [{ name: opts.name ?? "TypeError", message }],
  });
}

/** The receiver's requests for `label`, once there are at least `n` (or the time is up). */
export async function waitFor(label: string, n: number, ms = 8000): Promise<ReceivedRequest[]> {
  const until = Date.now() + ms;
  for (;;) {
    const got = await received(label);
    if (got.length >= n || Date.now() > until) return got;
    await sleep(50);
  }
}

/** The requests for `label` once nothing more has come for a while: none arrives that should not. */
export async function settled(label: string, quietMs = 400): Promise<ReceivedRequest[]> {
  let last = -1;
  for (;;) {
    await sleep(quietMs);
    const got = await received(label);
    if (got.length === last) return got;
    last = got.length;
  }
}

/** Moves the rule's clock fields back by `minutes`, then runs its alarm: as if that much time had passed. */
export async function later(rule: string, minutes: number): Promise<void> {
  const ms = minutes * 60_000;
  const stub = stubOf(rule);
  await runInDurableObject(stub, (_instance, state) => {
    state.storage.sql.exec(
      "UPDATE groups SET window_start = window_start - ?, last_arrival = last_arrival - ?",
      ms,
      ms,
    );
    state.storage.sql.exec("UPDATE buckets SET minute = minute - ?", minutes);
  });
  await runInDurableObject(stub, (instance) => instance.alarm());
}

export const slackText = (r: ReceivedRequest) => (JSON.parse(r.body) as { text: string }).text;

/** Sends records through a rule sink the way the core does: encode, then send. */
export async function deliver(
  sink: { encode(b: never): unknown; send(p: never, s: AbortSignal): Promise<unknown> },
  items: Record<string, unknown>[],
) {
  const payload = sink.encode(serialized(items) as never);
  return sink.send(payload as never, AbortSignal.timeout(10_000));
}
