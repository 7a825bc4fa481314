/** The test output filter drops workerd's refused-connection lines and nothing else. */
import { expect, it } from "vitest";
import { keptLines } from "../support/quiet";

const REFUSED = [
  "exception = rust/worker/ffi.rs:110: disconnected: Connection refused (os error 111)\nstack: /x/bin/workerd@28a3c60 /x/bin/workerd@3ac7580\n",
  "uncaught exception; source = Uncaught (in promise); stack = Error: Network connection lost.\n",
  "uncaught exception; exception = workerd/jsg/value.h:1535: disconnected: jsg.Error: Network connection lost.\n",
  "stack: /x/bin/workerd@3a4d9d0 /x/bin/workerd@3a4e7b5\n",
];

it("drops the refused-connection lines with their stack lines", () => {
  const state = { dropStack: false };
  expect(REFUSED.map((chunk) => keptLines(chunk, state)).join("")).toBe("");
});

it("keeps every other line, a stack line after one of them included", () => {
  const state = { dropStack: false };
  const other = [
    "console warning; message = Called .text() on an HTTP body which does not appear to be text.\n",
    "stack: /x/bin/workerd@28a3c60\n",
    "uncaught exception; source = Uncaught (in promise); stack = Error: boom\n",
    'tailfan: sink "hook" failed: Network connection lost.\n',
    " ✓ workers test/sinks/http.test.ts (48 tests)\n",
  ];
  for (const line of other) expect(keptLines(line, state)).toBe(line);
  // Mixed in one write: only the refused lines go.
  expect(keptLines(`${REFUSED[1]}${other[0]}${REFUSED[2]}${other[4]}`, state)).toBe(`${other[0]}${other[4]}`);
});
