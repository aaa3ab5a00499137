import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../support/ports.js";
import { ConnectionPool, type HttpReply, HttpTarget } from "./load.js";

/** The repository root, so children start the same wherever the bench is run from. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * Things to undo, undone in reverse order of creation, each attempted even
 * when an earlier one fails. Benches register every child process, database
 * and Redis prefix here as soon as it exists, so a failure (or Ctrl-C) at any
 * point leaves nothing behind.
 */
export class Cleanup {
  private readonly steps: { label: string; undo: () => Promise<void> | void }[] = [];

  /** Registers an undo step; returns a function that runs it early (and only once). */
  defer(label: string, undo: () => Promise<void> | void): () => Promise<void> {
    const step = { label, undo };
    this.steps.push(step);
    return async () => {
      const index = this.steps.indexOf(step);
      if (index === -1) return;
      this.steps.splice(index, 1);
      await undo();
    };
  }

  /** Runs every step still registered, newest first. */
  async run(): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop();
      if (!step) break;
      try {
        await step.undo();
      } catch (error) {
        console.error(`cleanup: ${step.label} failed:`, error);
      }
    }
  }

  /**
   * Runs the cleanup and exits when the bench is interrupted (Ctrl-C or a
   * SIGTERM), instead of leaving children and databases behind.
   */
  onSignals(): void {
    const stop = (signal: NodeJS.Signals) => {
      console.error(`\n${signal}: cleaning up…`);
      this.run().finally(() => process.exit(130));
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  }
}

/** A Node child process serving HTTP on a loopback port. */
export interface NodeServer {
  readonly label: string;
  readonly pid: number;
  readonly target: HttpTarget;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/** How to start a {@link NodeServer}. */
export interface NodeServerOptions {
  /** For messages. */
  readonly label: string;
  /** The entry file, relative to {@link root}. */
  readonly script: string;
  /** The checkout the entry file is taken from; this repository by default. */
  readonly root?: string;
  /** The child's environment on top of this process' own. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Extra node flags (e.g. `--cpu-prof`). */
  readonly nodeArgs?: readonly string[];
  /** A request that tells when the child is ready, and which replies mean it is. */
  readonly probe: {
    readonly request: (target: HttpTarget) => string;
    readonly ready: (reply: HttpReply) => boolean;
  };
  readonly startTimeoutMs?: number;
  /** Registered with the cleanup as soon as the child exists. */
  readonly cleanup: Cleanup;
}

/**
 * Starts a TypeScript entry file in its own Node process the way `npm start`
 * runs the server (`--conditions=stagedoor-source --import tsx`), on a free
 * port passed as PORT, and waits until it answers the probe. The one place
 * both benchmarks spawn servers, Stagedoor and the floors alike.
 */
export async function startNodeServer(options: NodeServerOptions): Promise<NodeServer> {
  const port = await freePort();
  const target = new HttpTarget("127.0.0.1", port);
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      "--conditions=stagedoor-source",
      "--import",
      "tsx",
      options.script,
    ],
    {
      cwd: options.root ?? repoRoot,
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, ...options.env, PORT: String(port) },
    },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = options.cleanup.defer(`stop ${options.label}`, () =>
    stopChild(child, exited, 15_000),
  );
  const server: NodeServer = {
    label: options.label,
    pid: child.pid ?? 0,
    target,
    stop: () => stop(),
  };
  const pool = new ConnectionPool(target);
  try {
    const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `${options.label} exited during start-up (${child.exitCode ?? child.signalCode})`,
        );
      }
      const reply = await pool.send(options.probe.request(target)).catch(() => undefined);
      if (reply && options.probe.ready(reply)) return server;
      if (Date.now() > deadline) throw new Error(`${options.label} did not start in time`);
      pool.close();
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } catch (error) {
    await server.stop();
    throw error;
  } finally {
    pool.close();
  }
}

async function stopChild(
  child: ChildProcess,
  exited: Promise<void>,
  graceMs: number,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), graceMs);
  });
  if (await Promise.race([exited.then(() => false), late])) {
    child.kill("SIGKILL");
    await exited;
  }
  clearTimeout(timer);
}

/** The Connect JSON probe every server here answers once it is up. */
export const healthProbe = {
  request: (target: HttpTarget) => target.post("/grpc.health.v1.Health/Check", {}),
  ready: (reply: HttpReply) => reply.status === 200 && reply.text.includes("SERVING"),
};

