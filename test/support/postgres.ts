import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import {
  type EmbeddedPostgresHandle,
  startEmbeddedPostgres,
} from "../../server/src/embedded/embedded-postgres.js";

/** A database of its own for one test file or suite. */
export interface TestDatabase {
  /** Connection URL of the new, empty database. */
  readonly url: string;
  /** Drops the database, cutting any connection still open. Idempotent. */
  drop(): Promise<void>;
}

/** Where this process' throwaway clusters live; the PID lets a later run spot leftovers. */
const TEMP_PREFIX = "stagedoor-test-pg-";

let shared: Promise<{ handle: EmbeddedPostgresHandle; dataDir: string }> | undefined;
/** Databases created on a TEST_DATABASE_URL server and not dropped yet. */
const undropped = new Map<string, TestDatabase>();

/**
 * Creates an empty database with a unique random name, so test files never
 * see each other's rows. With `TEST_DATABASE_URL` set it is created on that
 * server; otherwise on one embedded PostgreSQL shared by the whole test
 * process, started on first use. Only databases made here are ever dropped.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const external = process.env.TEST_DATABASE_URL || undefined;
  const serverUrl = external ?? (await sharedCluster()).handle.url;
  const name = `stagedoor_test_${randomBytes(8).toString("hex")}`;
  await withMaintenanceClient(serverUrl, (client) =>
    client.query(`create database ${client.escapeIdentifier(name)}`),
  );

  let dropping: Promise<void> | undefined;
  const database: TestDatabase = {
    url: withDatabase(serverUrl, name),
    drop() {
      dropping ??= withMaintenanceClient(serverUrl, async (client) => {
        await client.query(`drop database if exists ${client.escapeIdentifier(name)} with (force)`);
        undropped.delete(name);
      });
      return dropping;
    },
  };
  if (external !== undefined) undropped.set(name, database);
  return database;
}

/**
 * Releases what this process created: drops databases a test forgot on a
 * `TEST_DATABASE_URL` server and stops the shared embedded cluster, deleting
 * its files. The cluster's child process would otherwise keep mocha from
 * exiting, so a root `afterAll` hook must call this (see
 * postgres-root-hooks.ts). Safe to call when nothing was started; a later
 * {@link createTestDatabase} starts a fresh cluster.
 */
export async function stopSharedPostgres(): Promise<void> {
  await Promise.all([...undropped.values()].map((database) => database.drop()));
  const current = shared;
  shared = undefined;
  if (current === undefined) return;
  const started = await current.catch(() => undefined);
  if (started === undefined) return;
  await started.handle.stop();
  await fs.rm(started.dataDir, { recursive: true, force: true });
}

/** A PostgreSQL cluster of one test's own, which it may stop and start again at will. */
export interface PrivateCluster {
  /** URL of its `stagedoor` database; the same across restarts (fixed port). */
  readonly url: string;
  readonly port: number;
  /** What the cluster warned about (FATAL lines of cut sessions, and so on). */
  readonly warnings: string[];
  /** Fast shutdown (sessions are cut, nothing committed is lost); the data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  /** Stops it if it runs and deletes its files. Idempotent. */
  remove(): Promise<void>;
}

/**
 * Starts a cluster for one test alone (never the machine's shared
 * PostgreSQL, which other suites use meanwhile), on a port the OS picked that
 * it keeps across {@link PrivateCluster.stop} and {@link PrivateCluster.start},
 * so a server pointed at it sees a restart. It lives in a temp folder named
 * like the shared cluster's, so a later run removes it if this process dies
 * without {@link PrivateCluster.remove}.
 */
