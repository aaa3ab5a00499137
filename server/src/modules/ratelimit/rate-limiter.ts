import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { DomainError } from "../../shared/domain-error.js";
import type { RateLimitStore } from "./rate-limit-store.js";
import { type BucketRule, capacityOf } from "./token-bucket.js";

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

/**
 * The buckets one call takes from, decided before it is authenticated: the
 * caller's user's bucket (whose user the store knows once the token is found,
 * or the verified user of a token issue) and its client address's bucket.
 * Buckets belong to the call's concert: a user's or an address's calls for
 * one concert do not spend their budget for another.
 */
export interface CallLimit {
  readonly action: LimitedAction;
  /** The rule of the caller's user's bucket; undefined: no limit per user. */
  readonly user: BucketRule | undefined;
  /** The client address's bucket (by a digest of the address); undefined: none. */
  readonly address: { readonly id: string; readonly rule: BucketRule } | undefined;
}

/** Which bucket refused a call, and how long until it holds a token again (ms). */
export interface LimitRefusal {
  readonly scope: LimitScope;
  readonly retryAfterMs: number;
}

/**
 * The bucket code the queue's Redis scripts include (lua/bucket.lua): the
 * buckets of a limited call are taken inside the script that authenticates
 * it (or issues its token), in the same round trip.
 */
export const CALL_LIMIT_LUA = readFileSync(new URL("./lua/bucket.lua", import.meta.url), "utf8");

/** ARGV for lua/bucket.lua's takeCallLimit: 8 strings, empty where nothing applies. */
export function callLimitArgs(limit: CallLimit | undefined): readonly string[] {
  if (limit === undefined) return NO_LIMIT_ARGS;
  return [
    limit.action,
    ...ruleArgs(limit.user),
    limit.address?.id ?? "",
    ...ruleArgs(limit.address?.rule),
  ];
}

const NO_LIMIT_ARGS: readonly string[] = Object.freeze(["", "", "", "", "", "", "", ""]);

function ruleArgs(rule: BucketRule | undefined): string[] {
  return rule === undefined
    ? ["", "", ""]
    : [String(capacityOf(rule)), String(rule.refill), String(rule.periodMs)];
}

/** A refusal as lua/bucket.lua's takeCallLimit answers it (`{'u' | 'a', wait}`), or undefined. */
export function decodeRefusal(reply: unknown): LimitRefusal | undefined {
  if (!Array.isArray(reply)) return undefined;
  return { scope: reply[0] === "a" ? "address" : "user", retryAfterMs: Number(reply[1]) };
}

/**
 * Takes a call's buckets from an in-process store (the embedded default's
 * queue store does, the Redis scripts do the same in Lua): both buckets,
 * so a flood spends both; the refusal with the longer wait, or undefined.
 * `scope` keeps one concert's buckets apart from another's.
 */
export function takeCallLimit(
  store: RateLimitStore,
  scope: string,
  limit: CallLimit,
  userId: string,
  now: number,
): LimitRefusal | undefined {
  const byUser =
    limit.user === undefined
      ? undefined
      : takeBucket(store, scope, limit, "user", userId, limit.user, now);
  const byAddress =
    limit.address === undefined
      ? undefined
      : takeBucket(store, scope, limit, "address", limit.address.id, limit.address.rule, now);
  if (byAddress === undefined) return byUser;
  return byUser === undefined || byAddress.retryAfterMs > byUser.retryAfterMs ? byAddress : byUser;
}

/** One bucket of a call's limit: its refusal, or undefined when it gave a token. */
function takeBucket(
  store: RateLimitStore,
  scope: string,
  limit: CallLimit,
  kind: LimitScope,
  id: string,
  rule: BucketRule,
  now: number,
): LimitRefusal | undefined {
  const result = store.take(`${scope}|${limit.action}:${kind}:${id}`, rule, now);
  return result.allowed ? undefined : { scope: kind, retryAfterMs: result.retryAfterMs };
}

/**
 * The answer to a refused call: `RATE_LIMITED` with the wait (RetryInfo; REST
 * 429 + Retry-After) and which bucket refused.
 */
export function rateLimited(action: LimitedAction, refusal: LimitRefusal): DomainError {
  const { scope, retryAfterMs } = refusal;
  return new DomainError(
    "resource_exhausted",
    "RATE_LIMITED",
    `too many ${DESCRIPTIONS[action]} from this ${scope === "user" ? "user" : "client address"}; ` +
      `retry in ${Math.ceil(retryAfterMs / 1000)} s`,
    { retryAfterMs, metadata: { action, scope } },
  );
}

/**
 * The rate limits: which buckets a call of a limited kind takes from (one
 * token from its user's bucket and one from its client address's, both
 * belonging to the call's concert). The queue store takes them in the same
 * step as it authenticates the call (or issues its token), before anything
 * else of it happens, and refuses it with `RATE_LIMITED` (see
 * {@link rateLimited}) when either is empty. A call that is not authenticated
 * (an unknown token, an unproven user) takes nothing: nobody spends another
 * user's budget by naming them.
 */
export class RateLimiter {
  constructor(private readonly rules: RateLimitRules) {}

  /** Whether any limit applies to an action (so callers can skip finding the client address). */
  limits(action: LimitedAction): boolean {
    const rules = this.rules[action];
    return rules.user !== undefined || rules.address !== undefined;
  }

  /** Whether the action is limited per client address (only then is the address needed). */
  limitsAddresses(action: LimitedAction): boolean {
    return this.rules[action].address !== undefined;
  }

  /**
   * The buckets a call of `action` from `address` takes from, or undefined
   * when it is not limited. Bucket keys carry a digest of the address, never
   * the address itself.
   */
  forCall(action: LimitedAction, address: string | undefined): CallLimit | undefined {
    const rules = this.rules[action];
    const addressRule = address === undefined ? undefined : rules.address;
    if (rules.user === undefined && addressRule === undefined) return undefined;
    return {
      action,
      user: rules.user,
      address:
        addressRule === undefined || address === undefined
          ? undefined
          : { id: addressDigest(address), rule: addressRule },
    };
  }
}

/** 22 base64url characters of the address's SHA-256: bucket keys never show an address. */
function addressDigest(address: string): string {
  return createHash("sha256").update(address).digest("base64url").slice(0, 22);
}

const DESCRIPTIONS: Record<LimitedAction, string> = {
  token: "queue token requests",
  hold: "seat holds",
  payment: "payments and recharges",
};
