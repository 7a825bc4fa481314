// The producer Worker of the streaming-tail end-to-end test. It is tailed both
// ways at once (`tails` and `streamingTails`), so the records the streaming
// tail assembles can be compared with tail()'s for the same invocations.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/ok":
        console.log("served", { n: Number(url.searchParams.get("n")) });
        return new Response("ok");
      case "/throw":
        console.warn("about to fail");
        throw new Error(`checkout failed for ${url.searchParams.get("n")}`);
      case "/sub": {
        // A subrequest: its own span, a child of the invocation's.
        const res = await fetch(`${env.UPSTREAM}/ok/upstream?token=sub-secret-token`);
        await res.arrayBuffer();
        console.info("upstream answered", res.status);
        return new Response("proxied", { status: 502 });
      }
      default:
        return new Response("not routed", { status: 404 });
    }
  },
};
