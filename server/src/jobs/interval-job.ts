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

/**
 * Runs `task` every `intervalMs`, never overlapping itself. A failing run is
 * logged and the next one tries again: background jobs must never crash the
 * process. Each task opens its own EntityManager fork inside `task`.
 */
export function createIntervalJob(
  name: string,
  intervalMs: number,
  task: () => Promise<unknown>,
  logger: Logger,
): IntervalJob {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  const runOnce = (): Promise<void> => {
    if (running) return running;
    running = (async () => {
      try {
        await task();
      } catch (error) {
        logger.warn({ err: error, job: name }, "background job failed; retrying next interval");
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
