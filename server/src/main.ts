import cluster from "node:cluster";
import { type Config, ConfigError, loadConfig } from "./config.js";
import { createLogger } from "./logger.js";
import { announceReady, superviseWorkers } from "./workers.js";

/**
 * The process entry: read the configuration, start everything, and drain
 * cleanly on SIGTERM or SIGINT (stop accepting, end streams, finish in-flight
 * calls, close sessions, the pool, Redis and the embedded PostgreSQL).
 *
 * With WORKERS > 1 this same file runs as the primary, which only supervises
 * (see workers.ts), and again in each worker, which serves exactly as a
 * single process does and logs with its pid.
 */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`stagedoor: configuration error: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  const role = config.workers === 1 ? "single" : cluster.isPrimary ? "primary" : "worker";
  const logger =
    role === "single"
      ? createLogger(config.logLevel)
      : createLogger(config.logLevel).child({ pid: process.pid, role });
  // A bug that leaves a promise unhandled is logged, not allowed to take the
  // box office down mid-sale; a synchronous throw nobody caught leaves the
  // process in an unknown state, so that one still ends it.
  process.on("unhandledRejection", (reason) => {
    logger.error({ err: reason }, "unhandled promise rejection");
  });
  process.on("uncaughtException", (error) => {
    logger.fatal({ err: error }, "uncaught exception; exiting");
    process.exit(1);
  });
  const details = {
    database: config.databaseUrl ? "external" : "embedded",
    queue: config.redisClusterUrls ? "redis-cluster" : config.redisUrl ? "redis" : "in-process",
    auth: config.auth.mode,
  };
  if (role === "primary") {
    superviseWorkers({
      workers: config.workers,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      logger,
      details,
    });
    return;
  }

  // Only processes that serve load the server (the primary stays small).
  const { bootstrap } = await import("./bootstrap.js");
  const server = await bootstrap(config, { logger });
  if (role === "worker") {
    logger.info({ url: server.url }, `worker serving on ${server.url}`);
    announceReady(server.url);
  } else {
    logger.info({ url: server.url, ...details }, `Stagedoor is serving on ${server.url}`);
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "draining");
    server.stop().then(
      () => {
        logger.info("stopped");
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error: unknown) => {
  console.error("stagedoor: failed to start:", error);
  process.exit(1);
});
