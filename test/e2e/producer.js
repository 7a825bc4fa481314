// The producer Worker of the end-to-end test. Its TraceItems come from workerd
// itself; each route has a known set of records so the test can count them.
import { DurableObject, WorkerEntrypoint } from "cloudflare:workers";

export class Greeter extends WorkerEntrypoint {
  async greet(name) {
    console.info("greeting", name);
    return `hello ${name}`;
  }
}

export class Clock extends DurableObject {
  async fetch() {
    console.log("clock set");
    await this.ctx.storage.setAlarm(Date.now() + 20);
    return new Response("set");
  }
  async alarm() {
    console.warn("clock rang");
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/ok":
        console.log("served", { path: url.pathname, n: Number(url.searchParams.get("n")) });
        return new Response("ok");
      case "/many": {
        // One invocation with many records: `n` log lines of about `size` characters each.
        const n = Number(url.searchParams.get("n") ?? 10);
        const pad = "x".repeat(Number(url.searchParams.get("size") ?? 20));
        for (let i = 0; i < n; i++) console.log("line", i, pad);
        return new Response("ok");
      }
      case "/warn":
        console.warn("slow upstream", 1234);
        return new Response("ok, slowly");
      case "/throw":
        console.log("about to fail");
        throw new Error(`checkout failed for ${url.searchParams.get("n")}`);
      case "/500":
        console.error("db down", new Error("connection refused"));
        return new Response("unavailable", { status: 500 });
      case "/404":
        return new Response("no such page", { status: 404 });
      case "/enqueue":
        await env.JOBS.send({ job: url.searchParams.get("n") });
        return new Response("queued");
      case "/rpc":
        return new Response(await env.GREETER.greet("ada"));
      case "/alarm":
        return env.CLOCK.get(env.CLOCK.idFromName("c")).fetch(request);
      default:
        return new Response("not routed", { status: 404 });
    }
  },
  async scheduled(controller) {
    console.log("nightly job", controller.cron);
  },
  async queue(batch) {
    for (const m of batch.messages) console.log("job", m.body.job);
  },
};
