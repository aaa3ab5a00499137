import { isIP } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { MAX_WRITE_BATCH } from "./persistence/write-batcher.js";

/** How the server decides who may take a queue token for a user. */
export type AuthConfig =
  | { readonly mode: "trust" }
  | { readonly mode: "hmac"; readonly secret: string };

/**
 * One operator API key as configured: its name (the audit trail's "who") and
 * the SHA-256 of the key itself; the key is never known to the server.
 */
export interface AdminKeyConfig {
  readonly name: string;
  readonly sha256: Buffer;
}

/** The server's whole configuration, parsed once at start-up. */
export interface Config {
  readonly host: string;
  readonly port: number;
  /**
   * Where Prometheus metrics are served (`METRICS_PORT`, on `host`); unset
   * means no metrics listener at all. Never the public port.
   */
  readonly metricsPort: number | undefined;
  /** Where the embedded PostgreSQL keeps its data (embedded mode only). */
  readonly dataDir: string;
  /** PostgreSQL to use; unset means "start an embedded one". */
  readonly databaseUrl: string | undefined;
  /**
   * A read replica of `databaseUrl` for catalog reads (concerts, dates, seat
   * facts); unset means "read them from `databaseUrl`". Never used for holds,
   * payments, wallets, request ids or seat states.
   */
  readonly databaseReadUrl: string | undefined;
  /**
   * One Redis primary for the waiting room; unset (with no cluster) means
   * "use the in-process store".
   */
  readonly redisUrl: string | undefined;
  /**
   * Seed nodes of a Redis Cluster for the waiting room (`REDIS_CLUSTER_URLS`),
   * instead of one primary; never set together with {@link redisUrl}.
   */
  readonly redisClusterUrls: readonly string[] | undefined;
  /** Prefix of every Redis key, so several deployments can share one Redis. */
  readonly redisKeyPrefix: string;
  readonly holdTtlSeconds: number;
  readonly tokenTtlSeconds: number;
  readonly queueMaxActive: number;
  readonly queueIdleSeconds: number;
  readonly walletMaxRecharge: bigint;
  readonly walletMaxBalance: bigint;
  readonly auth: AuthConfig;
  /** Keys the queue-token derivation; unset means "generate once and keep it in PostgreSQL". */
  readonly tokenSecret: string | undefined;
  /**
   * Keys the MACs of tickets' entry codes (`TICKET_SIGNING_KEY`); unset means
   * "generate once and keep it in PostgreSQL", like {@link tokenSecret}.
   */
  readonly ticketSigningKey: string | undefined;
  readonly seedDemo: boolean;
  /** Simulated fans kept in the waiting room (`DEMO_CROWD`); 0: none. */
  readonly demoCrowd: number;
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  readonly dbPoolMax: number;
  /**
   * Group commit of holds, and of recharges and payments (see
   * persistence/write-batcher.ts): for each of the two, at most `lanes`
   * transactions open at once, each carrying up to `maxBatch` writes
   * (`DB_WRITE_LANES`, `DB_WRITE_BATCH`; 1 turns it off).
   */
  readonly writeBatch: { readonly lanes: number; readonly maxBatch: number };
  readonly shutdownTimeoutMs: number;
  /** Other origins whose browser pages may call the API (the server's own page always may). */
  readonly corsOrigins: readonly string[];
  /** The built web box office to serve at `/`, or undefined to serve none. */
  readonly webDir: string | undefined;
  /** How the web box office gets a fan's assertion in `hmac` mode (see examples/web/README.md). */
  readonly webLogin: WebLoginConfig;
  /**
   * Server processes sharing the port (`WORKERS`, with `auto` already resolved
   * to the CPU count). 1 means one process and no cluster; more needs Redis and
   * an external PostgreSQL.
   */
  readonly workers: number;
  /** Limits on connections, requests and streams (see SECURITY.md). */
  readonly limits: ConnectionLimits;
  /** Rate limits per user and per client address of each limited kind of call (see SECURITY.md). */
  readonly rateLimits: RateLimitsConfig;
  /**
   * Proxies whose `X-Forwarded-For` is believed (addresses or CIDR blocks,
   * e.g. `10.0.0.0/8`); empty: the socket's peer is always the client.
   */
  readonly trustedProxies: readonly TrustedProxy[];
  /** Operator API keys (`ADMIN_API_KEYS`); empty means the operator API is disabled. */
  readonly adminKeys: readonly AdminKeyConfig[];
  /** Events out: where the outbox relay publishes (see README "Events"). */
  readonly events: EventsConfig;
}

