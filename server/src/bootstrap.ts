import path from "node:path";
import { createApp } from "./app.js";
import type { Config } from "./config.js";
import { buildServices, type Services, settingsFromConfig } from "./container.js";
import { startEmbeddedPostgres } from "./embedded/embedded-postgres.js";
import { createDemoCrowd } from "./jobs/demo-crowd.js";
import { createIntervalJob } from "./jobs/interval-job.js";
import type { Logger } from "./logger.js";
import { createMetrics } from "./metrics/metrics.js";
import { startMetricsServer } from "./metrics/metrics-server.js";
import { seedDemoCatalog } from "./modules/catalog/index.js";
import { entities } from "./modules/entities.js";
import {
  HmacUserVerifier,
  TrustUserVerifier,
  type UserVerifier,
} from "./modules/identity/index.js";
import type { QueueStore } from "./modules/queue/index.js";
import { MemoryQueueStore, queueScripts, RedisQueueStore } from "./modules/queue/index.js";
import { RateLimiter } from "./modules/ratelimit/index.js";
import type { Database } from "./persistence/database.js";
import { migrateUp, openOrm, poolCounts } from "./persistence/orm.js";
import { loadOrCreateServerSecret } from "./persistence/server-secret.js";
import { sumFigures } from "./persistence/write-batcher.js";
import { createRedisClient, createRedisClusterClient } from "./redis/redis-client.js";
import { type Clock, systemClock } from "./shared/clock.js";
import { TrustedProxies } from "./transport/client-address.js";
import { startHttpServer } from "./transport/http-server.js";

/** A running Stagedoor: where it listens, its services, and how to stop it. */
export interface RunningServer {
  readonly port: number;
  /** Where Prometheus metrics are served (`METRICS_PORT`), if they are. */
  readonly metricsPort: number | undefined;
  readonly url: string;
  readonly services: Services;
  /** Drains and stops everything it started; safe to call more than once. */
  stop(): Promise<void>;
}

/** Test seams; production passes none of them. */
export interface BootstrapOptions {
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Skip the background jobs (tests that drive promotion and sweeping themselves). */
  readonly withoutJobs?: boolean;
}

/**
 * Starts the whole box office from a configuration: PostgreSQL (the given one,
 * or an embedded one), migrations, the demo seed, the queue store (Redis, or
 * in-process), the services and jobs, and the HTTP server. Everything started
 * is stopped again, in reverse order, by `stop()` or when start-up fails.
 */
