import type { Logger } from "../../logger.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError } from "../../shared/domain-error.js";
import type { RateLimitStore } from "./rate-limit-store.js";
import type { BucketRule, TakeResult } from "./token-bucket.js";

/** The kinds of call that are rate limited. */
export const LimitedActions = ["token", "hold", "payment"] as const;

/**
 * A kind of rate-limited call: `token` (issuing a queue token), `hold` (a
 * seat hold), `payment` (a payment or a wallet recharge).
 */
export type LimitedAction = (typeof LimitedActions)[number];

/** Whose bucket a call takes from. */
export type LimitScope = "user" | "address";

/** The buckets of one action: per user and per client address; undefined means no limit. */
export interface ActionLimits {
  readonly user: BucketRule | undefined;
  readonly address: BucketRule | undefined;
}

/** Every action's limits. */
export type RateLimitRules = Readonly<Record<LimitedAction, ActionLimits>>;

/** Who is calling, as far as the caller's identity is established. */
export interface Caller {
  /** The authenticated (or, for a token issue, verified) user; never a bare request field. */
  readonly userId: string | undefined;
  /** The client address (see the transport's `clientAddress`), or undefined when unknown. */
  readonly address: string | undefined;
}

/**
 * Applies the rate limits: a call of a limited kind takes one token from its
 * user's bucket and one from its client address's bucket (both at once, in
 * one round trip to the store), and is refused with `RATE_LIMITED` when
 * either is empty, before anything else of it happens. A refused call still
 * took from the other bucket, so a flood spends both.
 *
 * When the store cannot be reached, calls are let through (and the outage is
 * logged once): a rate limiter must not turn a Redis outage into refusals of
 * its own, and the calls it guards need the store anyway.
 */
export class RateLimiter {
  private failing = false;

  constructor(
    private readonly store: RateLimitStore,
    private readonly rules: RateLimitRules,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Whether any limit applies to an action (so callers can skip the work of finding the caller). */
  limits(action: LimitedAction): boolean {
    const rules = this.rules[action];
    return rules.user !== undefined || rules.address !== undefined;
  }

  /** Takes the caller's tokens for one call of `action`, or throws `RATE_LIMITED`. */
  async check(action: LimitedAction, caller: Caller): Promise<void> {
    const rules = this.rules[action];
    const now = this.clock.now().getTime();
    const takes: Promise<[LimitScope, TakeResult]>[] = [];
    if (rules.user !== undefined && caller.userId !== undefined) {
      takes.push(this.take(`${action}:u:${caller.userId}`, rules.user, now, "user"));
    }
    if (rules.address !== undefined && caller.address !== undefined) {
      takes.push(this.take(`${action}:a:${caller.address}`, rules.address, now, "address"));
    }
    if (takes.length === 0) return;
    let results: [LimitScope, TakeResult][];
    try {
      results = await Promise.all(takes);
    } catch (error) {
      if (!this.failing) {
        this.failing = true;
        this.logger.warn({ err: error }, "rate-limit store unreachable; letting calls through");
      }
      return;
    }
    if (this.failing) {
      this.failing = false;
      this.logger.info("rate-limit store reachable again");
    }
    let refused: [LimitScope, TakeResult] | undefined;
    for (const entry of results) {
      if (
        !entry[1].allowed &&
        (refused === undefined || entry[1].retryAfterMs > refused[1].retryAfterMs)
      ) {
        refused = entry;
      }
    }
    if (refused === undefined) return;
    const [scope, { retryAfterMs }] = refused;
    throw new DomainError(
      "resource_exhausted",
      "RATE_LIMITED",
      `too many ${DESCRIPTIONS[action]} from this ${scope === "user" ? "user" : "client address"}; ` +
        `retry in ${Math.ceil(retryAfterMs / 1000)} s`,
      { retryAfterMs, metadata: { action, scope } },
    );
  }

  private take(
    key: string,
    rule: BucketRule,
    now: number,
    scope: LimitScope,
  ): Promise<[LimitScope, TakeResult]> {
    return this.store.take(key, rule, now).then((result) => [scope, result]);
  }
}

const DESCRIPTIONS: Record<LimitedAction, string> = {
  token: "queue token requests",
  hold: "seat holds",
  payment: "payments and recharges",
};