/** Where and how the outbox relay publishes events. */
export interface EventsConfig {
  /** `NATS_URL`: the NATS server with JetStream; unset, nothing goes to NATS. */
  readonly natsUrl: string | undefined;
  /** `NATS_STREAM`: the JetStream stream (created on first use when missing). */
  readonly natsStream: string;
  /** `NATS_SUBJECT_PREFIX`: subjects are `<prefix>.<concert id>.<event type>`. */
  readonly natsSubjectPrefix: string;
  /** `WEBHOOK_URLS`: every URL receives every event, each on its own schedule. */
  readonly webhookUrls: readonly string[];
  /** `WEBHOOK_SECRET`: the HMAC-SHA256 key of the signature header; never logged. */
  readonly webhookSecret: string | undefined;
  readonly webhookTimeoutMs: number;
  /** How long a failing delivery (webhook or NATS) is retried before it is dead-lettered. */
  readonly retryMs: number;
  /** The first retry's delay; each later one doubles it, up to `retryMaxDelayMs`, with jitter. */
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
  /** How often the relay looks for new events and due retries. */
  readonly relayIntervalMs: number;
  /** How long delivered events are kept before they are pruned. */
  readonly retentionMs: number;
}

/** A token bucket: at most `burst` calls at once, refilled by `refill` calls every `periodMs`. */
export interface RateLimitRule {
  readonly burst: number;
  readonly refill: number;
  readonly periodMs: number;
}

/** The limits of one kind of call; undefined means unlimited. */
export interface RateLimitPair {
  readonly user: RateLimitRule | undefined;
  readonly address: RateLimitRule | undefined;
}

/** Limits of token issue, seat holds, and payments with recharges. */
export interface RateLimitsConfig {
  readonly token: RateLimitPair;
  readonly hold: RateLimitPair;
  readonly payment: RateLimitPair;
}

/** One trusted proxy: an address, or a block of them (`prefix` bits). */
export interface TrustedProxy {
  readonly address: string;
  readonly prefix: number;
  readonly family: "ipv4" | "ipv6";
}

/**
 * What one process accepts from its clients before it closes a connection or
 * refuses a stream: every abusive client (silent sockets, slowloris, clients
 * that never read) ends at one of these.
 */
export interface ConnectionLimits {
  /** A new connection must send its first bytes (enough to tell HTTP/1.1 from HTTP/2) within this. */
  readonly sniffTimeoutSeconds: number;
  /** An HTTP/1.1 request's headers must arrive within this. */
  readonly headersTimeoutSeconds: number;
  /**
   * A whole request (headers and body) must arrive within this; a streaming
   * call's request is complete once sent, so its stream is never cut by it.
   */
  readonly requestTimeoutSeconds: number;
  /** An idle HTTP/1.1 keep-alive connection is closed after this. */
  readonly keepAliveTimeoutSeconds: number;
  /** Requests one HTTP/1.1 connection may pipeline at once before it is closed. */
  readonly http1MaxPipelinedRequests: number;
  /** A response the client stops reading is cut when no byte of it could be sent for this long. */
  readonly sendTimeoutSeconds: number;
  /** Streams one HTTP/2 connection may have open at once. */
  readonly http2MaxConcurrentStreams: number;
  /** An HTTP/2 connection with no open stream for this long is closed with GOAWAY. */
  readonly http2IdleTimeoutSeconds: number;
  /** Live `WatchQueueStatus` streams of one queue token. */
  readonly watchStreamsPerToken: number;
  /** Live `WatchQueueStatus` streams of this process. */
  readonly watchStreamsMax: number;
}

