/**
 * workerd reports every connection refused by a closed port, which the sink tests use on
 * purpose, as two log lines with native stack addresses, written by the workers pool straight
 * to stdout. Exactly those lines (and the stack line after each) are dropped, so that a green
 * run shows only warnings worth reading.
 */
export const REFUSED_CONNECTION = [
  /^exception = rust\/worker\/ffi\.rs:\d+: disconnected: Connection refused \(os error 111\)$/,
  /^uncaught exception; source = Uncaught \(in promise\); stack = Error: Network connection lost\.$/,
  /^uncaught exception; exception = workerd\/jsg\/value\.h:\d+: disconnected: jsg\.Error: Network connection lost\.$/,
];
const WORKERD_STACK = /^stack:( \S+workerd@[0-9a-f]+)+$/;

/** The lines of `text` to keep; `state.dropStack` carries "the last line was dropped" across writes. */
export function keptLines(text: string, state: { dropStack: boolean }): string {
  return text
    .split(/(?<=\n)/)
    .filter((line) => {
      const bare = line.replace(/\r?\n$/, "");
      if (REFUSED_CONNECTION.some((re) => re.test(bare))) {
        state.dropStack = true;
        return false;
      }
      const stack = state.dropStack && WORKERD_STACK.test(bare);
      if (bare !== "") state.dropStack = false;
      return !stack;
    })
    .join("");
}