export async function bootstrap(config: Config, options: BootstrapOptions): Promise<RunningServer> {
  const { logger } = options;
  const clock = options.clock ?? systemClock;
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const step of cleanups.reverse()) {
      try {
        await step();
      } catch (error) {
        logger.error({ err: error }, "error while stopping");
      }
    }
    cleanups.length = 0;
  };

  try {
    let databaseUrl = config.databaseUrl;
    if (databaseUrl === undefined) {
      const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, logger });
      cleanups.push(() => embedded.stop());
      databaseUrl = embedded.url;
      logger.info({ port: embedded.port, dataDir: config.dataDir }, "embedded PostgreSQL started");
    }
    const orm = await openOrm({ url: databaseUrl, entities, poolMax: config.dbPoolMax });
    cleanups.push(() => orm.close());
    await migrateUp(orm, databaseUrl);
    const db = orm.em;
    // Catalog reads may go to a replica; everything else stays on the primary.
    let readDb: Database = db;
    if (config.databaseReadUrl !== undefined) {
      const readOrm = await openOrm({
        url: config.databaseReadUrl,
        entities,
        poolMax: config.dbPoolMax,
        applicationName: "stagedoor-read",
      });
      cleanups.push(() => readOrm.close());
      readDb = readOrm.em;
      logger.info("catalog reads go to DATABASE_READ_URL");
    }
    if (config.seedDemo && (await seedDemoCatalog(db, clock.now()))) {
      logger.info("seeded the demo catalog");
    }
    const tokenSecret = config.tokenSecret
      ? Buffer.from(config.tokenSecret, "utf8")
      : await loadOrCreateServerSecret(db.fork(), "queue-token");
    const ticketKey = config.ticketSigningKey
      ? Buffer.from(config.ticketSigningKey, "utf8")
      : await loadOrCreateServerSecret(db.fork(), "ticket-signing");

    const settings = settingsFromConfig(config);
    let store: QueueStore;
    let pingStore: () => Promise<unknown>;
    const redisEvents = {
      onError: (error: unknown) =>
        logger.warn({ err: error }, "redis connection lost; reconnecting"),
      onRecover: () => logger.info("redis connection restored"),
    };
    if (config.redisClusterUrls !== undefined) {
      // Each concert's line (and its seat gate) lives in one slot, so every
      // queue call is one command to the node that owns it.
      const cluster = await createRedisClusterClient({
        urls: config.redisClusterUrls,
        scripts: queueScripts,
        ...redisEvents,
      });
      cleanups.push(() => cluster.close());
      store = new RedisQueueStore(cluster, settings.queue, config.redisKeyPrefix);
      pingStore = () => cluster.ping();
      logger.info({ seeds: config.redisClusterUrls.length }, "waiting room on Redis Cluster");
    } else if (config.redisUrl !== undefined) {
      const redis = await createRedisClient({
        url: config.redisUrl,
        scripts: queueScripts,
        ...redisEvents,
      });
      cleanups.push(() => redis.close());
      store = new RedisQueueStore(redis, settings.queue, config.redisKeyPrefix);
      pingStore = () => redis.ping();
    } else {
      const memory = new MemoryQueueStore(settings.queue, {
        persistPath: path.join(config.dataDir, "queue-state.json"),
      });
      store = memory;
      pingStore = async () => undefined;
      const checkpoints = createIntervalJob(
        "queue-checkpoint",
        2_000,
        () => memory.checkpoint(),
        logger,
      );
      checkpoints.start();
      cleanups.push(() => checkpoints.stop());
      logger.info(
        "waiting room kept in-process (set REDIS_URL or REDIS_CLUSTER_URLS to share it between instances)",
      );
    }
    cleanups.push(() => store.close());

    const verifier: UserVerifier =
      config.auth.mode === "hmac"
        ? new HmacUserVerifier(config.auth.secret)
        : new TrustUserVerifier();
    // Metrics exist only when they are served, on their own port.
    const metrics = config.metricsPort === undefined ? undefined : createMetrics();
    const services = buildServices({
      ...(metrics ? { saleEvents: metrics.saleEvents, queueEvents: metrics.queueEvents } : {}),
      db,
      readDb,
      store,
      tokenSecret,
      ticketKey,
      verifier,
      clock,
      logger,
      settings,
    });
    cleanups.push(() => services.seatGate.close());
    // After the jobs stop: the relay's connection to NATS.
    cleanups.push(() => services.relay.close());
    // The queue store enforces each concert's sale settings: copy them in,
    // in case it lost them (a new Redis, or the in-process store's restart).
    const refused = await services.saleSettings.mirrorAll();
    if (refused.length > 0) {
      logger.warn({ concerts: refused }, "opening already drawn; the store kept its opening time");
    }

    let draining = false;
    const probe = {
      async isServing() {
        if (draining) return false;
        try {
          // Not the read replica: losing it fails catalog reads only, and must
          // not take every instance out of the balancer.
          await Promise.all([db.fork().execute("select 1"), pingStore()]);
          return true;
        } catch {
          return false;
        }
      },
    };
    const app = createApp({
      ...(metrics ? { observeCall: metrics.observeCall } : {}),
      services,
      probe,
      logger,
      corsOrigins: config.corsOrigins,
      webDir: config.webDir,
      webPage: {
        auth: config.auth.mode,
        loginOrigins: config.webLogin.origins,
        ...(config.webLogin.url ? { loginUrl: config.webLogin.url } : {}),
      },
      limits: {
        limiter: new RateLimiter(config.rateLimits),
        proxies: new TrustedProxies(config.trustedProxies),
      },
    });
    const server = await startHttpServer({
      host: config.host,
      port: config.port,
      listener: app.listener,
      logger,
      limits: settings.http,
    });
    cleanups.push(async () => {
      draining = true;
      app.shutdown();
      await server.close(config.shutdownTimeoutMs);
    });
    let metricsPort: number | undefined;
    if (metrics !== undefined && config.metricsPort !== undefined) {
      metrics.watch({
        database: () => db.fork().execute("select 1"),
        redis: pingStore,
        pool: () => poolCounts(orm),
        lines: () => services.queue.openLines(),
        writes: () => sumFigures([services.writes.figures, services.holdWrites.figures]),
      });
      const metricsServer = await startMetricsServer({
        host: config.host,
        port: config.metricsPort,
        metrics,
        logger,
      });
      cleanups.push(() => metricsServer.close());
      metricsPort = metricsServer.port;
      logger.info({ port: metricsPort }, "metrics served at /metrics");
    }
    services.watchHub.start();
    if (!options.withoutJobs) {
      const jobs = [...services.jobs];
      if (config.demoCrowd > 0) {
        jobs.push(
          createDemoCrowd({
            queue: services.queue,
            concertId: async () => (await services.catalog.defaultConcert()).id,
            clock,
            logger,
            size: config.demoCrowd,
          }),
        );
        logger.info(
          { demoCrowd: config.demoCrowd, queueMaxActive: config.queueMaxActive },
          "demo crowd: simulated fans keep the waiting room busy (DEMO_CROWD=0 turns them off)",
        );
      }
      for (const job of jobs) job.start();
      cleanups.push(() => Promise.all(jobs.map((job) => job.stop())));
    }

    const host = config.host.includes(":") ? `[${config.host}]` : config.host;
    let stopping: Promise<void> | undefined;
    return {
      port: server.port,
      metricsPort,
      url: `http://${host}:${server.port}`,
      services,
      stop: () => {
        stopping ??= cleanup();
        return stopping;
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
