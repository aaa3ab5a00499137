/**
 * Every stable reason a {@link DomainError} can carry. The API publishes the
 * same set as the `stagedoor.common.v1.ErrorReason` enum (with an
 * `ERROR_REASON_` prefix); a unit test keeps the two in step.
 */
export const ErrorReasons = [
  "INVALID_ARGUMENT",
  "TOKEN_MISSING",
  "TOKEN_INVALID",
  "TOKEN_EXPIRED",
  "TOKEN_NOT_ADMITTED",
  "TOKEN_WRONG_CONCERT",
  "USER_MISMATCH",
  "ASSERTION_INVALID",
  "CONCERT_NOT_FOUND",
  "CONCERT_DATE_NOT_FOUND",
  "SEAT_NOT_FOUND",
  "SEAT_UNAVAILABLE",
  "SALE_CLOSED",
  "HOLD_LIMIT_REACHED",
  "RESERVATION_NOT_FOUND",
  "RESERVATION_NOT_HELD",
  "HOLD_EXPIRED",
  "ALREADY_PAID",
  "AMOUNT_MISMATCH",
  "INSUFFICIENT_BALANCE",
  "WALLET_NOT_FOUND",
  "BALANCE_LIMIT_REACHED",
  "PAYMENT_NOT_FOUND",
  "REQUEST_ID_REUSED",
  "CONCURRENT_UPDATE",
  "QUEUE_UNAVAILABLE",
  "SERVER_SHUTTING_DOWN",
  "SERVER_BUSY",
  "WATCH_LIMIT_REACHED",
  "WATCH_CAPACITY_REACHED",
  "MALFORMED_REQUEST",
  "REQUEST_TOO_LARGE",
  "UNSUPPORTED_ENCODING",
  "METHOD_NOT_FOUND",
  "SERVICE_NOT_FOUND",
  "DEADLINE_EXCEEDED",
  "CANCELLED",
  "INTERNAL_ERROR",
  "RATE_LIMITED",
] as const;

/** A stable reason of a {@link DomainError}. */
export type ErrorReason = (typeof ErrorReasons)[number];