/** Where fans of the web box office sign in when the server verifies assertions. */
export interface WebLoginConfig {
  /** The operator's sign-in page, linked for fans who arrive without an assertion. */
  readonly url: string | undefined;
  /**
   * Origins whose pages may hand the box office an assertion by `postMessage`:
   * `WEB_LOGIN_ORIGINS`, or else the origin of the sign-in page.
   */
  readonly origins: readonly string[];
}

/** The simulated fans of the embedded default's demo crowd. */
export const DEMO_CROWD_SIZE = 15;
/** `QUEUE_MAX_ACTIVE` while a demo crowd runs, unless set: small enough that a line forms. */
export const DEMO_MAX_ACTIVE = 5;

/**
 * Group commit of recharges and payments, by default: up to 2 of their
 * transactions open at once (never more than the pool), each carrying up to
 * 16 of them. Since a batch's writes share their round trips, two lanes of
 * large batches beat more lanes of small ones, with 8 payers and with 64;
 * measured in `npm run bench:rush` (README, Performance).
 */
const DEFAULT_WRITE_LANES = 2;
const DEFAULT_WRITE_BATCH = 16;

/** The most server processes `WORKERS` may ask for. */
export const MAX_WORKERS = 64;

/** A configuration problem, named by the variable so operators can fix it. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/** A whole number in [min, max], with a message that says the range and the unit. */
const bounded = (min: number, max: number, unit: string) =>
  z
    .string()
    .regex(/^\d+$/, `must be a whole number of ${unit} from ${min} to ${max}`)
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(min, `must be a whole number of ${unit} from ${min} to ${max}`)
        .max(max, `must be a whole number of ${unit} from ${min} to ${max}`),
    );

const flag = z
  .enum(["1", "0", "true", "false", "yes", "no", "on", "off"])
  .transform((v) => ["1", "true", "yes", "on"].includes(v));

const PERIODS: Record<string, number> = {
  s: 1_000,
  sec: 1_000,
  second: 1_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
};
const RATE = /^\s*(\d{1,7})\s*,\s*(\d{1,7})\s*\/\s*([a-z]+)\s*$/;
const RATE_MESSAGE =
  "must be off, or BURST,REFILL/UNIT: whole numbers from 1 to 1000000 and a unit of s, min or h (e.g. 20,2/s)";

/** A rate limit: `off`, or `BURST,REFILL/UNIT` such as `20,2/s` or `10,10/min`. */
const rateLimit = z.string().transform((value, ctx): RateLimitRule | undefined => {
  if (value.trim().toLowerCase() === "off") return undefined;
  const match = RATE.exec(value.toLowerCase());
  const burst = Number(match?.[1]);
  const refill = Number(match?.[2]);
  const periodMs = PERIODS[match?.[3] ?? ""];
  const inRange = (n: number) => Number.isInteger(n) && n >= 1 && n <= 1_000_000;
  if (match === null || periodMs === undefined || !inRange(burst) || !inRange(refill)) {
    ctx.addIssue({ code: "custom", message: RATE_MESSAGE });
    return z.NEVER;
  }
  return Object.freeze({ burst, refill, periodMs });
});

/** `TRUSTED_PROXIES`: comma-separated IPv4/IPv6 addresses or CIDR blocks. */
const trustedProxies = z.string().transform((value, ctx): TrustedProxy[] => {
  const proxies: TrustedProxy[] = [];
  for (const entry of value
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "")) {
    const [address = "", bits, extra] = entry.split("/");
    const version = isIP(address);
    const max = version === 4 ? 32 : 128;
    const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : Number.NaN;
    if (version === 0 || extra !== undefined || !(prefix >= 0 && prefix <= max)) {
      ctx.addIssue({
        code: "custom",
        message: `has ${JSON.stringify(entry)}: must list IP addresses or CIDR blocks (e.g. 10.0.0.0/8, ::1), comma-separated`,
      });
      return z.NEVER;
    }
    proxies.push(Object.freeze({ address, prefix, family: version === 4 ? "ipv4" : "ipv6" }));
  }
  return proxies;
});

const url = (protocols: readonly string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    `must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}`,
  );

