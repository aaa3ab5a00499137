import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type QueueStatus, QueueTokenState, type StagedoorClient } from "@stagedoor/sdk";
import { describeError } from "./fan-error.js";
import { backoffMs, sleep } from "./retry.js";

/** How watching the line ended. */
export type QueueOutcome =
  | { readonly kind: "admitted"; readonly expireTimeMs: number }
  /** The admission already ended with a payment: the token admits no more. */
  | { readonly kind: "completed" };

/** Callbacks and timings of {@link watchQueue}. */
export interface WatchQueueOptions {
  readonly signal: AbortSignal;
  /** Each new status: position, people waiting, estimated wait. */
  readonly onStatus: (status: QueueStatus) => void;
  /** The connection broke and the watcher is getting it back; `false` once it is back. */
  readonly onReconnecting: (reconnecting: boolean) => void;
  /** Failed stream attempts in a row before falling back to polling. */
  readonly streamAttempts?: number;
  /** How often to poll while streaming is unavailable (well inside the server's idle window). */
  readonly pollMs?: number;
  /** How long to poll before trying the stream again. */
  readonly pollWindowMs?: number;
}

/**
 * Follows the fan's place in line until admission. It reads the server-
 * streaming `WatchQueueStatus` (the server pushes every move within a
 * second); when the stream breaks it reconnects with backoff, which keeps the
 * place as long as it is back within the idle window; when streaming keeps
 * failing (a proxy that buffers responses, say) it polls `GetQueueStatus`
 * for a while instead, and then tries the stream again. Errors that mean the
 * place is gone (expired or revoked token) are thrown to the caller.
 */
export async function watchQueue(
  stagedoor: StagedoorClient,
  options: WatchQueueOptions,
): Promise<QueueOutcome> {
  const streamAttempts = options.streamAttempts ?? 3;
  const pollMs = options.pollMs ?? 2_000;
  const pollWindowMs = options.pollWindowMs ?? 30_000;
  let failures = 0;
  for (;;) {
    if (failures >= streamAttempts) {
      const polled = await poll(stagedoor, options, pollMs, pollWindowMs);
      if (polled !== undefined) return polled;
      failures = 0;
      continue;
    }
    try {
      const outcome = await followStream(stagedoor, options, () => {
        failures = 0;
        options.onReconnecting(false);
      });
      if (outcome !== undefined) return outcome;
      // A stream that ends without `admitted` was cut short (a restart, a proxy).
      failures++;
    } catch (error) {
      if (options.signal.aborted) throw error;
      if (!describeError(error).transient) throw error;
      failures++;
    }
    options.onReconnecting(true);
    await sleep(backoffMs(failures), options.signal);
  }
}

/** Reads one stream to its end; `undefined` when it ended before admission. */
async function followStream(
  stagedoor: StagedoorClient,
  options: WatchQueueOptions,
  onMessage: () => void,
): Promise<QueueOutcome | undefined> {
  for await (const message of stagedoor.queue.watchQueueStatus({}, { signal: options.signal })) {
    onMessage();
    const event = message.event;
    if (event.case === "admitted") {
      return {
        kind: "admitted",
        expireTimeMs: event.value.expireTime ? timestampMs(event.value.expireTime) : 0,
      };
    }
    if (event.case === "status") {
      options.onStatus(event.value);
      // An admitted status carries the admission's end as well as `admitted` does.
      const outcome = settled(event.value);
      if (outcome !== undefined) return outcome;
    }
  }
  return undefined;
}

/** Polls for up to `windowMs`; `undefined` when the window passed while still waiting. */
async function poll(
  stagedoor: StagedoorClient,
  options: WatchQueueOptions,
  pollMs: number,
  windowMs: number,
): Promise<QueueOutcome | undefined> {
  const until = Date.now() + windowMs;
  let failures = 0;
  while (Date.now() < until) {
    try {
      const { status } = await stagedoor.queue.getQueueStatus({}, { signal: options.signal });
      failures = 0;
      options.onReconnecting(false);
      if (status) {
        options.onStatus(status);
        const outcome = settled(status);
        if (outcome !== undefined) return outcome;
      }
    } catch (error) {
      if (options.signal.aborted) throw error;
      if (!describeError(error).transient) throw error;
      failures++;
      options.onReconnecting(true);
    }
    await sleep(failures > 0 ? backoffMs(failures, pollMs) : pollMs, options.signal);
  }
  return undefined;
}

/** The outcome a status already decides, if any. */
function settled(status: QueueStatus): QueueOutcome | undefined {
  switch (status.state) {
    case QueueTokenState.ADMITTED:
      return {
        kind: "admitted",
        expireTimeMs: status.expireTime ? timestampMs(status.expireTime) : 0,
      };
    case QueueTokenState.COMPLETED:
      return { kind: "completed" };
    default:
      return undefined;
  }
}
