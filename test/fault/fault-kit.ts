import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { ERROR_DOMAIN, ErrorInfoSchema, RetryInfoSchema } from "@stagedoor/sdk";
import { freePort } from "../support/ports.js";
import { NO_ADDRESS_RATE_LIMITS, NO_USER_RATE_LIMITS } from "../support/rate-limits.js";

/**
 * What the fault tests share: the server as a child process (as `npm start`
 * runs it), a Redis of the test's own, free ports, and bounded waits.
 * Everything started here is killed when the test process exits, whatever
 * happened to the test's own `after` hooks.
 */

/** `npm start` runs from the repository; so does the server under test. */
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Generous: the server compiles with tsx and migrates on two busy shared cores. */
export const START_MS = 60_000;

/** Children still running, SIGKILLed if the test process exits first. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const running of live) running.kill("SIGKILL");
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every `everyMs` until it returns a value other than undefined, failing after `ms`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined> | T | undefined,
  ms: number,
  what: string,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await sleep(everyMs);
  }
}

/** A temp folder for one test; remove it with `rm(dir, { recursive: true })`. */
export function tempDir(label: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `stagedoor-fault-${label}-`));
}

/** One JSON log line of the server. */
export type LogLine = { readonly msg?: string; readonly level?: number; [key: string]: unknown };

