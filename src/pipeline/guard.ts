/**
 * Stage 2, the loop guard: drops TraceItems of tailfan itself, so that naming
 * it as its own tail consumer cannot loop.
 */

export function dropOwnEvents(
  events: readonly unknown[],
  selfName: string,
): { events: readonly unknown[]; dropped: number } {
  let dropped = 0;
  const kept = events.filter((e) => {
    let name: unknown;
    try {
      name = (e as { scriptName?: unknown } | null)?.scriptName;
    } catch {
      name = undefined;
    }
    if (name === selfName) {
      dropped++;
      return false;
    }
    return true;
  });
  return dropped === 0 ? { events, dropped } : { events: kept, dropped };
}
