/**
 * Finds Chromium for the browser test, installing Debian's `chromium`
 * package when it is missing and this is a Debian machine where we may
 * (root, apt-get). Playwright's own browser download is not used.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

function found(): string | null {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`CHROMIUM_PATH is ${fromEnv}, which does not exist`);
    return fromEnv;
  }
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

/** Runs a command with its output shown, without blocking the test runner's event loop. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "inherit", env });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(" ")} exited with code ${code}`)),
    );
  });
}

export async function ensureChromium(): Promise<string> {
  const path = found();
  if (path) return path;
  const hasApt = spawnSync("apt-get", ["--version"], { stdio: "ignore" }).status === 0;
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (!hasApt || !root) {
    throw new Error(
      "The browser test needs Chromium and none was found. Install Debian's package (sudo apt-get install -y chromium) or set CHROMIUM_PATH to a Chromium or Chrome binary.",
    );
  }
  console.log("browser test: installing Debian's chromium package (apt-get install -y chromium)...");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  await run("apt-get", ["update", "-qq"], env);
  await run("apt-get", ["install", "-y", "-qq", "chromium"], env);
  const installed = found();
  if (!installed) throw new Error("apt-get installed chromium, but no chromium binary is on the usual paths");
  return installed;
}

/** Flags for a headless run on a machine with a closed network and no display. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
