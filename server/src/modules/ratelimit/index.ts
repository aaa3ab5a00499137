/** Rate limits: token buckets per user and per client address, taken by the queue's store. */
export { MemoryRateLimitStore } from "./memory-rate-limit-store.js";
export type { RateLimitStore } from "./rate-limit-store.js";
export {
  type ActionLimits,
  CALL_LIMIT_LUA,
  type CallLimit,
  callLimitArgs,
  decodeRefusal,
  type LimitedAction,
  LimitedActions,
  type LimitRefusal,
  type LimitScope,
  RateLimiter,
  type RateLimitRules,
  rateLimited,
  takeCallLimit,
} from "./rate-limiter.js";
export { type BucketRule, type BucketState, type TakeResult, takeToken } from "./token-bucket.js";
