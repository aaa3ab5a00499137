import type { RateLimitStore } from "./rate-limit-store.js";
import {
  type BucketRule,
  type BucketState,
  fullAt,
  type TakeResult,
  takeToken,
} from "./token-bucket.js";

interface Entry extends BucketState {
  /** When the bucket is full again and may be forgotten. */
  readonly fullAt: number;
}

/** Buckets looked at for forgetting per take: enough to outpace new ones. */
const SWEEP_PER_TAKE = 2;

/**
 * The buckets of one process, for the embedded default (one process, no
 * Redis). A Map kept in order of last change: every take moves its bucket to
 * the end and looks at the oldest few, forgetting those already full again,
 * so memory follows the buckets used within their refill time, not every
 * user and address ever seen.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly buckets = new Map<string, Entry>();

  take(key: string, rule: BucketRule, now: number): TakeResult {
    const before = this.buckets.get(key);
    const { result, state } = takeToken(before, rule, now);
    if (result.allowed) {
      this.buckets.delete(key);
      this.buckets.set(key, { ...state, fullAt: fullAt(state, rule) });
    }
    this.sweep(now);
    return result;
  }

  /** How many buckets are remembered (for tests). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    let looked = 0;
    for (const [key, entry] of this.buckets) {
      if (looked++ >= SWEEP_PER_TAKE || entry.fullAt > now) return;
      this.buckets.delete(key);
    }
  }

  async close(): Promise<void> {
    this.buckets.clear();
  }
}
