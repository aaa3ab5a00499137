/** Rate limits: token buckets per user and per client address, in Redis or in-process. */
export { MemoryRateLimitStore } from "./memory-rate-limit-store.js";
export type { RateLimitStore } from "./rate-limit-store.js";
export {
  type ActionLimits,
  type Caller,
  type LimitedAction,
  LimitedActions,
  type LimitScope,
  RateLimiter,
  type RateLimitRules,
} from "./rate-limiter.js";
export { type LuaEvaluator, RedisRateLimitStore } from "./redis-rate-limit-store.js";
export { type BucketRule, type BucketState, type TakeResult, takeToken } from "./token-bucket.js";
