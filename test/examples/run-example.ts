import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The repository root: examples run from there, as the README says. */
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** How one example process ended and what it printed. */
export interface ExampleRun {
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout split into lines, without the trailing empty one. */
  readonly lines: readonly string[];
  /** Exit code, stdout and stderr in one string, for assertion messages. */
  readonly transcript: string;
}

/** How to run an example. */
export interface RunOptions {
  /** Kill the example (and fail) if it has not exited by then. */
  readonly timeoutMs?: number;
  /** Called with each complete stdout line as it is printed, e.g. to act on progress. */
  readonly onLine?: (line: string) => void;
  /** Another script to run the same way, relative to the repository root. */
  readonly script?: string;
}

/**
 * Runs `examples/<name>/src/main.ts` as its own Node process, exactly like
 * the example's `npm start` (source condition, tsx loader), with `env` added
 * to this process' environment. The child is killed (by its pid) if it has
 * not exited within `timeoutMs`, so a hung example fails the test instead of
 * outliving it.
 */
export function runExample(
  name: string,
  env: Readonly<Record<string, string>>,
  options: RunOptions = {},
): Promise<ExampleRun> {
  const timeoutMs = options.timeoutMs ?? 45_000;
  return new Promise<ExampleRun>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        "--conditions=stagedoor-source",
        "--import",
        "tsx",
        options.script ?? `examples/${name}/src/main.ts`,
      ],
      { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    let delivered = 0;
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      // Hand over each line once it is complete.
      for (
        let end = stdout.indexOf("\n", delivered);
        end !== -1;
        end = stdout.indexOf("\n", delivered)
      ) {
        options.onLine?.(stdout.slice(delivered, end));
        delivered = end + 1;
      }
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `example ${name} had not exited after ${timeoutMs} ms\n--- stdout\n${stdout}--- stderr\n${stderr}`,
        ),
      );
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (exitCode) => {
      clearTimeout(timer);
      const lines = stdout.split("\n");
      if (lines.at(-1) === "") lines.pop();
      const transcript = `exit ${exitCode}\n--- stdout\n${stdout}--- stderr\n${stderr}`;
      resolve({ exitCode, stdout, stderr, lines, transcript });
    });
  });
}
