import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { RateLimitStore } from "./rate-limit-store.js";
import { type BucketRule, capacityOf, type TakeResult } from "./token-bucket.js";

/** The bucket script (lua/token-bucket.lua), read once when this module loads. */
const SCRIPT = readFileSync(new URL("./lua/token-bucket.lua", import.meta.url), "utf8");
const SCRIPT_SHA = createHash("sha1").update(SCRIPT).digest("hex");

/** The EVAL options node-redis takes. */
interface EvalOptions {
  readonly keys: string[];
  readonly arguments: string[];
}

/**
 * What this store needs of a Redis connection: EVALSHA, and EVAL when Redis
 * does not know the script yet (after a restart or a SCRIPT FLUSH). Any
 * node-redis client (the queue's, a cluster client) has both; the store
 * registers nothing on it, so it shares whatever connection it is given.
 */
export interface LuaEvaluator {
  evalSha(sha1: string, options: EvalOptions): Promise<unknown>;
  eval(script: string, options: EvalOptions): Promise<unknown>;
}

/**
 * Token buckets in Redis: one Lua script per take, so a bucket is decided
 * atomically whichever instance asks. Each bucket is one key with its own
 * hash tag, so the script touches a single slot and works on Redis Cluster
 * too. Keys carry a hash of the bucket's name, never the user id or address
 * themselves: `<prefix>rl:{<22 base64url chars>}`.
 */
export class RedisRateLimitStore implements RateLimitStore {
  constructor(
    private readonly client: LuaEvaluator,
    private readonly keyPrefix: string,
  ) {}

  /** The Redis key of a bucket (for tests). */
  keyOf(key: string): string {
    const digest = createHash("sha256").update(key).digest("base64url").slice(0, 22);
    return `${this.keyPrefix}rl:{${digest}}`;
  }

  async take(key: string, rule: BucketRule, now: number): Promise<TakeResult> {
    const options: EvalOptions = {
      keys: [this.keyOf(key)],
      arguments: [
        String(now),
        String(capacityOf(rule)),
        String(rule.refill),
        String(rule.periodMs),
      ],
    };
    let reply: unknown;
    try {
      reply = await this.client.evalSha(SCRIPT_SHA, options);
    } catch (error) {
      if (!String((error as Error | undefined)?.message).startsWith("NOSCRIPT")) throw error;
      reply = await this.client.eval(SCRIPT, options);
    }
    if (!Array.isArray(reply) || reply.length !== 2) {
      throw new Error("unexpected reply from the Redis rate-limit script");
    }
    return { allowed: Number(reply[0]) === 1, retryAfterMs: Number(reply[1]) };
  }

  /** The client is shared and owned by the caller. */
  async close(): Promise<void> {}
}