export async function startPrivateCluster(): Promise<PrivateCluster> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `${TEMP_PREFIX}${process.pid}-`));
  const warnings: string[] = [];
  const options = {
    dataDir,
    // Kept across stop and start; remove() deletes the folder.
    persistent: true,
    maxConnections: 50,
    logger: {
      info() {},
      warn(obj: object, msg?: string) {
        warnings.push(`${msg ?? ""} ${JSON.stringify(obj)}`);
      },
    },
  };
  let handle: EmbeddedPostgresHandle | undefined;
  try {
    handle = await startEmbeddedPostgres(options);
  } catch (error) {
    await fs.rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const { url, port } = handle;
  let removing: Promise<void> | undefined;
  return {
    url,
    port,
    warnings,
    async stop() {
      const running = handle;
      handle = undefined;
      await running?.stop();
    },
    async start() {
      if (handle !== undefined) return;
      handle = await startEmbeddedPostgres({ ...options, port });
    },
    remove() {
      removing ??= (async () => {
        const running = handle;
        handle = undefined;
        await running?.stop();
        await fs.rm(dataDir, { recursive: true, force: true });
      })();
      return removing;
    },
  };
}

function sharedCluster(): Promise<{ handle: EmbeddedPostgresHandle; dataDir: string }> {
  if (shared === undefined) {
    const starting = startSharedCluster();
    // A failed start is not cached, so the next test file retries and
    // reports the real error instead of a stale rejection.
    starting.catch(() => {
      if (shared === starting) shared = undefined;
    });
    shared = starting;
  }
  return shared;
}

async function startSharedCluster(): Promise<{ handle: EmbeddedPostgresHandle; dataDir: string }> {
  await removeLeftovers();
  // os.tmpdir() rather than the repository: as root, postgres runs as the
  // `postgres` user, which may not be allowed into the checkout's parents.
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `${TEMP_PREFIX}${process.pid}-`));
  try {
    const handle = await startEmbeddedPostgres({
      dataDir,
      persistent: false,
      // Room for every pool a suite opens, plus concurrency tests' extra clients.
      maxConnections: 100,
      logger: {
        info() {},
        warn(obj, msg) {
          // drop() WITH (FORCE) cuts sessions on purpose; postgres logs each one.
          if (JSON.stringify(obj).includes("due to administrator command")) return;
          console.warn(`[test postgres] ${msg ?? ""}`, obj);
        },
      },
    });
    return { handle, dataDir };
  } catch (error) {
    await fs.rm(dataDir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Deletes clusters of earlier test processes that died without their root
 * hook (a SIGKILL or a crash), so temp space does not fill up. A folder whose
 * test process still runs is left alone.
 */
async function removeLeftovers(): Promise<void> {
  const tmp = os.tmpdir();
  for (const entry of await fs.readdir(tmp)) {
    if (!entry.startsWith(TEMP_PREFIX)) continue;
    const owner = Number.parseInt(entry.slice(TEMP_PREFIX.length), 10);
    if (!Number.isInteger(owner) || owner === process.pid || isAlive(owner)) continue;
    const dir = path.join(tmp, entry);
    const postmaster = await fs
      .readFile(path.join(dir, "pg", "postmaster.pid"), "utf8")
      .then((text) => Number.parseInt(text.split("\n", 1)[0] ?? "", 10))
      .catch(() => undefined);
    if (postmaster !== undefined && Number.isInteger(postmaster) && isAlive(postmaster)) {
      // Its test process was SIGKILLed. Fast shutdown now; the folder goes
      // on a later run, once postgres is surely out of it.
      const command = await fs.readFile(`/proc/${postmaster}/cmdline`, "utf8").catch(() => "");
      if (command.includes(dir)) process.kill(postmaster, "SIGINT");
      continue;
    }
    await fs.rm(dir, { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs `work` on the server's maintenance database: `postgres`, or
 * `template1` where `postgres` was dropped. The database named in the URL may
 * not exist, and the test databases must not be connected to while they are
 * created or dropped.
 */
async function withMaintenanceClient<T>(
  serverUrl: string,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  let client = new pg.Client({ connectionString: withDatabase(serverUrl, "postgres") });
  try {
    await client.connect();
  } catch (error) {
    // 3D000 invalid_catalog_name
    if ((error as { code?: unknown }).code !== "3D000") throw error;
    client = new pg.Client({ connectionString: withDatabase(serverUrl, "template1") });
    await client.connect();
  }
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The same server URL (user, password, query options) pointing at another database. */
function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}
