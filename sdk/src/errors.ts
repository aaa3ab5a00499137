import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import type { ErrorReason } from "./gen/stagedoor/common/v1/error_reason_pb.js";

/** The `domain` of every `google.rpc.ErrorInfo` detail Stagedoor returns. */
export const ERROR_DOMAIN = "stagedoor.dev";

/**
 * The reasons Stagedoor documents today (the names of `ErrorReason`). Typed
 * reads return these, widened with `string` so that a reason added by a newer
 * server still reaches the caller instead of being hidden.
 */
export type KnownErrorReason = Exclude<keyof typeof ErrorReason, "UNSPECIFIED">;

/**
 * An error reason: one of {@link KnownErrorReason} (offered by editors) or a
 * reason added by a newer server.
 */
export type StagedoorErrorReason = KnownErrorReason | (string & Record<never, never>);

/** One invalid request field named by the server's `google.rpc.BadRequest` detail. */
export interface FieldViolation {
  /** The field's path in the request, e.g. `amount` or `seat_id`. */
  readonly field: string;
  /** What is wrong with it, in English. */
  readonly description: string;
}

/**
 * The machine-readable reason of a Stagedoor error: the `reason` of its
 * `google.rpc.ErrorInfo` detail of domain {@link ERROR_DOMAIN}. Branch on it,
 * never on the message text. Returns undefined for anything else (a network
 * failure, another service's error, a value that is not an error).
 *
 * @example
 * ```ts
 * try {
 *   await stagedoor.reservation.holdSeat({ seatId, requestId });
 * } catch (err) {
 *   if (errorReason(err) === "SEAT_UNAVAILABLE") showSeatTaken();
 *   else throw err;
 * }
 * ```
 */
export function errorReason(err: unknown): StagedoorErrorReason | undefined {
  const info = ConnectError.from(err)
    .findDetails(ErrorInfoSchema)
    .find((detail) => detail.domain === ERROR_DOMAIN);
  return info?.reason ? info.reason : undefined;
}

/**
 * How long the server asks the caller to wait before retrying, in
 * milliseconds, from the error's `google.rpc.RetryInfo` detail. Stagedoor sends
 * it only when a retry can succeed (a concurrent update, a server shutting
 * down, the waiting room's store unreachable); undefined otherwise.
 *
 * @example
 * ```ts
 * const waitMs = retryDelay(err);
 * if (waitMs !== undefined) await new Promise((r) => setTimeout(r, waitMs));
 * ```
 */
export function retryDelay(err: unknown): number | undefined {
  for (const info of ConnectError.from(err).findDetails(RetryInfoSchema)) {
    const delay = info.retryDelay;
    if (delay === undefined) continue;
    return Math.max(0, Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1_000_000));
  }
  return undefined;
}

/**
 * The invalid request fields the server named in the error's
 * `google.rpc.BadRequest` details, so a form can mark each one. Empty when
 * there are none.
 *
 * @example
 * ```ts
 * for (const { field, description } of fieldViolations(err)) {
 *   console.log(`${field}: ${description}`); // "amount: must be at least 1"
 * }
 * ```
 */
export function fieldViolations(err: unknown): FieldViolation[] {
  return ConnectError.from(err)
    .findDetails(BadRequestSchema)
    .flatMap((bad) =>
      bad.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
    );
}

/** Codes that mean "this attempt did not get through" when no server detail says otherwise. */
const TRANSIENT_CODES: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.Aborted,
  Code.ResourceExhausted,
  // Connect reports network failures it cannot classify (a dropped
  // connection, a browser's "Failed to fetch", a reset HTTP/2 stream) as
  // unknown or internal, and carries no server detail with them.
  Code.Unknown,
  Code.Internal,
]);

/**
 * Whether trying the same call again may succeed. With a Stagedoor error the
 * server decides: a `RetryInfo` detail, or `unavailable` / `aborted`, means
 * yes; any other reason (a taken seat, a low balance, a refused amount, an
 * expired token) means no, because the same request fails the same way.
 * Without server details (network failures, proxies, timeouts) the transient
 * codes (unavailable, deadline_exceeded, aborted, resource_exhausted, and
 * unknown/internal) are retryable. Cancellation never is, nor anything that
 * is not a ConnectError (a bug in the caller's own code).
 *
 * Only retry mutations with the same `request_id` (see `callIdempotently`):
 * a retryable failure may have happened after the server acted.
 *
 * @example
 * ```ts
 * if (!isRetryable(err)) throw err;
 * ```
 */
export function isRetryable(err: unknown): boolean {
  // Connect calls fail with ConnectErrors only; anything else is a local bug.
  if (!(err instanceof ConnectError)) return false;
  const error = err;
  if (error.code === Code.Canceled) return false;
  if (error.findDetails(RetryInfoSchema).length > 0) return true;
  const fromServer = error
    .findDetails(ErrorInfoSchema)
    .some((detail) => detail.domain === ERROR_DOMAIN);
  if (fromServer) return error.code === Code.Unavailable || error.code === Code.Aborted;
  return TRANSIENT_CODES.has(error.code);
}
