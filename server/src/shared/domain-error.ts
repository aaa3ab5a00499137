import type { ErrorReason } from "./error-reasons.js";

/**
 * The kinds of failure a call can end with. They mirror the gRPC status codes
 * (as Connect spells them), so the transport maps them one to one, but the
 * domain never imports Connect. Domain rules use the first nine; the last four
 * are for what the transport reports itself (an unknown method, a deadline, a
 * cancelled call, a bug), so that every failure has one shape.
 */
export type ErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "aborted"
  | "unauthenticated"
  | "permission_denied"
  | "resource_exhausted"
  | "unavailable"
  | "unimplemented"
  | "deadline_exceeded"
  | "canceled"
  | "internal";

/** One invalid field of a request, named by its path in the request. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/** Options of a {@link DomainError} beyond its kind, reason and message. */
export interface DomainErrorOptions {
  /** Facts that are safe to show the caller, such as a seat id. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** The invalid fields, for `invalid_argument`. */
  readonly violations?: readonly FieldViolation[];
  /** How long the caller should wait before retrying, when retrying can help. */
  readonly retryAfterMs?: number;
  /** The underlying error, kept for logs and never sent to callers. */
  readonly cause?: unknown;
}

/**
 * A failure the caller caused or can act on. Every domain rule throws this with
 * a stable machine-readable `reason` (see `ErrorReason` in the API), so clients
 * branch on the reason rather than on the message text, and the one error
 * interceptor can map it without knowing the rule.
 */
export class DomainError extends Error {
  override readonly name = "DomainError";
  readonly metadata: Readonly<Record<string, string>>;
  readonly violations: readonly FieldViolation[];
  readonly retryAfterMs: number | undefined;

  constructor(
    readonly kind: ErrorKind,
    readonly reason: ErrorReason,
    message: string,
    options: DomainErrorOptions = {},
  ) {
    // An expected refusal needs no stack trace, and capturing one is most of
    // what constructing an error costs: in a rush, nearly every hold attempt
    // ends in one. A cause keeps its own stack.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    Error.stackTraceLimit = limit;
    this.metadata = options.metadata ?? {};
    this.violations = options.violations ?? [];
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Builds the `invalid_argument` error for one bad field. */
export function invalidField(field: string, description: string): DomainError {
  return new DomainError("invalid_argument", "INVALID_ARGUMENT", `${field}: ${description}`, {
    violations: [{ field, description }],
    metadata: { field },
  });
}

/**
 * The error a long call (a stream) ends with when the server shuts down:
 * unavailable, and worth retrying at once against another instance.
 */
export function shuttingDown(): DomainError {
  return new DomainError(
    "unavailable",
    "SERVER_SHUTTING_DOWN",
    "the server is shutting down; reconnect to keep your place",
    { retryAfterMs: 500 },
  );
}
