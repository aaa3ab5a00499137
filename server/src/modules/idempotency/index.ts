/** Request-id claims that make every mutation safe to retry. */

export {
  claimRequestId,
  type IdempotencyClaim,
  type IdempotentRequest,
  pruneRequestIds,
  requestHash,
} from "./idempotency.repository.js";
export {
  IdempotencyKey,
  IdempotencyKeySchema,
  type IdempotentOperation,
} from "./idempotency-key.entity.js";
