import type { Logger } from "../logger.js";
import type { OutboxRelay } from "../modules/events/index.js";
import { pruneRequestIds } from "../modules/idempotency/index.js";
import type { QueueService } from "../modules/queue/index.js";
import type { ReservationsService } from "../modules/reservations/index.js";
import type { Database } from "../persistence/database.js";
import { analyzeGrowingTables } from "../persistence/table-statistics.js";
import type { Clock } from "../shared/clock.js";
import { createIntervalJob, type IntervalJob } from "./interval-job.js";

/** How long request ids are kept for replays: at least the promised 24 hours. */
export const REQUEST_ID_RETENTION_MS = 48 * 3600_000;

/**
 * How often the request-id pruner runs. Each run deletes everything that is
 * due, batch by batch, so the interval only sets how far past the retention
 * window a claim may live.
 */
export const REQUEST_ID_PRUNE_INTERVAL_MS = 60_000;

/** What the background jobs need. */
export interface BackgroundJobDeps {
  readonly queue: QueueService;
  readonly reservations: ReservationsService;
  readonly db: Database;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Publishes the outbox; one relay at a time across instances (see OutboxRelay). */
  readonly relay: OutboxRelay;
  readonly relayIntervalMs: number;
}

/**
 * The server's background jobs. Every instance runs all of them, and none
 * needs a leader: the admitter's promotion is one atomic Redis script (FIFO
 * and the limit hold however many instances run it at once); the sweeper and
 * the pruner claim their rows with `FOR UPDATE SKIP LOCKED`, so two instances
 * never expire or delete the same row and never wait on each other; the
 * statistics keeper works under a transaction-scoped advisory lock that the
 * others skip. test/integration/jobs/jobs-on-many-instances.spec.ts runs
 * three instances' jobs at once.
 *
 * - the queue admitter promotes waiting users into free slots (every 250 ms,
 *   so a freed slot is filled well within a second; safe on every instance);
 * - the hold sweeper marks expired holds and frees their seats (tidying only:
 *   expired holds already count as free);
 * - the request-id pruner drops every claim past the retention window, in
 *   short batches until none is due (stopping early on shutdown);
 * - the statistics keeper analyses the tables a sale fills from empty as
 *   they grow, so cached plans never keep scanning them (see
 *   persistence/table-statistics.ts);
 * - the outbox relay publishes committed events to NATS and webhooks, on
 *   one instance at a time (a session advisory lock; the others' passes do
 *   nothing: the lock is taken per pass); whoever builds the services
 *   closes it after stopping the jobs (bootstrap does), closing NATS.
 */
export function createBackgroundJobs(deps: BackgroundJobDeps): IntervalJob[] {
  return [
    createIntervalJob("queue-admitter", 250, () => deps.queue.promoteAll(), deps.logger),
    createIntervalJob(
      "hold-sweeper",
      5_000,
      async () => {
        // Drain in batches so a burst of expiries never becomes one long transaction.
        while ((await deps.reservations.expireStaleHolds(500)) === 500) {}
      },
      deps.logger,
    ),
    stoppable((shouldStop) =>
      createIntervalJob(
        "request-id-pruner",
        REQUEST_ID_PRUNE_INTERVAL_MS,
        () =>
          pruneRequestIds(
            deps.db.fork(),
            new Date(deps.clock.now().getTime() - REQUEST_ID_RETENTION_MS),
            { shouldStop },
          ),
        deps.logger,
      ),
    ),
    createIntervalJob(
      "table-statistics",
      2_000,
      async () => {
        const analysed = await analyzeGrowingTables(deps.db);
        if (analysed.length > 0) deps.logger.debug({ tables: analysed }, "analysed grown tables");
      },
      deps.logger,
    ),
    createIntervalJob(
      "outbox-relay",
      deps.relayIntervalMs,
      () => deps.relay.runOnce(),
      deps.logger,
    ),
  ];
}

/**
 * A job whose task is told, between two steps, that `stop()` was called, so a
 * long run (a large prune backlog) ends after its current step instead of
 * holding shutdown up until it is done.
 */
function stoppable(make: (shouldStop: () => boolean) => IntervalJob): IntervalJob {
  let stopping = false;
  const job = make(() => stopping);
  return {
    name: job.name,
    start() {
      stopping = false;
      job.start();
    },
    async stop() {
      stopping = true;
      await job.stop();
    },
    runOnce: () => job.runOnce(),
  };
}
