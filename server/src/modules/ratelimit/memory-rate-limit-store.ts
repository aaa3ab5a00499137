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
 *
 * The oldest are found with one iterator kept from take to take, never a new
 * one: a bucket moved to the end leaves a deleted slot behind in the Map's
 * table until the table is next compacted, and a new iterator walks every such
 * slot before it reaches a live entry (measured at 15 µs per take with 20,000
 * buckets). A Map iterator also sees the entries added after it was made, so
 * a moved bucket is met again at its new place.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly buckets = new Map<string, Entry>();
  /** Walks the buckets oldest first; replaced only once it has seen them all. */
  private cursor: MapIterator<[string, Entry]> = this.buckets.entries();
  /** The oldest bucket the cursor has reached and not yet forgotten or seen move. */
  private oldest: [string, Entry] | undefined;

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

  /**
   * Looks at up to {@link SWEEP_PER_TAKE} of the oldest buckets: forgets those
   * full again, skips those that have moved since the cursor passed them (met
   * again later), and stops at the first that is not full yet.
   */
  private sweep(now: number): void {
    for (let looked = 0; looked < SWEEP_PER_TAKE; looked++) {
      if (this.oldest === undefined) {
        const next = this.cursor.next();
        if (next.done === true) {
          // Not expected: after a take, a bucket not yet full (the one just
          // taken, or refused) is at or after the cursor, and the sweep stops
          // there. Should the cursor run out all the same, a spent iterator
          // never sees new buckets, so start a new one.
          this.cursor = this.buckets.entries();
          return;
        }
        this.oldest = next.value;
      }
      const [key, entry] = this.oldest;
      if (this.buckets.get(key) !== entry) {
        this.oldest = undefined; // moved (or forgotten): met again at its new place
        continue;
      }
      if (entry.fullAt > now) return;
      this.buckets.delete(key);
      this.oldest = undefined;
    }
  }

  async close(): Promise<void> {
    this.buckets.clear();
    this.cursor = this.buckets.entries();
    this.oldest = undefined;
  }
}
