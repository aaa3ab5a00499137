import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { bootstrap, type RunningServer } from "../../server/src/bootstrap.js";
import { loadConfig } from "../../server/src/config.js";
import { createLogger } from "../../server/src/logger.js";
import type { Clock } from "../../server/src/shared/clock.js";
import { createTestDatabase, type TestDatabase } from "./postgres.js";
import { deleteKeys, testRedisUrl, uniqueKeyPrefix } from "./redis.js";

/** A whole Stagedoor started for a test, on its own database and port. */
export interface TestServer extends RunningServer {
  /** The test database's URL, for tests that check rows directly. */
  readonly databaseUrl: string;
  /** The id of the seeded demo concert. */
  readonly concertId: string;
}

/** How to start a test server. */
export interface TestServerOptions {
  /** "redis" needs TEST_REDIS_URL; callers check {@link testRedisUrl} first. */
  readonly queue?: "memory" | "redis";
  readonly clock?: Clock;
  /** Extra environment, e.g. QUEUE_MAX_ACTIVE or AUTH_MODE. */
  readonly env?: Readonly<Record<string, string>>;
  /** Leave promotion and sweeping to the test. */
  readonly withoutJobs?: boolean;
  /**
   * A database the test prepared (e.g. with roles of its own); it is handed
   * over and dropped by `stop()`. A fresh one when omitted.
   */
  readonly database?: TestDatabase;
}

/**
 * Starts the real server (the same `bootstrap` as `npm start`) on port 0,
 * with a fresh database seeded with the demo catalog, and the in-process or a
 * Redis queue store under a unique key prefix. `stop()` stops it and removes
 * everything it created.
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const database = options.database ?? (await createTestDatabase());
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-test-data-"));
  const keyPrefix = uniqueKeyPrefix();
  const useRedis = options.queue === "redis";
  if (useRedis && !testRedisUrl) throw new Error("a Redis test server needs TEST_REDIS_URL");
  const config = loadConfig({
    DATABASE_URL: database.url,
    AUTH_MODE: "trust",
    HOST: "127.0.0.1",
    PORT: "0",
    DATA_DIR: dataDir,
    SEED_DEMO: "true",
    TOKEN_SECRET: randomBytes(32).toString("hex"),
    DB_POOL_MAX: "10",
    SHUTDOWN_TIMEOUT_MS: "2000",
    // Tests that want the web box office's files pass WEB_DIR.
    SERVE_WEB: options.env?.WEB_DIR ? "true" : "false",
    ...(useRedis && testRedisUrl ? { REDIS_URL: testRedisUrl, REDIS_KEY_PREFIX: keyPrefix } : {}),
    ...options.env,
  });
  const logger = createLogger(process.env.TEST_LOG_LEVEL ?? "silent");
  let server: RunningServer;
  try {
    server = await bootstrap(config, {
      logger,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.withoutJobs ? { withoutJobs: true } : {}),
    });
  } catch (error) {
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const concert = await server.services.catalog.defaultConcert();
  let stopped: Promise<void> | undefined;
  return {
    ...server,
    databaseUrl: database.url,
    concertId: concert.id,
    stop() {
      stopped ??= (async () => {
        await server.stop();
        await database.drop();
        await rm(dataDir, { recursive: true, force: true });
        if (useRedis && testRedisUrl) await deleteKeys(testRedisUrl, keyPrefix);
      })();
      return stopped;
    },
  };
}