/** `server/src/main.ts` running as its own process, as `npm start` runs it. */
export class ServerProcess {
  readonly lines: LogLine[] = [];
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(env: Readonly<Record<string, string>>) {
    // Only what Node needs from this environment: nothing of the developer's
    // own DATABASE_URL or REDIS_URL may leak into the server under test.
    const base = Object.fromEntries(
      ["PATH", "HOME", "TMPDIR", "LANG"].flatMap((key) => {
        const value = process.env[key];
        return value === undefined ? [] : [[key, value]];
      }),
    );
    this.child = spawn(
      process.execPath,
      ["--conditions=stagedoor-source", "--import", "tsx", "server/src/main.ts"],
      {
        cwd: REPO_ROOT,
        env: {
          ...base,
          HOST: "127.0.0.1",
          PORT: "0",
          AUTH_MODE: "trust",
          SEED_DEMO: "true",
          SERVE_WEB: "false",
          LOG_LEVEL: "info",
          SHUTDOWN_TIMEOUT_MS: "2000",
          // Fans retry as fast as the fault allows, all from one address: the
          // per-user and per-address limits would refuse them.
          ...NO_USER_RATE_LIMITS,
          ...NO_ADDRESS_RATE_LIMITS,
          ...env,
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    track(this.child);
    let partial = "";
    this.child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      partial += chunk;
      const complete = partial.split("\n");
      partial = complete.pop() ?? "";
      for (const text of complete) {
        try {
          this.lines.push(JSON.parse(text) as LogLine);
        } catch {
          this.lines.push({ msg: text });
        }
      }
    });
    this.child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => resolve({ code, signal }));
    });
  }

  /** Starts a server and waits until it serves; returns it with its URL. */
  static async start(env: Readonly<Record<string, string>>): Promise<ServerProcess> {
    const server = new ServerProcess(env);
    try {
      await server.serving();
    } catch (error) {
      await server.kill();
      throw error;
    }
    return server;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The URL it serves on, once it said so. */
  get url(): string {
    const line = this.logged("Stagedoor is serving on")[0];
    if (typeof line?.url !== "string") throw new Error("the server is not serving yet");
    return line.url;
  }

  /** Waits for the "serving" line (failing if the process exits first). */
  async serving(): Promise<string> {
    await waitFor(
      () => {
        if (this.logged("Stagedoor is serving on").length > 0) return true;
        if (!this.running) throw new Error(`the server exited at start-up\n${this.transcript()}`);
        return undefined;
      },
      START_MS,
      "the server's start",
      50,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${this.transcript()}`);
    });
    return this.url;
  }

  /** The log lines whose message starts with `prefix`. */
  logged(prefix: string): LogLine[] {
    return this.lines.filter((line) => line.msg?.startsWith(prefix));
  }

  /** `kill -9`: no drain, no goodbye. Resolves once the process is gone. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill("SIGKILL");
    await this.exited;
  }

  /** SIGTERM (a drain), then SIGKILL if it takes longer than `ms`. */
  async stop(ms = 15_000): Promise<void> {
    if (!this.running) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), ms);
    await this.exited;
    clearTimeout(timer);
  }

  /** Everything it printed, for failure messages. */
  transcript(): string {
    const stdout = this.lines
      .slice(-60)
      .map((line) => JSON.stringify(line))
      .join("\n");
    return `--- stdout (last 60 lines)\n${stdout}\n--- stderr\n${this.stderr.slice(-4000)}`;
  }
}

/** Where the redis-server binary is, or undefined when this machine has none. */
export async function findRedisServer(): Promise<string | undefined> {
  return new Promise((resolve) => {
    const probe = spawn("redis-server", ["--version"], { stdio: "ignore" });
    probe.once("error", () => resolve(undefined));
    probe.once("exit", (code) => resolve(code === 0 ? "redis-server" : undefined));
  });
}

/**
 * A redis-server of the test's own, on a free port and a temp folder, that
 * the test may stop (gracefully or with SIGKILL) and start again on the same
 * port and folder.
 */
export class RedisProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private output = "";

  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly appendOnly: boolean,
  ) {}

  /**
   * Starts Redis. `appendOnly`: AOF with an fsync per write (what survives a
   * crash is exactly what was acknowledged); otherwise no persistence at all.
   */
  static async start(appendOnly: boolean): Promise<RedisProcess> {
    const dir = await tempDir("redis");
    for (let attempt = 1; ; attempt++) {
      const redis = new RedisProcess(await freePort(), dir, appendOnly);
      try {
        await redis.start();
        return redis;
      } catch (error) {
        await redis.stop("SIGKILL");
        // Another process may take the port between the probe and Redis' bind.
        if (attempt < 3 && redis.output.includes("Address already in use")) continue;
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  /** Starts (again) on the same port and folder and waits until it answers PING. */
  async start(): Promise<void> {
    if (this.child !== undefined) return;
    const args = [
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--dir",
      this.dir,
      "--save",
      "",
      "--daemonize",
      "no",
      "--protected-mode",
      "no",
      ...(this.appendOnly
        ? ["--appendonly", "yes", "--appendfsync", "always"]
        : ["--appendonly", "no"]),
    ];
    const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    track(child);
    this.child = child;
    this.output = "";
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString("utf8")).slice(-8000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.exited = new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", () => resolve());
    });
    await waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`redis-server exited at start-up:\n${this.output}`);
        }
        return (await ping(this.port)) ? true : undefined;
      },
      15_000,
      "redis-server's start",
      50,
    );
  }

  /** Stops it: SIGTERM is a clean shutdown, SIGKILL a crash. */
  async stop(signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.child = undefined;
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  /**
   * Freezes it (SIGSTOP): its connections stay open and it answers nothing,
   * as a Redis stuck in a long script, or behind a link that drops packets
   * without a reset, looks to its clients. `thaw` lets it go on.
   */
  freeze(): void {
    this.child?.kill("SIGSTOP");
  }

  /** Lets a frozen Redis go on (SIGCONT). */
  thaw(): void {
    this.child?.kill("SIGCONT");
  }

  /** Kills it and deletes its folder. */
  async remove(): Promise<void> {
    this.thaw();
    await this.stop("SIGKILL");
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Whether a Redis on `port` answers PING (and has finished loading its data). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let reply = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      reply += chunk.toString("utf8");
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
  });
}

/** How one call ended, as the fault tests tally it. */
export interface CallOutcome {
  /** "OK", or the Connect code's name ("Unavailable", "DeadlineExceeded", …). */
  readonly code: string;
  /** The ErrorInfo reason, when the error carried one of our domain. */
  readonly reason: string | undefined;
  /** Whether the error carried a RetryInfo. */
  readonly retryInfo: boolean;
  readonly ms: number;
  readonly message: string;
}

/** Runs a call and records how it ended and how long it took; never throws. */
export async function outcomeOf(call: () => Promise<unknown>): Promise<CallOutcome> {
  const started = performance.now();
  try {
    await call();
    return { code: "OK", reason: undefined, retryInfo: false, ms: elapsed(started), message: "" };
  } catch (thrown) {
    const error = ConnectError.from(thrown);
    const info = error.findDetails(ErrorInfoSchema).find((i) => i.domain === ERROR_DOMAIN);
    return {
      code: Code[error.code],
      reason: info?.reason,
      retryInfo: error.findDetails(RetryInfoSchema).length > 0,
      ms: elapsed(started),
      message: error.rawMessage,
    };
  }
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}

/** Counts outcomes by "code reason" for reports and failure messages. */
export function tally(outcomes: readonly CallOutcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) {
    const key = outcome.reason ? `${outcome.code} ${outcome.reason}` : outcome.code;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
