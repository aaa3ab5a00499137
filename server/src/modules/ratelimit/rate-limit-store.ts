import type { BucketRule, TakeResult } from "./token-bucket.js";

/**
 * Token buckets kept in-process (`MemoryRateLimitStore`), for the embedded
 * default's queue store. (On Redis the buckets are taken inside the queue's
 * own scripts: see lua/bucket.lua.) Computes `takeToken`, atomically per
 * bucket, and forgets a bucket once it is full again (which changes nothing).
 */
export interface RateLimitStore {
  /**
   * Takes one token from the bucket `key` at `now` (ms since the epoch). In
   * process, so at once: a call's limit costs it no promise.
   */
  take(key: string, rule: BucketRule, now: number): TakeResult;
  close(): Promise<void>;
}