/** How to start Stagedoor for a benchmark. */
export interface StagedoorOptions {
  readonly databaseUrl: string;
  /** Redis for the waiting room and the key prefix to use; omitted: the in-process store. */
  readonly redis?: { readonly url: string; readonly keyPrefix: string };
  readonly maxActive: number;
  /** The server's DB_POOL_MAX; undefined keeps its default. */
  readonly poolMax: number | undefined;
  readonly nodeArgs?: readonly string[];
  /** More environment for the server (limits a benchmark needs raised). */
  readonly env?: Readonly<Record<string, string>>;
  readonly cleanup: Cleanup;
  /** TOKEN_SECRET; instances of one deployment share it. Random when omitted. */
  readonly tokenSecret?: string;
  /** For messages, e.g. "Stagedoor #2". */
  readonly label?: string;
}

/**
 * Starts Stagedoor exactly as `npm start` runs it (server/src/main.ts) on a
 * benchmark's throwaway database: trust auth, no demo seed, no web app, long
 * admissions and holds, no per-address rate limits (one address plays every
 * fan), and `WORKERS=$BENCH_WORKERS` only when that is set.
 * It migrates at start-up, so the caller seeds once this returns.
 */
export async function startStagedoor(options: StagedoorOptions): Promise<NodeServer> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-bench-"));
  options.cleanup.defer("remove the data folder", () =>
    rm(dataDir, { recursive: true, force: true }),
  );
  return startNodeServer({
    label: options.label ?? "Stagedoor",
    script: "server/src/main.ts",
    root: serverCheckout(),
    nodeArgs: options.nodeArgs,
    cleanup: options.cleanup,
    probe: healthProbe,
    env: {
      DATABASE_URL: options.databaseUrl,
      REDIS_URL: options.redis?.url,
      REDIS_KEY_PREFIX: options.redis?.keyPrefix,
      AUTH_MODE: "trust",
      HOST: "127.0.0.1",
      DATA_DIR: dataDir,
      SEED_DEMO: "false",
      SERVE_WEB: "false",
      LOG_LEVEL: "warn",
      QUEUE_MAX_ACTIVE: String(options.maxActive),
      TOKEN_TTL_SECONDS: "3600",
      HOLD_TTL_SECONDS: "3600",
      DB_POOL_MAX: options.poolMax === undefined ? undefined : String(options.poolMax),
      TOKEN_SECRET: options.tokenSecret ?? randomBytes(32).toString("hex"),
      // Every simulated fan connects from 127.0.0.1: the per-address limits
      // exist to stop exactly that, so the benchmarks turn them off unless
      // the shell sets them (e.g. very high, to measure what checking both
      // buckets costs). Each fan is its own user: the per-user limits stay
      // at their defaults (or the shell's RATE_LIMIT_*_PER_USER).
      RATE_LIMIT_TOKEN_PER_ADDRESS: process.env.RATE_LIMIT_TOKEN_PER_ADDRESS || "off",
      RATE_LIMIT_HOLD_PER_ADDRESS: process.env.RATE_LIMIT_HOLD_PER_ADDRESS || "off",
      RATE_LIMIT_PAYMENT_PER_ADDRESS: process.env.RATE_LIMIT_PAYMENT_PER_ADDRESS || "off",
      // Only what the bench asks for: a WORKERS of the caller's shell is not passed on.
      WORKERS: process.env.BENCH_WORKERS || undefined,
      ...options.env,
    },
  });
}

/**
 * The checkout whose server the benchmarks start, from BENCH_SERVER_CHECKOUT
 * (this repository when unset): to measure an older or newer server with the
 * same load generator, floors and checks, in the same run of the machine.
 * That checkout needs its own `npm ci`. Only Stagedoor comes from it; the
 * floors stay this repository's. Checks that read this repository's Redis
 * key names (the rush's admitted-set sampler) find nothing from a server
 * that names its keys otherwise, and the rush then fails its "the queue
 * store was Redis" check rather than pass it unseen.
 */
export function serverCheckout(): string {
  const dir = process.env.BENCH_SERVER_CHECKOUT;
  if (!dir) return repoRoot;
  const root = path.resolve(dir);
  if (!existsSync(path.join(root, "server/src/main.ts"))) {
    throw new Error(`BENCH_SERVER_CHECKOUT=${dir}: no server/src/main.ts there`);
  }
  return root;
}

/** Extra node flags for the server from BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"). */
export function serverNodeArgs(): string[] {
  return process.env.BENCH_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
}
