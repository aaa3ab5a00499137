/** Request-id claims that make every mutation safe to retry. */

export {
  CLAIMED,
  type ClaimAndLock,
  claimAndLock,
  claimAndLockStatement,
  claimRequestId,
  claimTakeBack,
  type IdempotencyClaim,
  type IdempotentRequest,
  PRUNE_BATCH,
  type PruneOptions,
  pruneRequestIds,
  releaseClaim,
  requestHash,
} from "./idempotency.repository.js";
export {
  IdempotencyKey,
  IdempotencyKeySchema,
  type IdempotentOperation,
} from "./idempotency-key.entity.js";
