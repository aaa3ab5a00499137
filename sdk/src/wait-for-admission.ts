import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { abortError, backoffDelay, linkedController, sleep } from "./backoff.js";
import type { StagedoorClient } from "./clients.js";
import { ERROR_DOMAIN, isRetryable, retryDelay } from "./errors.js";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { type QueueStatus, QueueTokenState } from "./gen/stagedoor/queue/v1/queue_service_pb.js";

/** The fan's admission: they may now hold a seat and pay until `expireTime`. */
export interface Admission {
  /** The absolute end of the admission; activity never extends it. */
  readonly expireTime: Date;
}

/** One report of the fan's place in line. */
export interface QueueUpdate {
  /** The live rank among waiting fans: 1 is next in line; 0 once admitted. */
  readonly position: number;
  /** How many fans are waiting in this line right now. */
  readonly waitingCount: number;
  /** The server's estimate of the time until admission, in milliseconds. */
  readonly estimatedWaitMs: number;
  /** Whether the update came from the live stream or from polling. */
  readonly source: "stream" | "poll";
  /**
   * When the sale opens, while the fan waits in the lobby (state LOBBY: no
   * place yet; everyone in the lobby is placed in a random order at that
   * moment); undefined otherwise. Show a countdown to it.
   */
  readonly opensAt: Date | undefined;
  /** Whether an operator paused admission (the fan keeps their place). */
  readonly admissionPaused: boolean;
  /** The status as the server sent it. */
  readonly status: QueueStatus;
}

/** Why and when {@link watchAdmission} tries again after a failure. */
export interface Reconnect {
  /** The failure. */
  readonly error: ConnectError;
  /** The number of consecutive failures so far, from 1. */
  readonly attempt: number;
  /** How long it waits before trying again, in milliseconds. */
  readonly delayMs: number;
  /** What it tries next: the stream again, or a poll. */
  readonly mode: "stream" | "poll";
}

/** One event of {@link watchAdmission}; the last one is always `admitted`. */
export type AdmissionEvent =
  | ({ readonly type: "status" } & QueueUpdate)
  | ({ readonly type: "reconnecting" } & Reconnect)
  | ({ readonly type: "admitted" } & Admission);

/** How {@link watchAdmission} and {@link waitForAdmission} wait. */
export interface WatchAdmissionOptions {
  /**
   * The queue token to wait with, sent as `Authorization: Bearer <token>`.
   * Leave it out when the client already sends the token.
   */
  readonly token?: string;
  /** Stops waiting: the helper rejects with a `canceled` ConnectError and stops all timers. */
  readonly signal?: AbortSignal;
  /** The delay before the first reconnect, in milliseconds (default 500). */
  readonly initialDelayMs?: number;
  /**
   * The longest delay between reconnects, in milliseconds (default 10 000).
   * Keep it well under the server's idle window (`QUEUE_IDLE_SECONDS`, 30 s by
   * default): reconnecting within it keeps the place in line.
   */
  readonly maxDelayMs?: number;
  /** How often to poll once streaming is given up, in milliseconds (default 3000). */
  readonly pollIntervalMs?: number;
  /**
   * After this many consecutive broken streams, poll `GetQueueStatus` instead
   * (default 5). A stream counts as broken when it fails before delivering
   * anything after its first status. `unimplemented` switches at once.
   */
  readonly maxStreamFailures?: number;
}

/** What {@link waitForAdmission} reports while it waits. */
export interface WaitForAdmissionOptions extends WatchAdmissionOptions {
  /** Called with every status: the first one, each change of position, each poll. */
  readonly onUpdate?: (update: QueueUpdate) => void;
  /** Called before each reconnect after a failure. */
  readonly onReconnect?: (reconnect: Reconnect) => void;
}

/** How long to wait for the server to end the stream after admission. */
const ADMITTED_DRAIN_MS = 1_000;

const DEFAULTS = {
  initialDelayMs: 500,
  maxDelayMs: 10_000,
  pollIntervalMs: 3_000,
  maxStreamFailures: 5,
};

