import {
  createClient,
  createCluster,
  type RedisClientType,
  type RedisClusterType,
  type RedisFunctions,
  type RedisModules,
  type RedisScripts,
} from "redis";

// No modules or functions beyond node-redis's defaults.
type NoModules = Record<never, RedisModules[string]>;
type NoFunctions = Record<never, RedisFunctions[string]>;

/** How {@link createRedisClient} connects. */
export interface RedisClientOptions<S extends RedisScripts> {
  /** Lua scripts to register as typed client methods (the owning module's). */
  readonly scripts: S;
  /** `redis://` or `rediss://` URL, database included. */
  readonly url: string;
  /**
   * Told once when the connection is lost (or cannot be made), not once per
   * failed reconnect attempt. node-redis crashes the process on an 'error'
   * event nobody listens to, so this is mandatory.
   */
  readonly onError: (err: unknown) => void;
  /** Told when the connection is back after a loss. */
  readonly onRecover?: () => void;
  /** How long one TCP connect attempt may take (ms); 2000 by default. */
  readonly connectTimeoutMs?: number;
}

/** Start-up gives up after this many failed attempts (about 1.5 s of backoff in all). */
const STARTUP_ATTEMPTS = 5;
/** Once connected, reconnect attempts never stop but are spaced at most this far apart. */
const MAX_RECONNECT_DELAY_MS = 5000;

/**
 * The reconnect strategy of every connection: bounded while starting up (so
 * start-up fails with a reason), then forever with a capped, jittered backoff.
 */
function reconnectStrategy(where: string, isStartingUp: () => boolean) {
  return (retries: number, cause: Error): number | Error => {
    if (isStartingUp()) {
      // node-redis retries a failed first connect() with the same strategy,
      // and the default one never gives up: a server started without Redis
      // would hang instead of exiting with a reason.
      if (retries + 1 >= STARTUP_ATTEMPTS) {
        return new Error(
          `could not connect to Redis at ${where} after ${retries + 1} attempts: ${cause.message}`,
        );
      }
      return 100 * 2 ** retries;
    }
    // Jitter spreads the reconnects of many server instances after a Redis restart.
    const backoff = Math.min(100 * 2 ** Math.min(retries, 10), MAX_RECONNECT_DELAY_MS);
    return backoff + Math.floor(Math.random() * 100);
  };
}

function buildClient<S extends RedisScripts>(
  options: RedisClientOptions<S>,
  isStartingUp: () => boolean,
): RedisClientType<NoModules, NoFunctions, S> {
  const where = redactedUrl(options.url);
  return createClient({
    url: options.url,
    scripts: options.scripts,
    // Every queue command carries the caller's "now" and is part of a user's
    // request. Replaying a backlog of them after an outage would apply stale
    // times in a burst, and holding them costs memory while users are already
    // retrying, so while disconnected commands fail at once (ClientOfflineError)
    // and callers answer "unavailable". A command waiting to be written on a
    // live but congested socket is bounded by the queue store's shared
    // deadline (shared-deadline.ts), which replaces the library's per-command
    // timer (5 s, commandOptions.timeout) on the hot path.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: options.connectTimeoutMs ?? 2000,
      reconnectStrategy: reconnectStrategy(where, isStartingUp),
    },
  });
}

/** A Redis connection with the given scripts available as typed methods. */
export type RedisClient<S extends RedisScripts> = RedisClientType<NoModules, NoFunctions, S>;

/**
 * Connects to Redis. Start-up fails fast with a clear
 * error when Redis is unreachable (a few attempts over a couple of seconds)
 * instead of hanging; once connected, the client reconnects forever with a
 * capped backoff, because a running server should outlive a Redis restart.
 * The caller owns the client and closes it (`client.close()`) at shutdown.
 *
 * Keeps node-redis's default protocol (RESP3).
 */
export async function createRedisClient<S extends RedisScripts>(
  options: RedisClientOptions<S>,
): Promise<RedisClient<S>> {
  let startingUp = true;
  let lost = false;
  const client = buildClient(options, () => startingUp);
  client.on("error", (error: unknown) => {
    if (lost) return;
    lost = true;
    options.onError(error);
  });
  client.on("ready", () => {
    if (!lost) return;
    lost = false;
    options.onRecover?.();
  });
  await client.connect();
  startingUp = false;
  return client;
}

/** How {@link createRedisClusterClient} connects. */
export interface RedisClusterClientOptions<S extends RedisScripts>
  extends Omit<RedisClientOptions<S>, "url"> {
  /**
   * `redis://` or `rediss://` URLs of some of the cluster's nodes (seeds),
   * from which the client learns the whole topology. Credentials and TLS are
   * taken from the first one and used for every node; no database number (a
   * cluster has only database 0).
   */
  readonly urls: readonly string[];
}

/** A Redis Cluster connection with the given scripts available as typed methods. */
export type RedisClusterClient<S extends RedisScripts> = RedisClusterType<
  NoModules,
  NoFunctions,
  S
>;

/**
 * Connects to a Redis Cluster, with the same behaviour as
 * {@link createRedisClient}: commands fail at once while their node is
 * unreachable, start-up gives up after a few attempts, and every node's
 * connection reconnects forever afterwards. Each command goes to the node
 * that owns its first key's slot (node-redis follows MOVED/ASK redirections
 * and refreshes the topology when slots move). The caller owns the client.
 */
export async function createRedisClusterClient<S extends RedisScripts>(
  options: RedisClusterClientOptions<S>,
): Promise<RedisClusterClient<S>> {
  const [first] = options.urls;
  if (first === undefined) throw new Error("a Redis Cluster needs at least one seed URL");
  let startingUp = true;
  let lost = false;
  const seed = new URL(first);
  const where = options.urls.map(redactedUrl).join(", ");
  const cluster = createCluster({
    rootNodes: options.urls.map((url) => ({ url })),
    scripts: options.scripts,
    defaults: {
      ...(seed.username !== "" && { username: decodeURIComponent(seed.username) }),
      ...(seed.password !== "" && { password: decodeURIComponent(seed.password) }),
      // See buildClient: commands of a user's request fail at once while offline.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: options.connectTimeoutMs ?? 2000,
        ...(seed.protocol === "rediss:" && { tls: true as const }),
        reconnectStrategy: reconnectStrategy(where, () => startingUp),
      },
    },
  });
  const lose = (error: unknown) => {
    if (lost) return;
    lost = true;
    options.onError(error);
  };
  // The cluster reports topology failures as 'error' and each node's own
  // connection failures as 'node-error'; either means "Redis is (partly) away".
  cluster.on("error", lose);
  cluster.on("node-error", lose);
  cluster.on("node-ready", () => {
    if (!lost) return;
    lost = false;
    options.onRecover?.();
  });
  await cluster.connect();
  startingUp = false;
  return cluster;
}

/** The URL without its password, safe for logs and error messages. */
function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(invalid URL)";
  }
}
