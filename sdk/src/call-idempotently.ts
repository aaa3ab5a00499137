import { ConnectError } from "@connectrpc/connect";
import { abortError, backoffDelay, sleep } from "./backoff.js";
import { isRetryable, retryDelay } from "./errors.js";

/** One retry {@link callIdempotently} is about to make. */
export interface RetryAttempt {
  /** The request id every attempt of this operation sends. */
  readonly requestId: string;
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  /** Its error. */
  readonly error: ConnectError;
  /** How long it waits before the next attempt, in milliseconds. */
  readonly delayMs: number;
}

/** How {@link callIdempotently} retries. */
export interface IdempotentCallOptions {
  /** The most attempts in all, the first included (default 4). */
  readonly maxAttempts?: number;
  /** The delay before the first retry, in milliseconds (default 200); it doubles each time. */
  readonly initialDelayMs?: number;
  /** The longest delay between attempts, in milliseconds (default 5000). */
  readonly maxDelayMs?: number;
  /** Stops retrying: rejects with a `canceled` ConnectError and stops all timers. */
  readonly signal?: AbortSignal;
  /**
   * The request id to use instead of a fresh random one, e.g. one saved
   * before a page reload so that the operation is still the same one.
   */
  readonly requestId?: string;
  /** Called before each retry, e.g. to log it. */
  readonly onRetry?: (retry: RetryAttempt) => void;
}

/** Per-call settings of the idempotent mutation helpers (`payReservation`, `rechargeWallet`). */
export interface MutationOptions extends IdempotentCallOptions {
  /** The queue token to act with, when the client does not send one already. */
  readonly token?: string;
  /** A deadline for each attempt, in milliseconds; a timed-out attempt is retried. */
  readonly timeoutMs?: number;
}

const DEFAULTS = { maxAttempts: 4, initialDelayMs: 200, maxDelayMs: 5_000 };

/** A fresh id for one logical operation; Web Crypto exists in browsers and Node 20. */
function newRequestId(): string {
  return globalThis.crypto.randomUUID();
}

/**
 * Runs a mutation so that retrying it can never apply it twice: it makes ONE
 * request id for the logical operation and passes that same id to every
 * attempt, so a retry after a timeout or a dropped connection (when the server
 * may already have acted) gets the first result back instead of charging
 * again. It retries only retryable failures (see `isRetryable`), at most
 * `maxAttempts` times in all, waiting the server's `RetryInfo` delay when it
 * sends one and exponential backoff with jitter otherwise, and rejects with
 * the last error. It rejects with a `canceled` ConnectError when `signal`
 * aborts.
 *
 * @example
 * ```ts
 * const { reservation } = await callIdempotently((requestId) =>
 *   stagedoor.reservation.holdSeat({ seatId, requestId }),
 * );
 * ```
 */
export async function callIdempotently<T>(
  operation: (requestId: string) => Promise<T>,
  options: IdempotentCallOptions = {},
): Promise<T> {
  const { signal } = options;
  const requestId = options.requestId ?? newRequestId();
  const maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULTS.maxAttempts);
  const backoff = {
    initialDelayMs: options.initialDelayMs ?? DEFAULTS.initialDelayMs,
    maxDelayMs: options.maxDelayMs ?? DEFAULTS.maxDelayMs,
  };
  const what = `request ${requestId}`;
  for (let attempt = 1; ; attempt += 1) {
    if (signal?.aborted) throw abortError(signal, what);
    try {
      return await operation(requestId);
    } catch (thrown) {
      if (signal?.aborted) throw abortError(signal, what);
      // Connect calls fail with ConnectErrors only; anything else is a bug in
      // the operation itself, which no retry fixes.
      if (!(thrown instanceof ConnectError)) throw thrown;
      const error = thrown;
      if (attempt >= maxAttempts || !isRetryable(error)) throw error;
      const delayMs = retryDelay(error) ?? backoffDelay(attempt, backoff);
      options.onRetry?.({ requestId, attempt, error, delayMs });
      await sleep(delayMs, signal, what);
    }
  }
}
