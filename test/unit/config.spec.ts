import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { ConfigError, loadConfig } from "../../server/src/config.js";
import { settingsFromConfig } from "../../server/src/container.js";
import { thrownBy } from "./unit-helpers.js";

const DATABASE_URL = "postgres://box:office@db.internal:5432/stagedoor";
const HMAC_SECRET = "s".repeat(32);
// A fixed base so DATA_DIR never depends on where the tests run.
const INIT_CWD = path.resolve("/srv/stagedoor-checkout");

/** Loads a config from exactly these variables (never from the real environment). */
function load(env: Record<string, string>, cpus = 4) {
  return loadConfig({ INIT_CWD, ...env }, { availableParallelism: () => cpus });
}

/** Asserts loading fails with a ConfigError whose message starts with `variable`. */
function expectConfigError(env: Record<string, string>, variable: string, cpus = 4): string {
  const error = thrownBy(() => load(env, cpus));
  expect(error, String(error)).to.be.instanceOf(ConfigError);
  const message = (error as ConfigError).message;
  expect(message.startsWith(`${variable} `), message).to.equal(true);
  return message;
}

describe("loadConfig", () => {
  describe("embedded defaults", () => {
    it("serves on 127.0.0.1:8080 with the documented defaults", () => {
      const config = load({});
      expect(config).to.deep.include({
        host: "127.0.0.1",
        port: 8080,
        databaseUrl: undefined,
        redisUrl: undefined,
        redisClusterUrls: undefined,
        redisKeyPrefix: "stagedoor:",
        holdTtlSeconds: 300,
        tokenTtlSeconds: 600,
        // The demo: a crowd of 15 simulated fans in a line of 5 slots.
        queueMaxActive: 5,
        demoCrowd: 15,
        queueIdleSeconds: 30,
        tokenSecret: undefined,
        ticketSigningKey: undefined,
        logLevel: "info",
        workers: 1,
      });
    });

    it("runs the demo crowd on the embedded default only, with its small line unless QUEUE_MAX_ACTIVE is set", () => {
      expect(load({ DEMO_CROWD: "0" })).to.deep.include({ demoCrowd: 0, queueMaxActive: 100 });
      expect(load({ DEMO_CROWD: "40", QUEUE_MAX_ACTIVE: "10" })).to.deep.include({
        demoCrowd: 40,
        queueMaxActive: 10,
      });
      expect(load({ SEED_DEMO: "false" })).to.deep.include({ demoCrowd: 0, queueMaxActive: 100 });
      const production = { DATABASE_URL, AUTH_MODE: "trust" };
      expect(load(production)).to.deep.include({ demoCrowd: 0, queueMaxActive: 100 });
      expect(load({ ...production, SEED_DEMO: "true" })).to.deep.include({ demoCrowd: 0 });
      expect(load({ ...production, DEMO_CROWD: "3" })).to.deep.include({
        demoCrowd: 3,
        queueMaxActive: 5,
      });
      const hmac = { AUTH_MODE: "hmac", AUTH_HMAC_SECRET: HMAC_SECRET };
      expect(load(hmac).demoCrowd).to.equal(0);
      expectConfigError({ ...hmac, DEMO_CROWD: "3" }, "DEMO_CROWD");
    });

    it("trusts user ids and seeds the demo when no DATABASE_URL is set", () => {
      const config = load({});
      expect(config.auth).to.deep.equal({ mode: "trust" });
      expect(config.seedDemo).to.equal(true);
    });

    it("keeps money limits as exact bigints", () => {
      const config = load({});
      expect(config.walletMaxRecharge).to.equal(10_000_000n);
      expect(config.walletMaxBalance).to.equal(1_000_000_000_000n);
      const big = load({
        WALLET_MAX_RECHARGE: "999999999999",
        WALLET_MAX_BALANCE: "999999999999999",
      });
      expect(big.walletMaxRecharge).to.equal(999_999_999_999n);
      expect(big.walletMaxBalance).to.equal(999_999_999_999_999n);
      expect(typeof big.walletMaxBalance).to.equal("bigint");
    });

    it("returns a frozen object, auth included", () => {
      const config = load({ DATABASE_URL, AUTH_MODE: "hmac", AUTH_HMAC_SECRET: HMAC_SECRET });
      expect(Object.isFrozen(config)).to.equal(true);
      expect(Object.isFrozen(config.auth)).to.equal(true);
      expect(() => {
        (config as { port: number }).port = 1;
      }).to.throw(TypeError);
      expect(config.port).to.equal(8080);
    });
  });

  describe("DATA_DIR", () => {
    it("defaults to .data under the folder npm was run from (INIT_CWD)", () => {
      expect(load({}).dataDir).to.equal(path.join(INIT_CWD, ".data"));
    });

    it("resolves a relative DATA_DIR against INIT_CWD and keeps an absolute one", () => {
      expect(load({ DATA_DIR: "var/pg" }).dataDir).to.equal(path.join(INIT_CWD, "var", "pg"));
      expect(load({ DATA_DIR: "/var/lib/stagedoor" }).dataDir).to.equal("/var/lib/stagedoor");
    });

    it("falls back to the working directory without INIT_CWD", () => {
      expect(loadConfig({ DATA_DIR: "rel" }).dataDir).to.equal(path.resolve(process.cwd(), "rel"));
      expect(loadConfig({ INIT_CWD: "", DATA_DIR: "rel" }).dataDir).to.equal(
        path.resolve(process.cwd(), "rel"),
      );
    });
  });

  describe("browser access", () => {
    it("allows no other origin by default and serves the built web box office", () => {
      const config = load({});
      expect(config.corsOrigins).to.deep.equal([]);
      expect(config.webDir).to.match(/examples[\\/]web[\\/]dist$/);
    });

    it("reads CORS_ORIGINS as a comma-separated list of exact origins", () => {
      const config = load({ CORS_ORIGINS: "https://tickets.example.com, http://localhost:5173" });
      expect(config.corsOrigins).to.deep.equal([
        "https://tickets.example.com",
        "http://localhost:5173",
      ]);
      expect(Object.isFrozen(config.corsOrigins)).to.equal(true);
    });

    it("refuses CORS_ORIGINS entries that are not bare origins", () => {
      for (const bad of ["*", "tickets.example.com", "https://x.example/path", "ftp://x.example"]) {
        expectConfigError({ CORS_ORIGINS: bad }, "CORS_ORIGINS");
      }
    });

    it("has no sign-in page for the box office by default", () => {
      expect(load({}).webLogin).to.deep.equal({ url: undefined, origins: [] });
    });

    it("takes the sign-in page's origin as the one that may hand over assertions", () => {
      const config = load({ WEB_LOGIN_URL: "https://www.example.com/login?to=tickets" });
      expect(config.webLogin).to.deep.equal({
        url: "https://www.example.com/login?to=tickets",
        origins: ["https://www.example.com"],
      });
      expect(Object.isFrozen(config.webLogin.origins)).to.equal(true);
    });

    it("reads WEB_LOGIN_ORIGINS as exact origins, over the sign-in page's own", () => {
      const config = load({
        WEB_LOGIN_URL: "https://www.example.com/login",
        WEB_LOGIN_ORIGINS: "https://id.example.com, https://www.example.com",
      });
      expect(config.webLogin.origins).to.deep.equal([
        "https://id.example.com",
        "https://www.example.com",
      ]);
      expectConfigError({ WEB_LOGIN_ORIGINS: "https://id.example.com/x" }, "WEB_LOGIN_ORIGINS");
      expectConfigError({ WEB_LOGIN_URL: "javascript:alert(1)" }, "WEB_LOGIN_URL");
    });

    it("serves no web files with SERVE_WEB=false, and resolves WEB_DIR against INIT_CWD", () => {
      expect(load({ SERVE_WEB: "false" }).webDir).to.equal(undefined);
      expect(load({ WEB_DIR: "site" }).webDir).to.equal(path.join(INIT_CWD, "site"));
    });
  });

  describe("production mode", () => {
    it("refuses DATABASE_URL without AUTH_MODE, naming AUTH_MODE", () => {
      const message = expectConfigError({ DATABASE_URL }, "AUTH_MODE");
      expect(message).to.contain("DATABASE_URL");
    });

    it("accepts an explicit AUTH_MODE=trust and does not seed by default", () => {
      const config = load({ DATABASE_URL, AUTH_MODE: "trust" });
      expect(config.auth).to.deep.equal({ mode: "trust" });
      expect(config.databaseUrl).to.equal(DATABASE_URL);
      expect(config.seedDemo).to.equal(false);
    });

    it("reads catalog reads' DATABASE_READ_URL, unset by default", () => {
      const replica = "postgres://reader@replica.internal:5432/stagedoor";
      expect(load({ DATABASE_URL, AUTH_MODE: "trust" }).databaseReadUrl).to.equal(undefined);
      expect(
        load({ DATABASE_URL, AUTH_MODE: "trust", DATABASE_READ_URL: replica }).databaseReadUrl,
      ).to.equal(replica);
    });

    it("refuses a DATABASE_READ_URL that is not a PostgreSQL URL, or without DATABASE_URL", () => {
      for (const bad of ["replica.internal:5432", "mysql://replica/stagedoor"]) {
        expectConfigError(
          { DATABASE_URL, AUTH_MODE: "trust", DATABASE_READ_URL: bad },
          "DATABASE_READ_URL",
        );
      }
      const message = expectConfigError(
        { DATABASE_READ_URL: "postgres://reader@replica/stagedoor" },
        "DATABASE_READ_URL",
      );
      expect(message).to.contain("DATABASE_URL");
    });

    it("accepts postgresql: URLs too", () => {
      const url = "postgresql://localhost/stagedoor";
      expect(load({ DATABASE_URL: url, AUTH_MODE: "trust" }).databaseUrl).to.equal(url);
    });

    it("requires AUTH_HMAC_SECRET of at least 32 characters for hmac", () => {
      expectConfigError({ DATABASE_URL, AUTH_MODE: "hmac" }, "AUTH_HMAC_SECRET");
      expectConfigError(
        { DATABASE_URL, AUTH_MODE: "hmac", AUTH_HMAC_SECRET: "s".repeat(31) },
        "AUTH_HMAC_SECRET",
      );
      expectConfigError({ AUTH_MODE: "hmac", AUTH_HMAC_SECRET: "short" }, "AUTH_HMAC_SECRET");
      const config = load({ DATABASE_URL, AUTH_MODE: "hmac", AUTH_HMAC_SECRET: HMAC_SECRET });
      expect(config.auth).to.deep.equal({ mode: "hmac", secret: HMAC_SECRET });
    });

    it("honours SEED_DEMO either way", () => {
      expect(load({ DATABASE_URL, AUTH_MODE: "trust", SEED_DEMO: "yes" }).seedDemo).to.equal(true);
      expect(load({ SEED_DEMO: "0" }).seedDemo).to.equal(false);
      expect(load({ SEED_DEMO: "off" }).seedDemo).to.equal(false);
      expect(load({ SEED_DEMO: "true" }).seedDemo).to.equal(true);
    });
  });

  describe("REDIS_CLUSTER_URLS", () => {
    it("takes comma-separated seed nodes of a Redis Cluster", () => {
      const config = load({
        REDIS_CLUSTER_URLS:
          " redis://10.0.0.1:7000, redis://10.0.0.2:7000 ,,rediss://10.0.0.3:7000",
      });
      expect(config.redisClusterUrls).to.deep.equal([
        "redis://10.0.0.1:7000",
        "redis://10.0.0.2:7000",
        "rediss://10.0.0.3:7000",
      ]);
      expect(config.redisUrl).to.equal(undefined);
    });

    it("refuses a seed that is not a redis:// URL, or no seed at all", () => {
      expect(
        expectConfigError(
          { REDIS_CLUSTER_URLS: "redis://a:7000,http://b:7000" },
          "REDIS_CLUSTER_URLS",
        ),
      ).to.contain("redis://");
      expectConfigError({ REDIS_CLUSTER_URLS: " , " }, "REDIS_CLUSTER_URLS");
    });

    it("refuses REDIS_URL and REDIS_CLUSTER_URLS together, naming both", () => {
      const message = expectConfigError(
        { REDIS_URL: "redis://cache:6379/0", REDIS_CLUSTER_URLS: "redis://a:7000" },
        "REDIS_URL",
      );
      expect(message).to.contain("REDIS_CLUSTER_URLS");
    });

    it("lets several workers share a cluster instead of one primary", () => {
      const config = load({
        DATABASE_URL,
        AUTH_MODE: "trust",
        REDIS_CLUSTER_URLS: "redis://a:7000",
        WORKERS: "2",
      });
      expect(config.workers).to.equal(2);
    });
  });

  describe("group commit (DB_WRITE_LANES, DB_WRITE_BATCH)", () => {
    it("shares transactions among up to 16 writes on up to 2 lanes, never more lanes than the pool", () => {
      expect(load({}).writeBatch).to.deep.equal({ lanes: 2, maxBatch: 16 });
      expect(load({ DB_POOL_MAX: "1" }).writeBatch).to.deep.equal({ lanes: 1, maxBatch: 16 });
      expect(settingsFromConfig(load({})).writes).to.deep.equal({
        lanes: 2,
        maxBatch: 16,
        maxWaitMs: 10_000,
      });
    });

    it("takes explicit lanes and batch sizes, and DB_WRITE_BATCH=1 for no batching", () => {
      expect(load({ DB_WRITE_LANES: "2", DB_WRITE_BATCH: "32" }).writeBatch).to.deep.equal({
        lanes: 2,
        maxBatch: 32,
      });
      expect(load({ DB_WRITE_BATCH: "1" }).writeBatch.maxBatch).to.equal(1);
    });

    it("refuses more lanes than pooled connections, and batches past 32 or below 1", () => {
      const message = expectConfigError(
        { DB_POOL_MAX: "5", DB_WRITE_LANES: "6" },
        "DB_WRITE_LANES",
      );
      expect(message).to.contain("DB_POOL_MAX");
      expectConfigError({ DB_WRITE_BATCH: "33" }, "DB_WRITE_BATCH");
      expectConfigError({ DB_WRITE_BATCH: "0" }, "DB_WRITE_BATCH");
      expectConfigError({ DB_WRITE_LANES: "0" }, "DB_WRITE_LANES");
    });
  });

  describe("WORKERS", () => {
    const shared = { DATABASE_URL, AUTH_MODE: "trust", REDIS_URL: "redis://cache.internal:6379/0" };

    it("defaults to one process, which needs neither Redis nor an external database", () => {
      expect(load({}).workers).to.equal(1);
      expect(load({ WORKERS: "" }).workers).to.equal(1);
      expect(load({ WORKERS: "1" }).workers).to.equal(1);
    });

    it("takes a whole number from 1 to 64 when Redis and PostgreSQL are shared", () => {
      expect(load({ ...shared, WORKERS: "2" }).workers).to.equal(2);
      expect(load({ ...shared, WORKERS: "64" }).workers).to.equal(64);
    });

    it("resolves auto to the CPUs this process may use, at most 64", () => {
      expect(load({ ...shared, WORKERS: "auto" }, 4).workers).to.equal(4);
      expect(load({ ...shared, WORKERS: "auto" }, 200).workers).to.equal(64);
      expect(loadConfig({ ...shared, WORKERS: "auto" }).workers).to.equal(
        Math.min(64, os.availableParallelism()),
      );
    });

    it("treats auto on a 1-CPU machine as one process, with no Redis needed", () => {
      const config = load({ WORKERS: "auto" }, 1);
      expect(config.workers).to.equal(1);
      expect(config.redisUrl).to.equal(undefined);
      expect(config.databaseUrl).to.equal(undefined);
    });

    for (const bad of ["0", "65", "-1", "1.5", "two", "AUTO", " 2", "2 "]) {
      it(`refuses WORKERS=${JSON.stringify(bad)}, saying what it takes`, () => {
        const message = expectConfigError({ ...shared, WORKERS: bad }, "WORKERS");
        expect(message).to.contain("1 to 64").and.to.contain("auto");
      });
    }

    it("refuses several workers without REDIS_URL: the in-process line cannot be shared", () => {
      const { REDIS_URL: _, ...noRedis } = shared;
      const message = expectConfigError({ ...noRedis, WORKERS: "2" }, "WORKERS=2");
      expect(message).to.contain("needs REDIS_URL");
      expect(message).to.contain("in-process waiting room cannot be shared between processes");
      expect(message).to.contain("or WORKERS=1");
      expect(message).not.to.contain("DATABASE_URL");
    });

    it("refuses several workers on the embedded PostgreSQL", () => {
      const message = expectConfigError({ REDIS_URL: shared.REDIS_URL, WORKERS: "3" }, "WORKERS=3");
      expect(message).to.contain("needs DATABASE_URL");
      expect(message).to.contain("embedded PostgreSQL is a single-process development convenience");
      expect(message).not.to.contain("needs REDIS_URL");
    });

    it("names both variables when both are missing, and says what auto resolved to", () => {
      const message = expectConfigError({ WORKERS: "auto" }, "WORKERS=auto", 8);
      expect(message).to.contain("(8 CPUs)");
      expect(message).to.contain("needs REDIS_URL and DATABASE_URL");
      expect(message).to.contain("waiting room").and.to.contain("embedded PostgreSQL");
    });
  });

  describe("empty variables count as unset", () => {
    it("uses defaults for empty values", () => {
      const config = load({
        PORT: "",
        HOLD_TTL_SECONDS: "",
        LOG_LEVEL: "",
        REDIS_URL: "",
        DATA_DIR: "",
        SEED_DEMO: "",
      });
      expect(config.port).to.equal(8080);
      expect(config.holdTtlSeconds).to.equal(300);
      expect(config.logLevel).to.equal("info");
      expect(config.redisUrl).to.equal(undefined);
      expect(config.dataDir).to.equal(path.join(INIT_CWD, ".data"));
      expect(config.seedDemo).to.equal(true);
    });

    it("treats an empty DATABASE_URL as embedded mode", () => {
      const config = load({ DATABASE_URL: "" });
      expect(config.databaseUrl).to.equal(undefined);
      expect(config.auth.mode).to.equal("trust");
    });

    it("treats an empty AUTH_MODE as missing when DATABASE_URL is set", () => {
      expectConfigError({ DATABASE_URL, AUTH_MODE: "" }, "AUTH_MODE");
    });
  });

  describe("bad values stop start-up with a message naming the variable", () => {
    const cases: [string, string][] = [
      ["PORT", "http"],
      ["PORT", "-1"],
      ["PORT", "65536"],
      ["PORT", "80.5"],
      ["PORT", " 8080"],
      ["METRICS_PORT", "metrics"],
      ["METRICS_PORT", "65536"],
      ["HOLD_TTL_SECONDS", "0"],
      ["HOLD_TTL_SECONDS", "4"],
      ["HOLD_TTL_SECONDS", "3601"],
      ["HOLD_TTL_SECONDS", "5m"],
      ["TOKEN_TTL_SECONDS", "9"],
      ["QUEUE_MAX_ACTIVE", "0"],
      ["QUEUE_MAX_ACTIVE", "1e3"],
      ["QUEUE_MAX_ACTIVE", "many"],
      ["QUEUE_IDLE_SECONDS", "1"],
      ["REDIS_URL", "localhost:6379"],
      ["REDIS_URL", "http://localhost:6379"],
      ["DATABASE_URL", "mysql://localhost/db"],
      ["DATABASE_URL", "not a url"],
      ["LOG_LEVEL", "verbose"],
      ["LOG_LEVEL", "INFO"],
      ["AUTH_MODE", "oidc"],
      ["SEED_DEMO", "maybe"],
      ["TOKEN_SECRET", "too-short"],
      ["TICKET_SIGNING_KEY", "too-short"],
      ["REDIS_KEY_PREFIX", "has space"],
      ["WALLET_MAX_RECHARGE", "0"],
      ["WALLET_MAX_RECHARGE", "-5"],
      ["WALLET_MAX_BALANCE", "1.5"],
      ["DB_POOL_MAX", "0"],
    ];
    for (const [variable, value] of cases) {
      it(`${variable}=${JSON.stringify(value)}`, () => {
        expectConfigError({ [variable]: value }, variable);
      });
    }

    it("accepts the boundaries of each range", () => {
      const config = load({
        PORT: "0",
        HOLD_TTL_SECONDS: "5",
        QUEUE_MAX_ACTIVE: "1",
        REDIS_URL: "rediss://cache.internal:6380/2",
        LOG_LEVEL: "silent",
      });
      expect(config.port).to.equal(0);
      expect(config.holdTtlSeconds).to.equal(5);
      expect(config.queueMaxActive).to.equal(1);
      expect(config.redisUrl).to.equal("rediss://cache.internal:6380/2");
      expect(config.logLevel).to.equal("silent");
      expect(load({ PORT: "65535", HOLD_TTL_SECONDS: "3600" })).to.deep.include({
        port: 65535,
        holdTtlSeconds: 3600,
      });
    });

    it("serves no metrics unless METRICS_PORT is set, and never on PORT", () => {
      expect(load({}).metricsPort).to.equal(undefined);
      expect(load({ METRICS_PORT: "" }).metricsPort).to.equal(undefined);
      expect(load({ METRICS_PORT: "9464" }).metricsPort).to.equal(9464);
      expect(load({ PORT: "0", METRICS_PORT: "0" }).metricsPort).to.equal(0);
      const message = expectConfigError({ PORT: "9000", METRICS_PORT: "9000" }, "METRICS_PORT");
      expect(message).to.include("PORT");
      // Workers would share one metrics socket: a scrape would see one random worker.
      const shared = { DATABASE_URL, AUTH_MODE: "trust", REDIS_URL: "redis://r:6379" };
      expectConfigError({ ...shared, WORKERS: "2", METRICS_PORT: "9464" }, "METRICS_PORT");
      expect(load({ ...shared, WORKERS: "2" }).metricsPort).to.equal(undefined);
    });

    it("refuses WALLET_MAX_RECHARGE above WALLET_MAX_BALANCE", () => {
      const message = expectConfigError(
        { WALLET_MAX_RECHARGE: "10000001", WALLET_MAX_BALANCE: "10000000" },
        "WALLET_MAX_RECHARGE",
      );
      expect(message).to.contain("WALLET_MAX_BALANCE");
      expect(
        load({ WALLET_MAX_RECHARGE: "10000000", WALLET_MAX_BALANCE: "10000000" }).walletMaxRecharge,
      ).to.equal(10_000_000n);
    });

    it("ignores variables it does not know", () => {
      expect(load({ PATH: "/bin", NODE_ENV: "production", HOME: "" }).port).to.equal(8080);
    });
  });

  describe("connection and stream limits", () => {
    const LIMIT_VARIABLES = {
      HTTP_SNIFF_TIMEOUT_SECONDS: "sniffTimeoutSeconds",
      HTTP_HEADERS_TIMEOUT_SECONDS: "headersTimeoutSeconds",
      HTTP_REQUEST_TIMEOUT_SECONDS: "requestTimeoutSeconds",
      HTTP_KEEPALIVE_TIMEOUT_SECONDS: "keepAliveTimeoutSeconds",
      HTTP_SEND_TIMEOUT_SECONDS: "sendTimeoutSeconds",
      HTTP1_MAX_PIPELINED_REQUESTS: "http1MaxPipelinedRequests",
      HTTP2_MAX_CONCURRENT_STREAMS: "http2MaxConcurrentStreams",
      HTTP2_IDLE_TIMEOUT_SECONDS: "http2IdleTimeoutSeconds",
      WATCH_STREAMS_PER_TOKEN: "watchStreamsPerToken",
      WATCH_STREAMS_MAX: "watchStreamsMax",
    } as const;

    it("defaults to the limits SECURITY.md lists", () => {
      const config = load({});
      expect(config.limits).to.deep.equal({
        sniffTimeoutSeconds: 10,
        headersTimeoutSeconds: 10,
        requestTimeoutSeconds: 30,
        keepAliveTimeoutSeconds: 5,
        sendTimeoutSeconds: 60,
        http1MaxPipelinedRequests: 16,
        http2MaxConcurrentStreams: 100,
        http2IdleTimeoutSeconds: 60,
        watchStreamsPerToken: 3,
        watchStreamsMax: 10_000,
      });
      expect(Object.isFrozen(config.limits)).to.equal(true);
    });

    it("reads every limit from its variable", () => {
      const env = Object.fromEntries(
        Object.keys(LIMIT_VARIABLES).map((v, i) => [v, String(i + 2)]),
      );
      const limits = load(env).limits;
      for (const [i, field] of Object.values(LIMIT_VARIABLES).entries()) {
        expect(limits[field], field).to.equal(i + 2);
      }
    });

    for (const variable of Object.keys(LIMIT_VARIABLES)) {
      it(`refuses ${variable} that is not a whole number in range, saying the range`, () => {
        for (const bad of ["0", "-1", "1.5", "ten", "5s", "99999999"]) {
          const message = expectConfigError({ [variable]: bad }, variable);
          expect(message).to.match(
            /must be a whole number of (seconds|streams|requests) from 1 to \d+/,
          );
        }
      });
    }

    it("refuses a headers timeout longer than the request timeout", () => {
      const message = expectConfigError(
        { HTTP_HEADERS_TIMEOUT_SECONDS: "31" },
        "HTTP_HEADERS_TIMEOUT_SECONDS",
      );
      expect(message).to.contain("HTTP_REQUEST_TIMEOUT_SECONDS");
      expect(
        load({ HTTP_HEADERS_TIMEOUT_SECONDS: "30", HTTP_REQUEST_TIMEOUT_SECONDS: "30" }).limits
          .headersTimeoutSeconds,
      ).to.equal(30);
    });

    it("refuses more watch streams per token than per process", () => {
      const message = expectConfigError(
        { WATCH_STREAMS_PER_TOKEN: "5", WATCH_STREAMS_MAX: "4" },
        "WATCH_STREAMS_PER_TOKEN",
      );
      expect(message).to.contain("WATCH_STREAMS_MAX");
    });

    it("hands the limits to the server and the watch hub in milliseconds", () => {
      const settings = settingsFromConfig(
        load({ HTTP_SEND_TIMEOUT_SECONDS: "45", WATCH_STREAMS_PER_TOKEN: "2" }),
      );
      expect(settings.http).to.deep.equal({
        sniffTimeoutMs: 10_000,
        headersTimeoutMs: 10_000,
        requestTimeoutMs: 30_000,
        keepAliveTimeoutMs: 5_000,
        http1MaxPipelinedRequests: 16,
        sendTimeoutMs: 45_000,
        http2MaxConcurrentStreams: 100,
        http2IdleTimeoutMs: 60_000,
      });
      expect(settings.watch).to.deep.include({ maxPerToken: 2, maxStreams: 10_000 });
    });
  });

  describe("rate limits", () => {
    const RATE_VARIABLES = [
      "RATE_LIMIT_TOKEN_PER_USER",
      "RATE_LIMIT_TOKEN_PER_ADDRESS",
      "RATE_LIMIT_HOLD_PER_USER",
      "RATE_LIMIT_HOLD_PER_ADDRESS",
      "RATE_LIMIT_PAYMENT_PER_USER",
      "RATE_LIMIT_PAYMENT_PER_ADDRESS",
    ];

    it("defaults to the limits SECURITY.md lists, and trusts no proxy", () => {
      const config = load({});
      const perSecond = (burst: number, refill: number) => ({ burst, refill, periodMs: 1_000 });
      expect(config.rateLimits).to.deep.equal({
        token: {
          user: perSecond(30, 1),
          address: perSecond(1_000, 100),
        },
        hold: { user: perSecond(20, 2), address: perSecond(2_000, 200) },
        payment: { user: perSecond(10, 1), address: perSecond(1_000, 100) },
      });
      expect(Object.isFrozen(config.rateLimits.hold)).to.equal(true);
      expect(config.trustedProxies).to.deep.equal([]);
    });

    it("reads BURST,REFILL/UNIT in seconds, minutes or hours, and off", () => {
      const config = load({
        RATE_LIMIT_TOKEN_PER_USER: "3,1/h",
        RATE_LIMIT_TOKEN_PER_ADDRESS: "off",
        RATE_LIMIT_HOLD_PER_USER: " 5 , 2 / min ",
        RATE_LIMIT_HOLD_PER_ADDRESS: "OFF",
        RATE_LIMIT_PAYMENT_PER_USER: "1000000,1000000/second",
        RATE_LIMIT_PAYMENT_PER_ADDRESS: "7,7/hour",
      });
      expect(config.rateLimits).to.deep.equal({
        token: { user: { burst: 3, refill: 1, periodMs: 3_600_000 }, address: undefined },
        hold: { user: { burst: 5, refill: 2, periodMs: 60_000 }, address: undefined },
        payment: {
          user: { burst: 1_000_000, refill: 1_000_000, periodMs: 1_000 },
          address: { burst: 7, refill: 7, periodMs: 3_600_000 },
        },
      });
    });

    for (const variable of RATE_VARIABLES) {
      it(`refuses ${variable} that is not off or BURST,REFILL/UNIT in range, saying the form`, () => {
        for (const bad of [
          "0,1/s",
          "1,0/s",
          "5/s",
          "5,1",
          "5,1/day",
          "1000001,1/s",
          "-1,1/s",
          "on",
        ]) {
          const message = expectConfigError({ [variable]: bad }, variable);
          expect(message).to.contain("BURST,REFILL/UNIT");
        }
      });
    }

    it("reads TRUSTED_PROXIES as addresses and CIDR blocks of either family", () => {
      expect(
        load({ TRUSTED_PROXIES: "10.0.0.0/8, 192.0.2.1 ,fd00::/8,::1" }).trustedProxies,
      ).to.deep.equal([
        { address: "10.0.0.0", prefix: 8, family: "ipv4" },
        { address: "192.0.2.1", prefix: 32, family: "ipv4" },
        { address: "fd00::", prefix: 8, family: "ipv6" },
        { address: "::1", prefix: 128, family: "ipv6" },
      ]);
    });

    it("refuses TRUSTED_PROXIES entries that are not addresses or blocks, naming the entry", () => {
      for (const bad of [
        "proxy.internal",
        "10.0.0.0/33",
        "::1/129",
        "10.0.0.0/8/8",
        "10.0.0/8",
        "10.0.0.0/x",
      ]) {
        const message = expectConfigError(
          { TRUSTED_PROXIES: `127.0.0.1, ${bad}` },
          "TRUSTED_PROXIES",
        );
        expect(message).to.contain(JSON.stringify(bad));
      }
    });
  });

  describe("ADMIN_API_KEYS", () => {
    const HASH_A = "a".repeat(64);
    const HASH_B = "B".repeat(64);

    it("is empty (the operator API disabled) when unset", () => {
      expect(load({}).adminKeys).to.deep.equal([]);
    });

    it("parses comma-separated name:sha256hex pairs into names and hash bytes", () => {
      const keys = load({ ADMIN_API_KEYS: ` ops:${HASH_A} ,support-2.eu:${HASH_B},` }).adminKeys;
      expect(keys.map((key) => key.name)).to.deep.equal(["ops", "support-2.eu"]);
      expect(keys[0]?.sha256.equals(Buffer.alloc(32, 0xaa))).to.equal(true);
      expect(keys[1]?.sha256.equals(Buffer.alloc(32, 0xbb))).to.equal(true);
    });

    it("refuses malformed entries without repeating them", () => {
      for (const value of [
        "ops",
        `ops:${HASH_A.slice(1)}`,
        `ops:${"g".repeat(64)}`,
        `:${HASH_A}`,
        `op s:${HASH_A}`,
        `${"n".repeat(65)}:${HASH_A}`,
      ]) {
        const message = expectConfigError({ ADMIN_API_KEYS: value }, "ADMIN_API_KEYS");
        expect(message).to.not.include(HASH_A.slice(0, 16));
      }
    });

    it("refuses a name or a hash given twice", () => {
      expectConfigError({ ADMIN_API_KEYS: `ops:${HASH_A},ops:${HASH_B}` }, "ADMIN_API_KEYS");
      expectConfigError({ ADMIN_API_KEYS: `ops:${HASH_A},other:${HASH_A}` }, "ADMIN_API_KEYS");
    });

    it("reaches the services' settings", () => {
      const config = load({ ADMIN_API_KEYS: `ops:${HASH_A}` });
      expect(settingsFromConfig(config).adminKeys.map((key) => key.name)).to.deep.equal(["ops"]);
    });
  });
});
