import type { Logger } from "../logger.js";

/** A background task that runs on a fixed interval and can be stopped cleanly. */
export interface IntervalJob {
  /** What the job does, as it appears in logs. */
  readonly name: string;
  start(): void;
  /** Stops scheduling and waits for a run in progress to finish. */
  stop(): Promise<void>;
  /** Runs once now (also used by tests); skipped if a run is in progress. */
  runOnce(): Promise<void>;
}

/** How a job reports a run of failures. */
export interface IntervalJobOptions {
  /** While a job keeps failing, how often it says so again (ms); a minute by default. */
  readonly reminderMs?: number;
  /** Milliseconds on a monotonic clock; tests pass their own. */
  readonly now?: () => number;
}

/** While a job keeps failing, it says so again this often. */
export const FAILURE_REMINDER_MS = 60_000;

/**
 * Runs `task` every `intervalMs`, never overlapping itself. A failing run is
 * logged and the next one tries again: background jobs must never crash the
 * process. Each task opens its own EntityManager fork inside `task`.
 *
 * An outage makes a job fail on every tick (the queue admitter ticks every
 * 250 ms), so a run of failures is logged once when it starts (warn, with
 * the error), then at most once per `reminderMs` while it lasts (warn, with
 * the count so far), and once when a run succeeds again (info, with how long
 * it failed and how many runs).
 */
export function createIntervalJob(
  name: string,
  intervalMs: number,
  task: () => Promise<unknown>,
  logger: Logger,
  options: IntervalJobOptions = {},
): IntervalJob {
  const reminderMs = options.reminderMs ?? FAILURE_REMINDER_MS;
  const now = options.now ?? (() => performance.now());
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  /** The run of failures in progress, if any. */
  let failing: { since: number; failures: number; remindedAt: number } | undefined;

  const failed = (error: unknown) => {
    const at = now();
    if (failing === undefined) {
      failing = { since: at, failures: 1, remindedAt: at };
      logger.warn(
        { err: error, job: name, intervalMs },
        "background job failing; retrying each interval",
      );
      return;
    }
    failing.failures++;
    if (at - failing.remindedAt >= reminderMs) {
      failing.remindedAt = at;
      logger.warn(
        {
          err: error,
          job: name,
          failures: failing.failures,
          failingMs: Math.round(at - failing.since),
        },
        "background job still failing",
      );
    }
  };

  const succeeded = () => {
    if (failing === undefined) return;
    logger.info(
      { job: name, failures: failing.failures, failingMs: Math.round(now() - failing.since) },
      "background job recovered",
    );
    failing = undefined;
  };

  const runOnce = (): Promise<void> => {
    if (running) return running;
    running = (async () => {
      try {
        await task();
        succeeded();
      } catch (error) {
        failed(error);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  return {
    name,
    start() {
      timer ??= setInterval(() => void runOnce(), intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
    },
    runOnce,
  };
}
