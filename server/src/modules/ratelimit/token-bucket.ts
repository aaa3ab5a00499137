/**
 * How fast one kind of call may come from one user or one client address: a
 * token bucket that holds at most `burst` calls and gains `refill` calls
 * every `periodMs`. A call takes one token; a call finding less than one is
 * refused and told how long until there is one.
 */
export interface BucketRule {
  readonly burst: number;
  readonly refill: number;
  readonly periodMs: number;
}

/**
 * A bucket's state in whole units, so that the memory store and the Redis
 * script compute exactly the same thing (Lua numbers are doubles, exact for
 * integers below 2^53): one token is `periodMs` units, every millisecond adds
 * `refill` units, and a full bucket is `burst * periodMs` units. With the
 * bounds config.ts enforces (burst ≤ 1,000,000, period ≤ 1 h) every value
 * stays below 10^14, which Lua also prints exactly.
 */
export interface BucketState {
  readonly units: number;
  /** The time the units were counted at (ms since the epoch); never moves back. */
  readonly at: number;
}

/** What taking one token from a bucket decided. */
export interface TakeResult {
  readonly allowed: boolean;
  /** When refused: how long until the bucket holds a whole token again (ms, at least 1). */
  readonly retryAfterMs: number;
}

/** The units of a full bucket. */
export function capacityOf(rule: BucketRule): number {
  return rule.burst * rule.periodMs;
}

/**
 * Takes one token at `now` from a bucket (undefined: one never used, or
 * forgotten once full again, which is the same). Returns the decision and the
 * bucket's new state; a refusal leaves the state as it was. A clock that
 * reads earlier than the bucket's last count (another instance's, within the
 * tolerated skew) adds nothing, and never moves the count back.
 */
export function takeToken(
  state: BucketState | undefined,
  rule: BucketRule,
  now: number,
): { result: TakeResult; state: BucketState } {
  const capacity = capacityOf(rule);
  let units = state?.units ?? capacity;
  let at = state?.at ?? now;
  if (now > at) {
    units = Math.min(capacity, units + (now - at) * rule.refill);
    at = now;
  }
  if (units >= rule.periodMs) {
    return {
      result: { allowed: true, retryAfterMs: 0 },
      state: { units: units - rule.periodMs, at },
    };
  }
  const retryAfterMs = Math.ceil((rule.periodMs - units) / rule.refill);
  return { result: { allowed: false, retryAfterMs }, state: state ?? { units, at } };
}

/** When a bucket will be full again (after which forgetting it changes nothing). */
export function fullAt(state: BucketState, rule: BucketRule): number {
  return state.at + Math.ceil((capacityOf(rule) - state.units) / rule.refill);
}
