import { DomainError } from "./domain-error.js";

/** PostgreSQL error codes that mean "a concurrent transaction got in the way; retry". */
const RETRYABLE_SQL_STATES = new Set([
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "55P03", // lock_not_available (lock_timeout)
]);

/** PostgreSQL error codes that mean "the database is overloaded". */
const BUSY_SQL_STATES = new Set([
  "57014", // query_canceled (statement_timeout)
  "53300", // too_many_connections
]);

/**
 * PostgreSQL error codes that mean "the database is going away or not back
 * yet" (a restart, a failover): class 08 connection_exception, plus these.
 */
const DOWN_SQL_STATES = new Set([
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up or shutting down)
]);

/** Socket errors of a connection to the database that could not be made or broke. */
const CONNECTION_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/**
 * What node-postgres says, with no code, about a connection that died under
 * it ("Connection terminated unexpectedly", a client whose socket failed);
 * knex puts the statement in front (`COMMIT; - Client has …`).
 */
const CONNECTION_LOST =
  /(?:^|\s-\s)(?:Connection terminated|Client has encountered a connection error|Client was closed and is not queryable)/;

/**
 * The answer to a request the server has no capacity for right now: it
 * waited too long for a database connection (or for a transaction to share,
 * see persistence/write-batcher.ts). Nothing of it was done; retry shortly.
 */
export function serverBusy(cause?: unknown): DomainError {
  return new DomainError("unavailable", "SERVER_BUSY", "the server is busy; retry shortly", {
    retryAfterMs: 500,
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Recognises database failures that are not bugs and tells the caller what to
 * do about them (retry), instead of reporting them as internal errors. Reads
 * the SQLSTATE (or socket error code) duck-typed, so this needs no ORM import.
 */
export function transientDomainError(error: unknown): DomainError | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const { sqlState, code, name, message } = error as {
    sqlState?: unknown;
    code?: unknown;
    name?: unknown;
    message?: unknown;
  };
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
    (typeof state === "string" && BUSY_SQL_STATES.has(state)) || name === "KnexTimeoutError";
  if (busy) return serverBusy(error);
  const down =
    (typeof state === "string" &&
      (DOWN_SQL_STATES.has(state) ||
        state.startsWith("08") ||
        CONNECTION_ERROR_CODES.has(state))) ||
    (typeof message === "string" && CONNECTION_LOST.test(message));
  if (down) {
    // A restart takes seconds: a retry sooner than that would only fail again.
    return new DomainError(
      "unavailable",
      "SERVER_BUSY",
      "the database is unreachable; retry shortly",
      { retryAfterMs: 1000, cause: error },
    );
  }
  return undefined;
}
