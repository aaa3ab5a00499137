import cluster, { type Worker } from "node:cluster";
import type { Logger } from "./logger.js";

/*
 * WORKERS > 1: one primary process forks that many workers (node:cluster) and
 * serves nothing itself: no database, no Redis. Each worker runs the same
 * bootstrap as a single process and listens on the same HOST/PORT; cluster
 * shares the listening socket (on Linux the primary accepts connections and
 * hands them to the workers in turn). With PORT=0 the workers share one random
 * port, which the primary learns from their ready messages and logs.
 *
 * Every worker runs its own background jobs and start-up steps. That is safe
 * because none of them assumes it is alone:
 * - the queue admitter promotes with one Lua script, which Redis runs
 *   atomically, so concurrent admitters never admit past QUEUE_MAX_ACTIVE;
 * - the hold sweeper picks holds `FOR UPDATE SKIP LOCKED` and both of its
 *   updates are compare-and-set, so two sweepers never expire the same hold
 *   twice nor touch one that was paid or re-held meanwhile;
 * - the request-id pruner deletes past the retention window only; a row
 *   another worker deleted first is simply skipped;
 * - migrations run under an advisory lock, the demo seed under another, and
 *   the generated token secret is `insert … on conflict do nothing`, then read.
 * The watch hub's ticker is per process and serves that process' streams.
 */

/** How much longer than SHUTDOWN_TIMEOUT_MS a draining worker gets before it is killed. */
const KILL_MARGIN_MS = 5_000;
/** The first replacement waits this long; each further exit within the window doubles it. */
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 10_000;
const BACKOFF_WINDOW_MS = 60_000;
/** Workers dying before they serve, in a row, after which the primary gives up. */
const MAX_STARTUP_FAILURES = 3;

/** What a worker tells the primary once it serves. */
interface ReadyMessage {
  readonly stagedoor: "ready";
  readonly url: string;
}

function isReady(message: unknown): message is ReadyMessage {
  return (
    typeof message === "object" &&
    message !== null &&
    (message as Partial<ReadyMessage>).stagedoor === "ready" &&
    typeof (message as Partial<ReadyMessage>).url === "string"
  );
}

/** Called by a worker once bootstrap is done and it is listening. */
export function announceReady(url: string): void {
  const message: ReadyMessage = { stagedoor: "ready", url };
  process.send?.(message);
}

/** How the primary supervises its workers. */
export interface SupervisorOptions {
  readonly workers: number;
  readonly shutdownTimeoutMs: number;
  readonly logger: Logger;
  /** Extra fields for the "serving" line (never secrets). */
  readonly details: Readonly<Record<string, unknown>>;
}

/**
 * Runs the primary: forks the workers, replaces one that dies (with a
 * backoff; giving up when they keep dying before they serve), and on SIGTERM
 * or SIGINT asks every worker to drain, kills any that outlive the drain
 * timeout, and exits 0 once all are gone (1 if one had to be killed, failed to
 * stop cleanly, or the primary gave up).
 */
export function superviseWorkers(options: SupervisorOptions): void {
  const { logger, workers } = options;
  const live = new Map<number, Worker>();
  const ready = new Set<number>();
  const pendingForks = new Set<NodeJS.Timeout>();
  const recentExits: number[] = [];
  let startupFailures = 0;
  let url: string | undefined;
  let announced = false;
  let stopping = false;
  let exitCode = 0;

  const fork = () => {
    const worker = cluster.fork();
    live.set(worker.id, worker);
    worker.on("error", (error) => logger.error({ err: error, worker: worker.id }, "worker error"));
    worker.on("message", (message: unknown) => {
      if (!isReady(message)) return;
      ready.add(worker.id);
      startupFailures = 0;
      if (url !== undefined && message.url !== url) {
        logger.warn(
          { before: url, now: message.url },
          "the workers' address changed (with PORT=0 it does once every worker has stopped); set PORT",
        );
      }
      url = message.url;
      if (!announced && ready.size === workers) {
        announced = true;
        logger.info(
          { url, workers, ...options.details },
          `Stagedoor is serving on ${url} with ${workers} workers`,
        );
      }
    });
  };

  /** The delay before the next replacement: doubles with each exit in the window. */
  const backoff = () => {
    const now = Date.now();
    while (recentExits.length > 0 && now - (recentExits[0] ?? now) > BACKOFF_WINDOW_MS) {
      recentExits.shift();
    }
    recentExits.push(now);
    return Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (recentExits.length - 1));
  };

  const exitIfDone = () => {
    if (!stopping || live.size > 0) return;
    logger.info({ exitCode }, "stopped");
    process.exit(exitCode);
  };

  const stop = (reason: string, code: number) => {
    if (stopping) return;
    stopping = true;
    exitCode = Math.max(exitCode, code);
    for (const timer of pendingForks) clearTimeout(timer);
    pendingForks.clear();
    logger.info({ reason, workers: live.size }, "draining the workers");
    for (const worker of live.values()) worker.process.kill("SIGTERM");
    const limitMs = options.shutdownTimeoutMs + KILL_MARGIN_MS;
    setTimeout(() => {
      for (const worker of live.values()) {
        logger.error(
          { worker: worker.id, workerPid: worker.process.pid },
          `worker still running ${limitMs} ms after SIGTERM; killing it`,
        );
        worker.process.kill("SIGKILL");
        exitCode = 1;
      }
    }, limitMs);
    exitIfDone();
  };

  cluster.on("exit", (worker, code, signal) => {
    live.delete(worker.id);
    const served = ready.delete(worker.id);
    const how = { worker: worker.id, workerPid: worker.process.pid, code, signal };
    if (stopping) {
      // A worker the signal caught mid-start-up had nothing to drain yet.
      if (code !== 0 && signal !== "SIGTERM" && signal !== "SIGINT") {
        logger.error(how, "worker did not stop cleanly");
        exitCode = 1;
      }
      exitIfDone();
      return;
    }
    if (!served && ++startupFailures >= MAX_STARTUP_FAILURES) {
      logger.fatal(
        how,
        `workers keep dying before they serve (${startupFailures} in a row); giving up: see the workers' errors above`,
      );
      stop("workers failing at start-up", 1);
      return;
    }
    const delayMs = backoff();
    logger.error(
      { ...how, restartInMs: delayMs },
      served ? "worker exited; replacing it" : "worker died during start-up; retrying",
    );
    const timer = setTimeout(() => {
      pendingForks.delete(timer);
      fork();
    }, delayMs);
    pendingForks.add(timer);
  });

  process.on("SIGTERM", () => stop("SIGTERM", 0));
  process.on("SIGINT", () => stop("SIGINT", 0));
  for (let i = 0; i < workers; i++) fork();
}
