import { Code, ConnectError } from "@connectrpc/connect";

/** How retries space themselves out. */
export interface BackoffOptions {
  /** The delay before the first retry, in milliseconds. */
  readonly initialDelayMs: number;
  /** The longest delay between two attempts, in milliseconds. */
  readonly maxDelayMs: number;
}

/**
 * The delay before retry number `attempt` (1-based): exponential growth capped
 * at `maxDelayMs`, with "equal jitter" (a random half on top of a fixed half)
 * so that thousands of clients dropped at the same moment do not come back at
 * the same moment, while none retries at once.
 */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const exponential = options.initialDelayMs * 2 ** Math.max(0, attempt - 1);
  const capped = Math.min(Math.max(0, options.maxDelayMs), exponential);
  return Math.round(capped / 2 + (Math.random() * capped) / 2);
}

/**
 * The error a helper rejects with when its `AbortSignal` fires: a Connect
 * `canceled` error (what an aborted Connect call throws too), keeping the
 * signal's reason as the cause.
 */
export function abortError(signal: AbortSignal | undefined, what: string): ConnectError {
  return new ConnectError(
    `${what} was aborted`,
    Code.Canceled,
    undefined,
    undefined,
    signal?.reason,
  );
}

/**
 * Waits `ms` milliseconds, or rejects with {@link abortError} as soon as
 * `signal` fires; the timer never outlives the wait.
 */
export function sleep(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal, what));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal, what));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * An AbortController that also aborts when `parent` does; `dispose()` detaches
 * it from the parent. Used instead of `AbortSignal.any`, which Node 20.0 to
 * 20.2 lack.
 */
export function linkedController(parent: AbortSignal | undefined): {
  readonly controller: AbortController;
  dispose(): void;
} {
  const controller = new AbortController();
  if (parent === undefined) return { controller, dispose() {} };
  const onAbort = () => controller.abort(parent.reason);
  if (parent.aborted) onAbort();
  else parent.addEventListener("abort", onAbort, { once: true });
  return {
    controller,
    dispose() {
      parent.removeEventListener("abort", onAbort);
    },
  };
}
