import type { EntityManager } from "@mikro-orm/postgresql";
import { serverBusy } from "../shared/transient-errors.js";
import { type Database, transaction } from "./database.js";
import { statement, TxConnection } from "./sql.js";

/** Runs `work` in a transaction of its own: {@link transaction} on the server's database. */
export type TransactionRunner = <T>(work: (em: EntityManager) => Promise<T>) => Promise<T>;

/** How a {@link WriteBatcher} groups writes, from configuration. */
export interface WriteBatchSettings {
  /** How many batch transactions may be open at once in this process (at least 1). */
  readonly lanes: number;
  /** The most writes one transaction carries; 1 turns batching off. At most {@link MAX_WRITE_BATCH}. */
  readonly maxBatch: number;
  /**
   * How long a write may wait for a lane; one that waited longer is refused
   * as `SERVER_BUSY` without running, as a request that waits too long for a
   * pooled connection is (POOL_ACQUIRE_TIMEOUT_MS).
   */
  readonly maxWaitMs: number;
}

/**
 * The largest batch: every write of a batch runs under a savepoint of its own,
 * and PostgreSQL keeps up to 64 subtransactions per transaction in shared
 * memory before every other session's visibility checks slow down.
 */
export const MAX_WRITE_BATCH = 32;

/** What a {@link WriteBatcher} is doing now, and has done since it started. */
export interface WriteBatchFigures {
  /** Writes waiting for a lane now. */
  readonly waiting: number;
  /** Their transactions open now (lanes in use). */
  readonly open: number;
  /** Writes run so far (refused ones included). */
  readonly writes: number;
  /** Transactions they ran in so far: writes ÷ transactions is the mean batch. */
  readonly transactions: number;
  /** Writes refused as `SERVER_BUSY` after waiting longer than `maxWaitMs`. */
  readonly refused: number;
}

/** One write waiting for, or riding in, a batch. */
interface Unit {
  readonly key: string;
  /** When it started waiting (the batcher's clock, ms). */
  readonly since: number;
  readonly work: (em: EntityManager) => Promise<unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/**
 * A write's savepoint. Every write of a batch takes one before its first
 * statement (one round trip), so a write that fails is undone alone: its
 * claim, its locks and anything it wrote are rolled back to it, and the
 * others commit. The name is reused: a new savepoint hides the older ones of
 * the same name, and ROLLBACK TO undoes only back to the newest.
 */
const SAVEPOINT = statement<never>("write_batch_savepoint", "savepoint write_batch_unit");
const ROLLBACK_TO_SAVEPOINT = statement<never>(
  "write_batch_rollback_to_savepoint",
  "rollback to savepoint write_batch_unit",
);

/**
 * Group commit for the idempotent writes of the money path (recharges and
 * payments): writes that arrive while `lanes` transactions are already open
 * wait, and the next lane to free up runs up to `maxBatch` of them in one
 * MikroORM transaction (`em.begin`, each write's statements, `em.commit`).
 * The transaction's fixed costs, which are most of a short write's CPU
 * (knex's transaction set-up, BEGIN and COMMIT with its WAL flush, and
 * PostgreSQL's per-transaction work), are then paid once per batch instead of
 * once per write. A write that finds a lane free runs at once, alone: at low
 * load nothing waits.
 *
 * What stays as it is, write by write:
 * - each write takes its own locks with `SELECT … FOR UPDATE` inside the
 *   batch's transaction and keeps them until the batch commits; nothing is
 *   shared between writes but the transaction;
 * - a write that throws (a refusal, a lock timeout, any SQL error) is rolled
 *   back to its savepoint and gets its own error at once; the others go on;
 * - a write's result is handed out only after the batch's COMMIT succeeded.
 *   If the COMMIT fails, every write still waiting for it runs again alone in
 *   a transaction of its own. That is safe only for writes that claim a
 *   request id first (see `claimAndLock` in modules/idempotency): if the
 *   COMMIT did land after all, the write finds its claim and replays.
 *
 * Lock order: a batch runs its writes in `key` order (the caller's user id),
 * so two batches take different users' rows in the same order, and within a
 * write the order is the write's own (claim, reservation, seat, wallet). A
 * cycle can then only come from a write that names another user's rows;
 * PostgreSQL breaks it (deadlock_timeout, then an error for one write), and
 * that write fails alone.
 *
 * Writes must not leave changes in the unit of work (they write with their
 * own statements, see persistence/sql.ts): the batch's EntityManager is
 * cleared after a write fails, so nothing of it is flushed.
 */
export class WriteBatcher {
  private readonly waiting: Unit[] = [];
  private open = 0;
  private writes = 0;
  private transactions = 0;
  private refused = 0;

