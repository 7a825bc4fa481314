// A counters object that never answers a write and throws on every read: a
// stand-in for a TailfanStats Durable Object that is overloaded or broken.
import { DurableObject } from "cloudflare:workers";

export class BrokenStats extends DurableObject {
  add() {
    return new Promise(() => {});
  }
  snapshot() {
    throw new Error("stats storage is broken");
  }
  errors() {
    throw new Error("stats storage is broken");
  }
  recent() {
    throw new Error("stats storage is broken");
  }
}

export default {
  fetch() {
    return new Response("broken stats");
  },
};
