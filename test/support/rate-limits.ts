/**
 * For suites that fire many calls of one user on purpose (the races: 20 to
 * 100 concurrent calls; the fault tests: retries as fast as the fault allows),
 * far past the per-user rate limits, which would refuse most of them: what
 * they test is what the database and the queue let through when such calls do
 * arrive. Rate limits have their own suites (test/rpc/rate-limits.spec.ts,
 * test/rest/rate-limits.rest.spec.ts).
 */
export const NO_USER_RATE_LIMITS = {
  RATE_LIMIT_TOKEN_PER_USER: "off",
  RATE_LIMIT_HOLD_PER_USER: "off",
  RATE_LIMIT_PAYMENT_PER_USER: "off",
} as const;

/**
 * For the fault suites, whose fans all come from 127.0.0.1 and retry as fast
 * as the fault allows: every attempt during an outage takes from the one
 * address's buckets (the bucket is taken with the call's authentication,
 * before the database is tried), so a long enough outage would spend them and
 * turn the recovery checks' own retries into RESOURCE_EXHAUSTED. The
 * benchmarks turn these off for the same reason (test/bench/processes.ts).
 */
export const NO_ADDRESS_RATE_LIMITS = {
  RATE_LIMIT_TOKEN_PER_ADDRESS: "off",
  RATE_LIMIT_HOLD_PER_ADDRESS: "off",
  RATE_LIMIT_PAYMENT_PER_ADDRESS: "off",
} as const;