  constructor(
    private readonly runTransaction: TransactionRunner,
    private readonly settings: WriteBatchSettings,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    if (!Number.isSafeInteger(settings.lanes) || settings.lanes < 1) {
      throw new RangeError("a write batcher needs at least one lane");
    }
    if (
      !Number.isSafeInteger(settings.maxBatch) ||
      settings.maxBatch < 1 ||
      settings.maxBatch > MAX_WRITE_BATCH
    ) {
      throw new RangeError(`a write batch carries 1 to ${MAX_WRITE_BATCH} writes`);
    }
  }

  /** A batcher over the server's database (each batch is one {@link transaction}). */
  static over(db: Database, settings: WriteBatchSettings): WriteBatcher {
    return new WriteBatcher((work) => transaction(db, work), settings);
  }

  /**
   * Runs `work` in a transaction, alone or batched with others; `key` orders
   * it within a batch (the user id). Resolves with its result once committed.
   */
  run<T>(key: string, work: (em: EntityManager) => Promise<T>): Promise<T> {
    this.writes += 1;
    if (this.settings.maxBatch === 1) {
      this.transactions += 1;
      return this.runTransaction(work);
    }
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({
        key,
        since: this.now(),
        work,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      this.pump();
    });
  }

  /** Writes waiting for a lane, and batch transactions open now. */
  get load(): { waiting: number; open: number } {
    return { waiting: this.waiting.length, open: this.open };
  }

  /** {@link load} and the counts since start, for the metrics. */
  get figures(): WriteBatchFigures {
    const { writes, transactions, refused } = this;
    return { ...this.load, writes, transactions, refused };
  }

  /** Starts a batch on every free lane while writes are waiting. */
  private pump(): void {
    this.refuseStale();
    while (this.open < this.settings.lanes && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.settings.maxBatch).sort(byKey);
      this.open += 1;
      this.transactions += 1;
      let released = false;
      // Frees the lane (once) before the batch's writes are told their outcome.
      const release = () => {
        if (released) return;
        released = true;
        this.open -= 1;
        this.pump();
      };
      void this.runBatch(batch, release).finally(release);
    }
  }

  /**
   * Refuses, without running them, the writes that waited longer than
   * `maxWaitMs` (the oldest are first in line): under a load the database
   * cannot keep up with, they fail fast instead of running long after their
   * callers gave up.
   */
  private refuseStale(): void {
    const oldest = this.now() - this.settings.maxWaitMs;
    let stale = 0;
    while (stale < this.waiting.length && (this.waiting[stale]?.since ?? oldest) < oldest) stale++;
    this.refused += stale;
    for (const unit of this.waiting.splice(0, stale)) unit.reject(serverBusy());
  }

  private async runBatch(batch: readonly Unit[], release: () => void): Promise<void> {
    const [only] = batch;
    if (batch.length === 1 && only !== undefined) {
      const outcome = await settle(this.runTransaction(only.work));
      release();
      tell(only, outcome);
      return;
    }
    /** Writes that failed on their own, rolled back to their savepoint and told so. */
    const failed = new Set<Unit>();
    /** Results of the writes that succeeded, handed out once the batch commits. */
    const results = new Map<Unit, unknown>();
    try {
      await this.runTransaction(async (em) => {
        const tx = await TxConnection.of(em);
        for (const unit of batch) {
          await tx.all(SAVEPOINT, []);
          try {
            results.set(unit, await unit.work(em));
          } catch (error) {
            // Undo this write alone; if even that fails, so does the batch (below).
            await tx.all(ROLLBACK_TO_SAVEPOINT, []);
            em.clear();
            failed.add(unit);
            unit.reject(error);
          }
        }
      });
    } catch {
      // The batch did not commit, or its COMMIT's outcome is unknown: every
      // write that had not failed on its own runs again alone, off the lane.
      // Its claim makes that a replay if the COMMIT landed after all.
      release();
      const again = batch.filter((unit) => !failed.has(unit));
      this.transactions += again.length;
      await Promise.all(
        again.map(async (unit) => tell(unit, await settle(this.runTransaction(unit.work)))),
      );
      return;
    }
    release();
    for (const [unit, value] of results) unit.resolve(value);
  }
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

function settle(promise: Promise<unknown>): Promise<Outcome> {
  return promise.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  );
}

function tell(unit: Unit, outcome: Outcome): void {
  if (outcome.ok) unit.resolve(outcome.value);
  else unit.reject(outcome.error);
}

function byKey(a: Unit, b: Unit): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}
