import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { createClient } from "redis";
import { queueScripts } from "../../server/src/modules/queue/redis-queue-scripts.js";
import {
  createRedisClusterClient,
  type RedisClusterClient,
} from "../../server/src/redis/redis-client.js";
import { freePort } from "./ports.js";

const run = promisify(execFile);

/** A cluster client with the waiting room's scripts, as the server builds it. */
export type QueueRedisCluster = RedisClusterClient<typeof queueScripts>;

/** A real Redis Cluster of three masters (no replicas) on free local ports, owned by the tests. */
export interface TestRedisCluster {
  /** `redis://127.0.0.1:<port>` of each master: the seeds a client is given. */
  readonly urls: readonly string[];
  /** A new cluster client with the queue scripts; the caller closes it. */
  connect(): Promise<QueueRedisCluster>;
  /** The hash slot of a key (`CLUSTER KEYSLOT`). */
  keySlot(key: string): Promise<number>;
  /** The port of the master that serves a slot. */
  masterOfSlot(slot: number): Promise<number>;
  /** Deletes every key matching a pattern on every master; resolves to how many. */
  deleteMatching(pattern: string): Promise<number>;
}

const MASTERS = 3;
/** A node's cluster bus listens on its port + 10000, which must be free too. */
const BUS_OFFSET = 10_000;

/** Why the cluster suites cannot run here, or undefined when they can. */
export async function redisClusterUnavailable(): Promise<string | undefined> {
  try {
    await run("redis-server", ["--version"]);
    await run("redis-cli", ["--version"]);
    return undefined;
  } catch {
    return "redis-server and redis-cli are not on PATH (Debian: apt-get install redis-server)";
  }
}

/**
 * Explains that the cluster suites were skipped, or fails the run when CI
 * requires them (`REDIS_CLUSTER_REQUIRED=1`, set by .ci/run).
 */
export function reportRedisClusterSkipped(suite: string, why: string): void {
  if (process.env.REDIS_CLUSTER_REQUIRED === "1") {
    throw new Error(`${suite}: Redis Cluster required but unavailable: ${why}`);
  }
  console.log(`    (${suite}: Redis Cluster tests not run because ${why})`);
}

/**
 * Kept on globalThis: mocha loads the root hooks and the spec files through
 * different loaders, which may each instantiate this module, and the hooks
 * must stop the cluster the specs started.
 */
const SHARED = Symbol.for("stagedoor.test.redisCluster");
const registry = globalThis as { [SHARED]?: Promise<RunningCluster> | undefined };

/**
 * The cluster every suite of this process shares, started on first use and
 * stopped by the root hooks (test/support/postgres-root-hooks.ts). Suites
 * keep apart by their own key prefixes, as they do on the shared Redis.
 */
export function sharedRedisCluster(): Promise<TestRedisCluster> {
  registry[SHARED] ??= startRedisCluster();
  return registry[SHARED];
}

/** Stops the shared cluster, if one was started, and deletes its files. */
export async function stopSharedRedisCluster(): Promise<void> {
  const started = registry[SHARED];
  registry[SHARED] = undefined;
  if (started === undefined) return;
  await (await started.catch(() => undefined))?.stop();
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args]);
  return stdout.trim();
}

/** Polls until `check` holds, or throws naming what never happened. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface RunningCluster extends TestRedisCluster {
  stop(): Promise<void>;
}

/**
 * Starts three `redis-server --cluster-enabled yes` nodes on free ports (in a
 * temporary folder, without persistence), joins them with
 * `redis-cli --cluster create … --cluster-replicas 0`, and waits until every
 * node reports `cluster_state:ok`.
 */
export async function startRedisCluster(): Promise<RunningCluster> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-redis-cluster-"));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGTERM");
          }),
      ),
    );
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const taken = new Set<number>();
    for (let i = 0; i < MASTERS; i++) {
      const port = await freePort({ offsets: [BUS_OFFSET], taken });
      taken.add(port).add(port + BUS_OFFSET);
      ports.push(port);
    }
    for (const port of ports) {
      const child = spawn(
        "redis-server",
        [
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          path.join(dir, `nodes-${port}.conf`),
          "--dir",
          dir,
          "--save",
          "",
          "--appendonly",
          "no",
          "--daemonize",
          "no",
        ],
        { stdio: "ignore" },
      );
      children.push(child);
    }
    for (const port of ports) {
      await until(`redis-server on port ${port}`, async () => (await cli(port, "ping")) === "PONG");
    }
    await run("redis-cli", [
      "--cluster",
      "create",
      ...ports.map((port) => `127.0.0.1:${port}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    for (const port of ports) {
      await until(`cluster_state:ok on port ${port}`, async () =>
        (await cli(port, "cluster", "info")).includes("cluster_state:ok"),
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const urls = ports.map((port) => `redis://127.0.0.1:${port}`);
  const [anyPort] = ports as [number];
  return {
    urls,
    connect: () =>
      createRedisClusterClient({
        urls,
        scripts: queueScripts,
        onError: (error) => console.error("redis cluster client error in test:", error),
      }),
    async keySlot(key) {
      return Number(await cli(anyPort, "cluster", "keyslot", key));
    },
    async masterOfSlot(slot) {
      // CLUSTER NODES: "<id> <ip:port@bus> <flags> <master> … <link> <slot ranges…>".
      for (const line of (await cli(anyPort, "cluster", "nodes")).split("\n")) {
        const fields = line.split(" ");
        if (!fields[2]?.includes("master")) continue;
        for (const range of fields.slice(8)) {
          const [from, to] = range.split("-").map(Number);
          if (from !== undefined && slot >= from && slot <= (to ?? from)) {
            return Number(fields[1]?.split("@")[0]?.split(":")[1]);
          }
        }
      }
      throw new Error(`no master serves slot ${slot}`);
    },
    async deleteMatching(pattern) {
      let deleted = 0;
      for (const url of urls) {
        const node = createClient({ url });
        node.on("error", () => {});
        await node.connect();
        try {
          for await (const keys of node.scanIterator({ MATCH: pattern, COUNT: 1000 })) {
            // One key per command: keys of different slots cannot share one.
            const counts = await Promise.all(keys.map((key) => node.unlink(key)));
            deleted += counts.reduce((sum, n) => sum + n, 0);
          }
        } finally {
          node.destroy();
        }
      }
      return deleted;
    },
    stop,
  };
}