/** A comma-separated list of origins, e.g. `https://a.example,https://b.example`. */
const origins = z
  .string()
  .transform((value) =>
    value
      .split(",")
      .map((origin) => origin.trim())
      .filter((origin) => origin !== ""),
  )
  .pipe(
    z.array(
      z
        .string()
        .refine(isOrigin, "must list origins such as https://tickets.example.com, comma-separated"),
    ),
  );
/** `name:sha256hex` pairs, comma-separated (see {@link parseAdminKeys}). */
const ADMIN_KEY_ENTRY = /^([A-Za-z0-9._-]{1,64}):([0-9a-fA-F]{64})$/;

const schema = z.object({
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: integer(0, 65535).default(8080),
  METRICS_PORT: integer(0, 65535).optional(),
  DATA_DIR: z.string().min(1).default(".data"),
  DATABASE_URL: url(["postgres:", "postgresql:"]).optional(),
  DATABASE_READ_URL: url(["postgres:", "postgresql:"]).optional(),
  REDIS_URL: url(["redis:", "rediss:"]).optional(),
  REDIS_CLUSTER_URLS: z
    .string()
    .transform((value) =>
      value
        .split(",")
        .map((seed) => seed.trim())
        .filter((seed) => seed !== ""),
    )
    .pipe(
      z
        .array(url(["redis:", "rediss:"]))
        .min(1, "must list at least one redis:// URL of a cluster node, comma-separated"),
    )
    .optional(),
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_.-]{1,64}$/, "must be 1 to 64 letters, digits or :_.-")
    .default("stagedoor:"),
  HOLD_TTL_SECONDS: integer(5, 3600).default(300),
  TOKEN_TTL_SECONDS: integer(10, 86_400).default(600),
  QUEUE_MAX_ACTIVE: integer(1, 1_000_000).optional(),
  QUEUE_IDLE_SECONDS: integer(2, 3600).default(30),
  WALLET_MAX_RECHARGE: integer(1, 1_000_000_000_000).default(10_000_000),
  WALLET_MAX_BALANCE: integer(1, 1_000_000_000_000_000).default(1_000_000_000_000),
  AUTH_MODE: z.enum(["trust", "hmac"]).optional(),
  AUTH_HMAC_SECRET: z.string().optional(),
  TOKEN_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  TICKET_SIGNING_KEY: z.string().min(32, "must be at least 32 characters").optional(),
  SEED_DEMO: flag.optional(),
  DEMO_CROWD: integer(0, 1000).optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  DB_POOL_MAX: integer(1, 200).default(10),
  DB_WRITE_LANES: integer(1, 200).optional(),
  DB_WRITE_BATCH: integer(1, MAX_WRITE_BATCH).default(DEFAULT_WRITE_BATCH),
  SHUTDOWN_TIMEOUT_MS: integer(0, 600_000).default(10_000),
  CORS_ORIGINS: origins.default([]),
  SERVE_WEB: flag.default(true),
  WEB_DIR: z.string().min(1).optional(),
  WEB_LOGIN_URL: url(["https:", "http:"]).optional(),
  WEB_LOGIN_ORIGINS: origins.optional(),
  WORKERS: z
    .string()
    .refine(
      (value) =>
        value === "auto" ||
        (/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= MAX_WORKERS),
      `must be a whole number from 1 to ${MAX_WORKERS}, or auto (one per CPU)`,
    )
    .default("1"),
  HTTP_SNIFF_TIMEOUT_SECONDS: bounded(1, 300, "seconds").default(10),
  HTTP_HEADERS_TIMEOUT_SECONDS: bounded(1, 300, "seconds").default(10),
  HTTP_REQUEST_TIMEOUT_SECONDS: bounded(1, 3600, "seconds").default(30),
  HTTP_KEEPALIVE_TIMEOUT_SECONDS: bounded(1, 3600, "seconds").default(5),
  HTTP_SEND_TIMEOUT_SECONDS: bounded(1, 3600, "seconds").default(60),
  HTTP1_MAX_PIPELINED_REQUESTS: bounded(1, 10_000, "requests").default(16),
  HTTP2_MAX_CONCURRENT_STREAMS: bounded(1, 100_000, "streams").default(100),
  HTTP2_IDLE_TIMEOUT_SECONDS: bounded(1, 86_400, "seconds").default(60),
  WATCH_STREAMS_PER_TOKEN: bounded(1, 100, "streams").default(3),
  WATCH_STREAMS_MAX: bounded(1, 1_000_000, "streams").default(10_000),
  // Defaults: see SECURITY.md (rate limits). Per address they are generous,
  // because many fans can share one address (carrier-grade NAT, campuses).
  RATE_LIMIT_TOKEN_PER_USER: rateLimit.prefault("30,1/s"),
  RATE_LIMIT_TOKEN_PER_ADDRESS: rateLimit.prefault("1000,100/s"),
  RATE_LIMIT_HOLD_PER_USER: rateLimit.prefault("20,2/s"),
  RATE_LIMIT_HOLD_PER_ADDRESS: rateLimit.prefault("2000,200/s"),
  RATE_LIMIT_PAYMENT_PER_USER: rateLimit.prefault("10,1/s"),
  RATE_LIMIT_PAYMENT_PER_ADDRESS: rateLimit.prefault("1000,100/s"),
  TRUSTED_PROXIES: trustedProxies.prefault(""),
  ADMIN_API_KEYS: z.string().optional(),
  NATS_URL: url(["nats:", "tls:"]).optional(),
  NATS_STREAM: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1 to 64 letters, digits, _ or -")
    .default("STAGEDOOR"),
  NATS_SUBJECT_PREFIX: z
    .string()
    .regex(
      /^[A-Za-z0-9_-]{1,32}(\.[A-Za-z0-9_-]{1,32}){0,3}$/,
      "must be 1 to 4 dot-separated tokens of letters, digits, _ or -",
    )
    .default("stagedoor"),
  WEBHOOK_URLS: z
    .string()
    .transform((value) =>
      value
        .split(",")
        .map((entry) => entry.trim())
        .filter((entry) => entry !== ""),
    )
    .pipe(
      z.array(
        url(["https:", "http:"]).refine(
          (value) => new URL(value).username === "" && new URL(value).password === "",
          "must list http(s) URLs without user:password@, comma-separated",
        ),
      ),
    )
    .default([]),
  WEBHOOK_SECRET: z.string().optional(),
  WEBHOOK_TIMEOUT_SECONDS: bounded(1, 120, "seconds").default(10),
  WEBHOOK_RETRY_HOURS: bounded(72, 8760, "hours").default(72),
  EVENT_RETRY_BASE_MS: bounded(10, 600_000, "milliseconds").default(1000),
  EVENT_RETRY_MAX_SECONDS: bounded(1, 86_400, "seconds").default(3600),
  EVENT_RELAY_INTERVAL_MS: bounded(20, 60_000, "milliseconds").default(500),
  EVENT_RETENTION_HOURS: bounded(1, 8760, "hours").default(168),
});

