/**
 * The streaming tail (`tailStream`): the runtime sends one invocation's events
 * as they happen (onset, logs, spans, return, outcome) instead of one
 * TraceItem after it ends. They are assembled (src/stream/assemble.ts) and
 * delivered through the same pipeline as tail(), so every sink, route, scrub rule and
 * counter applies as is.
 */

import { runTail } from "../pipeline";
import { InvocationAssembly } from "./assemble";

export { InvocationAssembly };

type Event = TailStream.TailEvent<TailStream.EventType>;

/**
 * The `tailStream` handler: returns the function the runtime calls with each
 * later event of the invocation. At the outcome the invocation's records go
 * through the pipeline as tail()'s do (runTail), inside waitUntil; the
 * returned promise is that delivery. Never throws.
 */
export function handleTailStream(
  onset: TailStream.TailEvent<TailStream.Onset>,
  env: Record<string, unknown>,
  ctx: Pick<ExecutionContext, "waitUntil">,
): TailStream.TailEventHandler {
  let assembly: InvocationAssembly | null = null;
  try {
    assembly = new InvocationAssembly(onset);
  } catch (err) {
    console.error("tailfan: internal error in tailStream(); events not delivered", err);
  }
  return (event) => {
    try {
      if (!assembly || assembly.done) return;
      assembly.push(event as Event);
      if (!assembly.done) return;
      const done = assembly;
      // runTail passes on no event when the loop guard dropped it (tailfan streaming its own events).
      return runTail([done.traceItem()], env, ctx, undefined, (kept) => (kept.length === 0 ? [] : done.records())).then(
        () => undefined,
      );
    } catch (err) {
      console.error("tailfan: internal error in tailStream(); events not delivered", err);
    }
  };
}
