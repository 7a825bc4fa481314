import { createApp } from "./app";
import { runScheduled } from "./pipeline";
import { handleQueue } from "./queue";
import { handleTailStream } from "./stream";
import { handleTail } from "./tail";

export { TailfanAlerts } from "./alerts/object";
export { TailfanStats } from "./stats";

export type Env = Record<string, unknown>;

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
  tail(events, env, ctx) {
    // Delivery runs inside ctx.waitUntil; tail() itself returns at once and never throws.
    void handleTail(events, env, ctx);
  },
  tailStream(onset, env, ctx) {
    // The returned handler gets the invocation's later events; delivery starts at its outcome.
    return handleTailStream(onset, env, ctx);
  },
  async queue(batch, env) {
    await handleQueue(batch, env);
  },
  scheduled(_controller, env, ctx) {
    // The cron drains the spool: buffered records the work queue refused.
    ctx.waitUntil(runScheduled(env));
  },
} satisfies ExportedHandler<Env>;