/**
 * Parses `ADMIN_API_KEYS`: comma-separated `name:sha256hex` pairs, where the
 * name (1 to 64 letters, digits or `._-`) is what the audit trail records and
 * the hex is the SHA-256 of the key (`printf %s "$KEY" | sha256sum`). Names
 * and hashes must be unique. The message never repeats a hash.
 */
function parseAdminKeys(value: string | undefined): AdminKeyConfig[] {
  if (value === undefined) return [];
  const keys: AdminKeyConfig[] = [];
  const entries = value
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  for (const [index, entry] of entries.entries()) {
    const match = ADMIN_KEY_ENTRY.exec(entry);
    if (match === null || match[1] === undefined || match[2] === undefined) {
      throw new ConfigError(
        `ADMIN_API_KEYS entry ${index + 1} must be name:sha256hex (a name of 1 to 64 letters, digits or ._- and the 64 hex digits of the key's SHA-256)`,
      );
    }
    const name = match[1];
    const sha256 = Buffer.from(match[2], "hex");
    if (keys.some((key) => key.name === name)) {
      throw new ConfigError(`ADMIN_API_KEYS names ${name} twice`);
    }
    if (keys.some((key) => key.sha256.equals(sha256))) {
      throw new ConfigError(`ADMIN_API_KEYS entry ${index + 1} repeats the hash of another key`);
    }
    keys.push(Object.freeze({ name, sha256 }));
  }
  return keys;
}