const WHAT = "waiting for admission";

function toUpdate(status: QueueStatus, source: "stream" | "poll"): QueueUpdate {
  const wait = status.estimatedWait;
  return {
    position: Number(status.position),
    waitingCount: Number(status.waitingCount),
    estimatedWaitMs: wait ? Number(wait.seconds) * 1000 + Math.round(wait.nanos / 1_000_000) : 0,
    source,
    opensAt: status.opensAt ? timestampDate(status.opensAt) : undefined,
    admissionPaused: status.admissionPaused,
    status,
  };
}

/** The admission a status already shows, or undefined while waiting. */
function admissionOf(status: QueueStatus): Admission | undefined {
  if (status.state === QueueTokenState.ADMITTED && status.expireTime) {
    return { expireTime: timestampDate(status.expireTime) };
  }
  if (status.state === QueueTokenState.COMPLETED) {
    // The token's admission already ended with a payment: waiting cannot end
    // well, so say so the way the server does for a token that no longer admits.
    throw new ConnectError(
      "the admission of this queue token has ended; issue a new token",
      Code.FailedPrecondition,
      undefined,
      [{ desc: ErrorInfoSchema, value: { reason: "TOKEN_NOT_ADMITTED", domain: ERROR_DOMAIN } }],
    );
  }
  return undefined;
}

/**
 * Watches the fan's place in line until admission, as an async iterator: a
 * `status` event for the first status and every change (position, estimated
 * wait), a `reconnecting` event before each retry, and finally `admitted`.
 *
 * It consumes `QueueService.WatchQueueStatus`. When the stream breaks with a
 * retryable error it reconnects with exponential backoff and jitter (honouring
 * the server's retry hint); the server keeps the place in line as long as the
 * fan reconnects within its idle window. When streaming is unavailable
 * (`unimplemented`, or `maxStreamFailures` broken streams in a row) it polls
 * `GetQueueStatus` every `pollIntervalMs` instead. Non-retryable errors end
 * the iteration at once: `unauthenticated` when the token expired or lost its
 * place, `failed_precondition` when its admission already ended. Breaking out
 * of the loop closes the stream.
 *
 * @example
 * ```ts
 * for await (const event of watchAdmission(stagedoor, { token })) {
 *   if (event.type === "status") console.log(`#${event.position}, about ${event.estimatedWaitMs} ms`);
 *   if (event.type === "admitted") console.log(`in until ${event.expireTime.toISOString()}`);
 * }
 * ```
 */
