import { createApp } from "./app";
import { handleTail } from "./tail";

export type Env = Record<string, unknown>;

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
  tail(events, env, ctx) {
    // Delivery runs inside ctx.waitUntil; tail() itself returns at once and never throws.
    void handleTail(events, env, ctx);
  },
} satisfies ExportedHandler<Env>;
