import type { BucketRule, TakeResult } from "./token-bucket.js";

/**
 * Where token buckets live: in Redis for any number of instances
 * (`RedisRateLimitStore`), or in-process on the embedded default
 * (`MemoryRateLimitStore`). Both compute `takeToken`, atomically per bucket,
 * and forget a bucket once it is full again (which changes nothing).
 */
export interface RateLimitStore {
  /**
   * Takes one token from the bucket `key` at `now` (ms since the epoch).
   * Keys are opaque; a store may hash them.
   */
  take(key: string, rule: BucketRule, now: number): Promise<TakeResult>;
  close(): Promise<void>;
}
