import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * What the abusive-client fault tests share: the server as a child process
 * (`server/src/main.ts`, as `npm start` runs it) observed from outside
 * through /proc, raw sockets, and bounded waits. Everything started here is
 * killed when the test process exits, whatever its own hooks managed.
 */

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Generous: the server compiles with tsx and migrates on two busy shared cores. */
const START_MS = 90_000;

const children = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  children.add(child);
  child.once("exit", () => children.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.on("exit", () => {
    for (const running of children) running.kill("SIGKILL");
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or a failure naming `what` once `ms` passed. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Polls `check` every `everyMs` until it is true, failing after `ms`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(everyMs);
  }
}

/** The soft and hard limits on open files of a process (Linux /proc). */
export async function fileLimits(pid: number | "self" = "self"): Promise<{
  soft: number;
  hard: number;
}> {
  const text = await readFile(`/proc/${pid}/limits`, "utf8");
  const line = text.split("\n").find((l) => l.startsWith("Max open files"));
  const [soft, hard] = (line ?? "").split(/\s{2,}/).slice(1, 3);
  const parse = (value: string | undefined) =>
    value === "unlimited" ? Number.POSITIVE_INFINITY : Number(value);
  return { soft: parse(soft), hard: parse(hard) };
}

/** How many files (sockets included) a process has open. */
export async function openFiles(pid: number | "self" = "self"): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/** A process' resident memory in MiB. */
export async function residentMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
  return Math.round(kb / 1024);
}

/** One JSON log line of the server. */
export type LogLine = { readonly msg?: string; readonly level?: number; [key: string]: unknown };

/** `server/src/main.ts` running as its own process, as `npm start` runs it. */
export class ServerChild {
  readonly lines: LogLine[] = [];
  stderr = "";
  url = "";
  port = 0;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  private constructor(env: Readonly<Record<string, string>>) {
    const base = Object.fromEntries(
      ["PATH", "HOME", "TMPDIR", "LANG"].flatMap((key) => {
        const value = process.env[key];
        return value === undefined ? [] : [[key, value]];
      }),
    );
    this.child = spawn(
      process.execPath,
      ["--conditions=stagedoor-source", "--import", "tsx", "server/src/main.ts"],
      { cwd: REPO_ROOT, env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    track(this.child);
    // FAULT_SERVER_LOG=path keeps the server's whole log, for debugging a failure.
    const keep = process.env.FAULT_SERVER_LOG;
    if (keep) this.child.stdout?.pipe(createWriteStream(keep));
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

  /** Starts a server and waits until it serves. */
  static async start(env: Readonly<Record<string, string>>): Promise<ServerChild> {
    const server = new ServerChild(env);
    try {
      await until(
        () => {
          if (server.child.exitCode !== null) {
            throw new Error(`the server exited while starting\n${server.transcript()}`);
          }
          return server.lines.some((l) => l.msg?.startsWith("Stagedoor is serving on"));
        },
        START_MS,
        "the server serving",
        100,
      );
    } catch (error) {
      await server.kill();
      throw error;
    }
    const ready = server.lines.find((l) => l.msg?.startsWith("Stagedoor is serving on"));
    server.url = String(ready?.url);
    server.port = Number(new URL(server.url).port);
    return server;
  }

  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error("the server has no pid");
    return pid;
  }

  /** How many log lines start with `prefix`. */
  count(prefix: string): number {
    let n = 0;
    for (const line of this.lines) if (line.msg?.startsWith(prefix)) n += 1;
    return n;
  }

  /** How many log lines `matches`. */
  countWhere(matches: (line: LogLine) => boolean): number {
    let n = 0;
    for (const line of this.lines) if (matches(line)) n += 1;
    return n;
  }

  /** Log lines at warn or above (pino: 40+). */
  problems(): LogLine[] {
    return this.lines.filter((l) => (l.level ?? 0) >= 40);
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }

  /** What the server logged, by message, and its last lines other than successful calls. */
  transcript(): string {
    const counts = new Map<string, number>();
    for (const line of this.lines)
      counts.set(line.msg ?? "", (counts.get(line.msg ?? "") ?? 0) + 1);
    const summary = [...counts].map(([msg, n]) => `${n} × ${msg}`);
    const tail = this.lines
      .filter((l) => l.msg !== "call ok")
      .slice(-30)
      .map((l) => JSON.stringify(l));
    return [
      "--- server log, by message ---",
      ...summary,
      "--- last 30 lines but successful calls ---",
      ...tail,
      "--- stderr ---",
      this.stderr.slice(-4000),
    ].join("\n");
  }
}

/** The environment of a throwaway server on `databaseUrl`, with `overrides`. */
export async function serverEnv(
  databaseUrl: string,
  overrides: Readonly<Record<string, string>>,
): Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-fault-abuse-"));
  return {
    env: {
      DATABASE_URL: databaseUrl,
      AUTH_MODE: "trust",
      HOST: "127.0.0.1",
      PORT: "0",
      DATA_DIR: dataDir,
      SEED_DEMO: "true",
      SERVE_WEB: "false",
      TOKEN_SECRET: randomBytes(32).toString("hex"),
      ...overrides,
    },
    cleanup: () => rm(dataDir, { recursive: true, force: true }),
  };
}

/** A raw client connection, and when (ms since it connected) the server closed it. */
export class Conn {
  readonly socket: net.Socket;
  connectedAt = 0;
  closedAt: number | undefined;
  received = 0;
  head = "";
  error: Error | undefined;
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket, read: boolean) {
    this.socket = socket;
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.closedAt = Date.now();
        resolve();
      }),
    );
    socket.on("error", (error) => {
      this.error = error;
    });
    if (read) {
      socket.on("data", (chunk: Buffer) => {
        this.received += chunk.length;
        if (this.head.length < 64) this.head += chunk.subarray(0, 64).toString("latin1");
      });
    } else {
      socket.pause();
    }
  }

  /** Connects, resolving once connected (or failing). */
  static open(port: number, options: { read?: boolean } = {}): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1");
      const conn = new Conn(socket, options.read !== false);
      socket.once("connect", () => {
        conn.connectedAt = Date.now();
        socket.off("error", reject);
        resolve(conn);
      });
      socket.once("error", reject);
    });
  }

  get isClosed(): boolean {
    return this.closedAt !== undefined;
  }

  /** How long the connection lived, in ms (until now when still open). */
  get lifetime(): number {
    return (this.closedAt ?? Date.now()) - this.connectedAt;
  }

  write(data: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Opens `n` connections, at most `concurrency` connecting at once. */
export async function openMany(
  port: number,
  n: number,
  options: { read?: boolean; concurrency?: number } = {},
): Promise<{ conns: Conn[]; failures: number }> {
  const conns: Conn[] = [];
  let failures = 0;
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next += 1;
      try {
        conns.push(await Conn.open(port, options));
      } catch {
        failures += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, options.concurrency ?? 250) }, worker));
  return { conns, failures };
}

/** min, median and max of some numbers (rounded), for the report. */
export function spread(values: readonly number[]): { min: number; median: number; max: number } {
  if (values.length === 0) return { min: Number.NaN, median: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: Math.round(sorted[0] ?? Number.NaN),
    median: Math.round(sorted[Math.floor(sorted.length / 2)] ?? Number.NaN),
    max: Math.round(sorted[sorted.length - 1] ?? Number.NaN),
  };
}

/** A GET over a connection of its own (no pooling), with a deadline. */
export function freshGet(
  url: string,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}
