import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "@stagedoor/sdk";
import type { MessageKey } from "./i18n.js";

/** A failed call, read for a fan: what to tell them and what the app should do next. */
export interface FanError {
  /** The words to show (never the raw code or server message). */
  readonly key: MessageKey;
  /** The `ErrorInfo` reason (without prefix), when the server gave one. */
  readonly reason: string | undefined;
  readonly code: Code;
  /** Retrying the same call (with the same request id) may succeed. */
  readonly transient: boolean;
  /** The queue token no longer works: the fan has to join the line again. */
  readonly sessionOver: boolean;
  /** The server's retry hint, when it sent one. */
  readonly retryAfterMs: number | undefined;
}

interface ReasonRule {
  readonly key: MessageKey;
  readonly transient?: boolean;
  readonly sessionOver?: boolean;
}

/** What each `stagedoor.common.v1.ErrorReason` means to a fan. */
const BY_REASON: Readonly<Record<string, ReasonRule>> = {
  SEAT_UNAVAILABLE: { key: "errSeatTaken" },
  HOLD_EXPIRED: { key: "errHoldExpired" },
  RESERVATION_NOT_HELD: { key: "errHoldExpired" },
  INSUFFICIENT_BALANCE: { key: "errInsufficientBalance" },
  HOLD_LIMIT_REACHED: { key: "errHoldLimit" },
  TOKEN_MISSING: { key: "errSessionExpired", sessionOver: true },
  TOKEN_INVALID: { key: "errSessionExpired", sessionOver: true },
  TOKEN_EXPIRED: { key: "errSessionExpired", sessionOver: true },
  TOKEN_WRONG_CONCERT: { key: "errSessionExpired", sessionOver: true },
  USER_MISMATCH: { key: "errIdentity", sessionOver: true },
  ASSERTION_INVALID: { key: "errIdentity" },
  TOKEN_NOT_ADMITTED: { key: "errNotAdmitted" },
  BALANCE_LIMIT_REACHED: { key: "errBalanceLimit" },
  ALREADY_PAID: { key: "errAlreadyPaid" },
  AMOUNT_MISMATCH: { key: "errAmountMismatch" },
  SALE_CLOSED: { key: "errSaleClosed" },
  CONCERT_NOT_FOUND: { key: "errNotFound" },
  CONCERT_DATE_NOT_FOUND: { key: "errNotFound" },
  SEAT_NOT_FOUND: { key: "errNotFound" },
  RESERVATION_NOT_FOUND: { key: "errNotFound" },
  PAYMENT_NOT_FOUND: { key: "errNotFound" },
  INVALID_ARGUMENT: { key: "errInvalid" },
  REQUEST_ID_REUSED: { key: "errGeneric" },
  QUEUE_UNAVAILABLE: { key: "errBusy", transient: true },
  CONCURRENT_UPDATE: { key: "errBusy", transient: true },
  SERVER_SHUTTING_DOWN: { key: "errBusy", transient: true },
};

/** Codes that mean "the call did not get through", when no reason says otherwise. */
const TRANSIENT_CODES: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  // A dropped connection or a fetch that never reached the server.
  Code.Unknown,
]);

/**
 * Reads a failed call the way a fan needs it: the reason from the error's
 * `google.rpc.ErrorInfo` detail picks the words and whether to retry or start
 * over; the code alone only decides for errors that never reached our
 * handlers (network, proxies).
 */
export function describeError(error: unknown): FanError {
  const err = ConnectError.from(error);
  const reason = err.findDetails(ErrorInfoSchema)[0]?.reason || undefined;
  const retryDelay = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  const retryAfterMs = retryDelay ? durationMs(retryDelay) : undefined;
  const rule = reason === undefined ? undefined : BY_REASON[reason];
  if (rule !== undefined) {
    return {
      key: rule.key,
      reason,
      code: err.code,
      transient: rule.transient === true,
      sessionOver: rule.sessionOver === true,
      retryAfterMs,
    };
  }
  const transient = reason === undefined && TRANSIENT_CODES.has(err.code);
  return {
    key: transient
      ? "errBusy"
      : err.code === Code.Unauthenticated
        ? "errSessionExpired"
        : "errGeneric",
    reason,
    code: err.code,
    transient,
    sessionOver: err.code === Code.Unauthenticated,
    retryAfterMs,
  };
}
