import { describeError } from "./fan-error.js";

/** Waits `ms`, or rejects as soon as `signal` aborts so a screen left behind stops at once. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Exponential backoff with full jitter, capped: thousands of fans whose
 * connection broke at the same moment must not all come back at the same
 * moment.
 */
export function backoffMs(attempt: number, baseMs = 300, capMs = 5_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/** How {@link withRetry} retries. */
export interface RetryOptions {
  /** Attempts in all, the first included. */
  readonly attempts?: number;
  readonly signal?: AbortSignal;
  /** Called before each retry, e.g. to show "busy, retrying". */
  readonly onRetry?: () => void;
}

/**
 * Runs a call again while it fails for a transient reason (unavailable, busy
 * store, concurrent update), with backoff and a cap; any other failure is
 * thrown at once. Mutations pass the same `request_id` on every attempt, so a
 * retry after a lost response never holds, tops up or charges twice.
 */
export async function withRetry<T>(call: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 4;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const fan = describeError(error);
      if (!fan.transient || attempt >= attempts) throw error;
      options.onRetry?.();
      await sleep(Math.max(fan.retryAfterMs ?? 0, backoffMs(attempt)), options.signal);
    }
  }
}