/** Whether a string is exactly an origin: scheme, host and optional port, nothing else. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin === value;
  } catch {
    return false;
  }
}

/** Where `npm run build:web` puts the web box office, relative to this file. */
const DEFAULT_WEB_DIR = fileURLToPath(new URL("../../examples/web/dist", import.meta.url));

/** What `WORKERS=auto` asks of the machine; tests pass their own. */
export interface Machine {
  /** How many CPUs this process may use (`os.availableParallelism()`). */
  availableParallelism(): number;
}

/**
 * Parses the environment into a frozen {@link Config}, or throws a
 * {@link ConfigError} naming the first bad variable. This is the only place that
 * reads `process.env`. Empty variables count as unset.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, machine: Machine = os): Config {
  const present = Object.fromEntries(
    Object.entries(env).filter(([key, value]) => key in schema.shape && value !== ""),
  );
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue?.path[0] ?? "environment");
    throw new ConfigError(`${variable} ${issue?.message ?? "is invalid"}`);
  }
  const e = parsed.data;
  const embedded = e.DATABASE_URL === undefined;
  if (embedded && e.DATABASE_READ_URL !== undefined) {
    throw new ConfigError(
      "DATABASE_READ_URL needs DATABASE_URL: a read replica is of an external primary, never of the embedded PostgreSQL",
    );
  }

  let auth: AuthConfig;
  const mode = e.AUTH_MODE ?? (embedded ? "trust" : undefined);
  if (mode === undefined) {
    throw new ConfigError(
      "AUTH_MODE must be set explicitly (trust or hmac) when DATABASE_URL is set",
    );
  }
  if (mode === "hmac") {
    if (!e.AUTH_HMAC_SECRET || e.AUTH_HMAC_SECRET.length < 32) {
      throw new ConfigError("AUTH_HMAC_SECRET must be at least 32 characters when AUTH_MODE=hmac");
    }
    auth = { mode, secret: e.AUTH_HMAC_SECRET };
  } else {
    auth = { mode };
  }
  if (e.WALLET_MAX_RECHARGE > e.WALLET_MAX_BALANCE) {
    throw new ConfigError("WALLET_MAX_RECHARGE must not exceed WALLET_MAX_BALANCE");
  }
  if (e.HTTP_HEADERS_TIMEOUT_SECONDS > e.HTTP_REQUEST_TIMEOUT_SECONDS) {
    // The headers are part of the request: a longer wait for them could never be reached.
    throw new ConfigError(
      `HTTP_HEADERS_TIMEOUT_SECONDS (${e.HTTP_HEADERS_TIMEOUT_SECONDS}) must not exceed HTTP_REQUEST_TIMEOUT_SECONDS (${e.HTTP_REQUEST_TIMEOUT_SECONDS})`,
    );
  }
  if (e.METRICS_PORT !== undefined && e.METRICS_PORT !== 0 && e.METRICS_PORT === e.PORT) {
    // Metrics are for the operator's scraper, never served on the public port.
    throw new ConfigError("METRICS_PORT must differ from PORT");
  }
  if (e.DB_WRITE_LANES !== undefined && e.DB_WRITE_LANES > e.DB_POOL_MAX) {
    // Each open batch holds a pooled connection; holds and reads need some too.
    throw new ConfigError(
      `DB_WRITE_LANES (${e.DB_WRITE_LANES}) must not exceed DB_POOL_MAX (${e.DB_POOL_MAX})`,
    );
  }
  if (e.WATCH_STREAMS_PER_TOKEN > e.WATCH_STREAMS_MAX) {
    throw new ConfigError(
      `WATCH_STREAMS_PER_TOKEN (${e.WATCH_STREAMS_PER_TOKEN}) must not exceed WATCH_STREAMS_MAX (${e.WATCH_STREAMS_MAX})`,
    );
  }
  const seedDemo = e.SEED_DEMO ?? embedded;
  // The embedded default is a demo: a crowd of simulated fans in a line that
  // admits a few at a time, so the waiting room is there to see.
  const demoCrowd =
    e.DEMO_CROWD ?? (embedded && seedDemo && auth.mode === "trust" ? DEMO_CROWD_SIZE : 0);
  if (demoCrowd > 0 && auth.mode !== "trust") {
    throw new ConfigError(
      "DEMO_CROWD needs AUTH_MODE=trust: its simulated fans join the line without assertions",
    );
  }
  const adminKeys = parseAdminKeys(e.ADMIN_API_KEYS);
  if (e.REDIS_URL !== undefined && e.REDIS_CLUSTER_URLS !== undefined) {
    throw new ConfigError(
      "REDIS_URL and REDIS_CLUSTER_URLS must not both be set: REDIS_URL names one Redis primary, REDIS_CLUSTER_URLS the seed nodes of a Redis Cluster",
    );
  }
  if (e.WEBHOOK_URLS.length > 0 && (e.WEBHOOK_SECRET ?? "").length < 32) {
    throw new ConfigError("WEBHOOK_SECRET must be at least 32 characters when WEBHOOK_URLS is set");
  }
  if (new Set(e.WEBHOOK_URLS).size !== e.WEBHOOK_URLS.length) {
    throw new ConfigError("WEBHOOK_URLS lists a URL twice");
  }
  const workers = resolveWorkers(e.WORKERS, machine);
  if (workers > 1) requireSharedState(e.WORKERS, workers, e);
  if (workers > 1 && e.METRICS_PORT !== undefined) {
    // Workers would share one metrics socket, and each scrape would read one
    // random worker's figures: run instances with WORKERS=1 to scrape each.
    throw new ConfigError(
      "METRICS_PORT needs WORKERS=1 (scrape each instance on its own metrics port)",
    );
  }

  // npm runs workspace scripts inside the workspace folder; resolve relative
  // paths against the folder the user ran npm from, so `.data` lands where
  // they expect it.
  const base = env.INIT_CWD || process.cwd();
  return Object.freeze({
    host: e.HOST,
    port: e.PORT,
    metricsPort: e.METRICS_PORT,
    dataDir: path.resolve(base, e.DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    databaseReadUrl: e.DATABASE_READ_URL,
    redisUrl: e.REDIS_URL,
    redisClusterUrls:
      e.REDIS_CLUSTER_URLS === undefined ? undefined : Object.freeze(e.REDIS_CLUSTER_URLS),
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    holdTtlSeconds: e.HOLD_TTL_SECONDS,
    tokenTtlSeconds: e.TOKEN_TTL_SECONDS,
    queueMaxActive: e.QUEUE_MAX_ACTIVE ?? (demoCrowd > 0 ? DEMO_MAX_ACTIVE : 100),
    queueIdleSeconds: e.QUEUE_IDLE_SECONDS,
    walletMaxRecharge: BigInt(e.WALLET_MAX_RECHARGE),
    walletMaxBalance: BigInt(e.WALLET_MAX_BALANCE),
    auth: Object.freeze(auth),
    tokenSecret: e.TOKEN_SECRET,
    ticketSigningKey: e.TICKET_SIGNING_KEY,
    seedDemo,
    demoCrowd,
    logLevel: e.LOG_LEVEL,
    dbPoolMax: e.DB_POOL_MAX,
    writeBatch: Object.freeze({
      lanes: e.DB_WRITE_LANES ?? Math.min(DEFAULT_WRITE_LANES, e.DB_POOL_MAX),
      maxBatch: e.DB_WRITE_BATCH,
    }),
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    corsOrigins: Object.freeze(e.CORS_ORIGINS),
    webDir: e.SERVE_WEB ? path.resolve(base, e.WEB_DIR ?? DEFAULT_WEB_DIR) : undefined,
    webLogin: Object.freeze({
      url: e.WEB_LOGIN_URL,
      origins: Object.freeze(
        e.WEB_LOGIN_ORIGINS ?? (e.WEB_LOGIN_URL ? [new URL(e.WEB_LOGIN_URL).origin] : []),
      ),
    }),
    workers,
    limits: Object.freeze({
      sniffTimeoutSeconds: e.HTTP_SNIFF_TIMEOUT_SECONDS,
      headersTimeoutSeconds: e.HTTP_HEADERS_TIMEOUT_SECONDS,
      requestTimeoutSeconds: e.HTTP_REQUEST_TIMEOUT_SECONDS,
      keepAliveTimeoutSeconds: e.HTTP_KEEPALIVE_TIMEOUT_SECONDS,
      sendTimeoutSeconds: e.HTTP_SEND_TIMEOUT_SECONDS,
      http1MaxPipelinedRequests: e.HTTP1_MAX_PIPELINED_REQUESTS,
      http2MaxConcurrentStreams: e.HTTP2_MAX_CONCURRENT_STREAMS,
      http2IdleTimeoutSeconds: e.HTTP2_IDLE_TIMEOUT_SECONDS,
      watchStreamsPerToken: e.WATCH_STREAMS_PER_TOKEN,
      watchStreamsMax: e.WATCH_STREAMS_MAX,
    }),
    rateLimits: Object.freeze({
      token: Object.freeze({
        user: e.RATE_LIMIT_TOKEN_PER_USER,
        address: e.RATE_LIMIT_TOKEN_PER_ADDRESS,
      }),
      hold: Object.freeze({
        user: e.RATE_LIMIT_HOLD_PER_USER,
        address: e.RATE_LIMIT_HOLD_PER_ADDRESS,
      }),
      payment: Object.freeze({
        user: e.RATE_LIMIT_PAYMENT_PER_USER,
        address: e.RATE_LIMIT_PAYMENT_PER_ADDRESS,
      }),
    }),
    trustedProxies: Object.freeze(e.TRUSTED_PROXIES),
    adminKeys: Object.freeze(adminKeys),
    events: Object.freeze({
      natsUrl: e.NATS_URL,
      natsStream: e.NATS_STREAM,
      natsSubjectPrefix: e.NATS_SUBJECT_PREFIX,
      webhookUrls: Object.freeze(e.WEBHOOK_URLS),
      webhookSecret: e.WEBHOOK_URLS.length > 0 ? e.WEBHOOK_SECRET : undefined,
      webhookTimeoutMs: e.WEBHOOK_TIMEOUT_SECONDS * 1000,
      retryMs: e.WEBHOOK_RETRY_HOURS * 3_600_000,
      retryBaseDelayMs: e.EVENT_RETRY_BASE_MS,
      retryMaxDelayMs: e.EVENT_RETRY_MAX_SECONDS * 1000,
      relayIntervalMs: e.EVENT_RELAY_INTERVAL_MS,
      retentionMs: e.EVENT_RETENTION_HOURS * 3_600_000,
    }),
  });
}

/** `auto` is one process per CPU this process may use (so 1 on a 1-CPU machine). */
function resolveWorkers(value: string, machine: Machine): number {
  if (value !== "auto") return Number(value);
  const cpus = Math.floor(machine.availableParallelism());
  return Math.min(MAX_WORKERS, Math.max(1, Number.isFinite(cpus) ? cpus : 1));
}

