/**
 * tailfan-demo-producer: each route makes a different kind of TraceItem for
 * tailfan to normalize and route. Try them with curl (see demo/README.md).
 *
 *   /            200, a log and an info line (with an object)
 *   /warn        200 with a console.warn
 *   /error       throws an Error (uncaught exception)
 *   /reject      200, but a background task (ctx.waitUntil) fails
 *   /500         console.error, then a 500 response
 *   /404         a 404 response, no logs
 *   /burst?n=10  n log lines in one invocation (at most 1000)
 *
 * The cron trigger runs `scheduled`, which logs a line; it throws when the
 * cron expression is "fail", so a failing cron can be tried out locally.
 *
 * In `wrangler dev`, an error thrown by fetch() is caught by wrangler's dev
 * middleware and turned into a 500, so locally /error arrives as a 500
 * with outcome "ok". Deployed, it is an uncaught exception (outcome
 * "exception"). /reject and a failing cron are exceptions in both.
 */

export default {
  async fetch(request, _env, ctx): Promise<Response> {
    const url = new URL(request.url);

    switch (url.pathname) {
      case "/": {
        console.log("hello from the demo producer");
        console.info("request", { method: request.method, path: url.pathname, ua: request.headers.get("user-agent") });
        return new Response("ok\n");
      }

      case "/warn": {
        console.warn("cache miss for", url.searchParams.get("key") ?? "user:42", "- falling back to origin");
        return new Response("warned\n");
      }

      case "/error": {
        console.log("about to fail");
        // Not caught: the TraceItem's outcome is "exception" and it carries
        // the error's name, message and stack.
        throw new Error("demo: something broke");
      }

      case "/reject": {
        // The response is fine, but the rejection is reported as an exception.
        ctx.waitUntil(Promise.reject(new Error("demo: background task failed")));
        return new Response("accepted\n");
      }

      case "/500": {
        console.error("upstream failed", { upstream: "db", status: 503 });
        return new Response("upstream failed\n", { status: 500 });
      }

      case "/404":
        return new Response("not found\n", { status: 404 });

      case "/burst": {
        const n = Math.min(Math.max(Number(url.searchParams.get("n") ?? 10) || 0, 0), 1000);
        for (let i = 1; i <= n; i++) console.log(`burst line ${i} of ${n}`);
        return new Response(`logged ${n} lines\n`);
      }

      default:
        return new Response("routes: / /warn /error /reject /500 /404 /burst?n=10\n", { status: 404 });
    }
  },

  async scheduled(controller): Promise<void> {
    console.log("cron fired", {
      cron: controller.cron,
      scheduledTime: new Date(controller.scheduledTime).toISOString(),
    });
    if (controller.cron === "fail") throw new Error("demo: cron job failed");
  },
} satisfies ExportedHandler;