export async function* watchAdmission(
  client: StagedoorClient,
  options: WatchAdmissionOptions = {},
): AsyncGenerator<AdmissionEvent, void, undefined> {
  const { signal, token } = options;
  const backoff = {
    initialDelayMs: options.initialDelayMs ?? DEFAULTS.initialDelayMs,
    maxDelayMs: options.maxDelayMs ?? DEFAULTS.maxDelayMs,
  };
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULTS.pollIntervalMs;
  const maxStreamFailures = options.maxStreamFailures ?? DEFAULTS.maxStreamFailures;
  const headers = token ? { authorization: `Bearer ${token}` } : undefined;

  let mode: "stream" | "poll" = "stream";
  let failures = 0;
  for (;;) {
    if (signal?.aborted) throw abortError(signal, WHAT);
    // Each attempt gets its own signal, so leaving the loop (admitted, failed,
    // or the caller breaking out) always closes the HTTP stream behind it.
    const attempt = linkedController(signal);
    let error: ConnectError;
    try {
      if (mode === "stream") {
        let messages = 0;
        const stream = client.queue.watchQueueStatus(
          {},
          { signal: attempt.controller.signal, headers },
        );
        let admission: Admission | undefined;
        let drainTimer: ReturnType<typeof setTimeout> | undefined;
        try {
          for await (const response of stream) {
            // Once admitted, keep reading: the server ends the stream right
            // after, and an HTTP/2 stream abandoned after the server closed it
            // is never released (the session, and the process, stay alive).
            if (admission) continue;
            messages += 1;
            // The first status arrives on every connect; only what follows it
            // proves the stream works, so only that forgives earlier failures.
            if (messages > 1) failures = 0;
            const { event } = response;
            if (event.case === "admitted") {
              const expireTime = event.value.expireTime;
              admission = { expireTime: expireTime ? timestampDate(expireTime) : new Date() };
            } else if (event.case === "status") {
              yield { type: "status", ...toUpdate(event.value, "stream") };
              admission = admissionOf(event.value);
            }
            if (admission) {
              // A server that never ends the stream is cut after a grace period.
              drainTimer = setTimeout(() => attempt.controller.abort(), ADMITTED_DRAIN_MS);
            }
          }
        } catch (thrown) {
          if (!admission || signal?.aborted) throw thrown;
        } finally {
          if (drainTimer !== undefined) clearTimeout(drainTimer);
        }
        if (admission) {
          yield { type: "admitted", ...admission };
          return;
        }
        // A clean end before admission: a proxy or a restarting server closed it.
        throw new ConnectError("the status stream ended before admission", Code.Unavailable);
      }
      const { status } = await client.queue.getQueueStatus(
        {},
        { signal: attempt.controller.signal, headers },
      );
      failures = 0;
      if (status) {
        const admission = admissionOf(status);
        yield { type: "status", ...toUpdate(status, "poll") };
        if (admission) {
          yield { type: "admitted", ...admission };
          return;
        }
      }
      await sleep(pollIntervalMs, signal, WHAT);
      continue;
    } catch (thrown) {
      if (signal?.aborted) throw abortError(signal, WHAT);
      // Connect calls fail with ConnectErrors only; anything else is a bug.
      if (!(thrown instanceof ConnectError)) throw thrown;
      error = thrown;
    } finally {
      attempt.controller.abort();
      attempt.dispose();
    }

    if (mode === "stream" && error.code === Code.Unimplemented) {
      // No streaming on this path (an old proxy, a gateway): poll right away.
      mode = "poll";
      yield { type: "reconnecting", error, attempt: 1, delayMs: 0, mode };
      continue;
    }
    // A stream reset by something between us and the server reads as
    // canceled; only the caller's own abort (handled above) is final.
    const retryable = isRetryable(error) || (mode === "stream" && error.code === Code.Canceled);
    if (!retryable) throw error;
    failures += 1;
    if (mode === "stream" && failures >= maxStreamFailures) mode = "poll";
    const delayMs = retryDelay(error) ?? backoffDelay(failures, backoff);
    yield { type: "reconnecting", error, attempt: failures, delayMs, mode };
    await sleep(delayMs, signal, WHAT);
  }
}

/**
 * Waits until the fan is admitted and resolves with the admission's expiry,
 * reporting every status to `onUpdate` on the way. It resolves at once when
 * the token is already admitted. It reconnects, falls back to polling and
 * fails exactly like {@link watchAdmission}, and rejects with a `canceled`
 * ConnectError when `signal` aborts.
 *
 * @example
 * ```ts
 * const { expireTime } = await waitForAdmission(stagedoor, {
 *   token,
 *   onUpdate: ({ position, estimatedWaitMs }) => console.log(`#${position} (~${estimatedWaitMs} ms)`),
 * });
 * ```
 */
export async function waitForAdmission(
  client: StagedoorClient,
  options: WaitForAdmissionOptions = {},
): Promise<Admission> {
  for await (const event of watchAdmission(client, options)) {
    switch (event.type) {
      case "status":
        options.onUpdate?.(event);
        break;
      case "reconnecting":
        options.onReconnect?.(event);
        break;
      case "admitted":
        return { expireTime: event.expireTime };
    }
  }
  // watchAdmission only ends by admission or by throwing.
  throw new ConnectError("the queue status ended without an admission", Code.Internal);
}
