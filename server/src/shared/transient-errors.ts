import { DomainError } from "./domain-error.js";

/** PostgreSQL error codes that mean "a concurrent transaction got in the way; retry". */
const RETRYABLE_SQL_STATES = new Set([
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "55P03", // lock_not_available (lock_timeout)
]);

/** PostgreSQL error codes that mean "the database is overloaded or going away". */
const UNAVAILABLE_SQL_STATES = new Set([
  "57014", // query_canceled (statement_timeout)
  "57P01", // admin_shutdown
  "53300", // too_many_connections
]);

/**
 * Recognises database failures that are not bugs and tells the caller what to
 * do about them (retry), instead of reporting them as internal errors. Reads
 * the SQLSTATE duck-typed, so this needs no ORM import.
 */
export function transientDomainError(error: unknown): DomainError | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const { sqlState, code, name } = error as { sqlState?: unknown; code?: unknown; name?: unknown };
  const state = sqlState ?? code;
  if (typeof state === "string" && RETRYABLE_SQL_STATES.has(state)) {
    return new DomainError(
      "aborted",
      "CONCURRENT_UPDATE",
      "a concurrent change got in the way; retry",
      { retryAfterMs: 100, cause: error },
    );
  }
  const busy =
    (typeof state === "string" && UNAVAILABLE_SQL_STATES.has(state)) || name === "KnexTimeoutError";
  if (busy) {
    return new DomainError("unavailable", "SERVER_BUSY", "the server is busy; retry shortly", {
      retryAfterMs: 500,
      cause: error,
    });
  }
  return undefined;
}