/**
 * Several server processes must share the waiting room and the database: the
 * in-process queue and the embedded PostgreSQL belong to one process only.
 */
function requireSharedState(
  value: string,
  workers: number,
  e: {
    readonly REDIS_URL?: string | undefined;
    readonly REDIS_CLUSTER_URLS?: readonly string[] | undefined;
    readonly DATABASE_URL?: string | undefined;
  },
): void {
  const missing = [
    e.REDIS_URL === undefined &&
      e.REDIS_CLUSTER_URLS === undefined && {
        variable: "REDIS_URL",
        why: "the in-process waiting room cannot be shared between processes (each would keep its own line and its own admission limit)",
      },
    e.DATABASE_URL === undefined && {
      variable: "DATABASE_URL",
      why: "the embedded PostgreSQL is a single-process development convenience",
    },
  ].filter((entry) => entry !== false);
  if (missing.length === 0) return;
  const asked = value === "auto" ? `WORKERS=auto (${workers} CPUs)` : `WORKERS=${workers}`;
  const variables = missing.map((m) => m.variable).join(" and ");
  throw new ConfigError(
    `${asked} runs ${workers} server processes and needs ${variables}: ` +
      `${missing.map((m) => m.why).join(", and ")}. Set ${variables}, or WORKERS=1.`,
  );
}
