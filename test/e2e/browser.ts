import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const BUILD_SCRIPT = path.join(repoRoot, "examples", "web", "build.mjs");

/**
 * Debian's Chromium (`apt-get install chromium`; `.ci/run` installs it), or
 * CHROMIUM_PATH. playwright-core never downloads a browser of its own.
 */
export const CHROMIUM = [
  process.env.CHROMIUM_PATH,
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
].find(
  (candidate): candidate is string =>
    candidate !== undefined && candidate !== "" && existsSync(candidate),
);

/** How the browser tests start Chromium: headless, and quiet on the network. */
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

/** Builds the web pages with the real build script into `outdir`. */
export async function buildWeb(outdir: string): Promise<void> {
  await run(process.execPath, [BUILD_SCRIPT, "--outdir", outdir], { cwd: repoRoot });
}
