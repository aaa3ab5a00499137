/** Request-id claims that make every mutation safe to retry. */

export {
  CLAIM_CTE,
  CLAIMED,
  CLAIMED_COLUMN,
  type ClaimAndLock,
  type ClaimedRow,
  claimAndLock,
  claimRequestId,
  type IdempotencyClaim,
  type IdempotentRequest,
  PRUNE_BATCH,
  type PruneOptions,
  pruneRequestIds,
  requestHash,
} from "./idempotency.repository.js";
export {
  IdempotencyKey,
  IdempotencyKeySchema,
  type IdempotentOperation,
} from "./idempotency-key.entity.js";
