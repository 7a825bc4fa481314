/** Starts the local HTTP receiver for the workers test project and hands its URL to the tests. */
import type { TestProject } from "vitest/node";
import { startReceiver } from "./receiver";

import "./received";

export default async function setup(project: TestProject) {
  const receiver = await startReceiver();
  project.provide("receiverUrl", receiver.url);
  return () => receiver.close();
}
