/** Request-id claims that make every mutation safe to retry. */

export {
  CLAIM_CTE,
  CLAIMED,
  CLAIMED_COLUMN,
  type ClaimAndLock,
  type ClaimedRow,
  claimRequestId,
  claimValues,
  type IdempotencyClaim,
  type IdempotentRequest,
  PRUNE_BATCH,
  type PruneOptions,
  pruneRequestIds,
  requestHash,
  settleClaim,
} from "./idempotency.repository.js";
export {
  IdempotencyKey,
  IdempotencyKeySchema,
  type IdempotentOperation,
} from "./idempotency-key.entity.js";
