/**
 * The source of "now" for every rule that depends on time (hold expiry,
 * admission expiry, idle eviction). Injected everywhere so tests can use a
 * fake clock instead of sleeping.
 */
export interface Clock {
  now(): Date;
}

/** The wall clock. */
export const systemClock: Clock = { now: () => new Date() };
