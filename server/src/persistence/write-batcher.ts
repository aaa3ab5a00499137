import type { EntityManager } from "@mikro-orm/postgresql";
import { DomainError } from "../shared/domain-error.js";
import { serverBusy } from "../shared/transient-errors.js";
import { type Database, transaction } from "./database.js";

/** Runs `work` in a transaction of its own: {@link transaction} on the server's database. */
export type TransactionRunner = <T>(work: (em: EntityManager) => Promise<T>) => Promise<T>;

/**
 * Takes back, in the batch's transaction, what a write refused by a domain
 * rule wrote before it was refused (its request-id claim), so the batch can
 * commit the others. What it leaves must be something the write could have
 * committed on its own: nothing, or a change that stands by itself (a hold
 * that expires a caller's hold already past its time keeps that expiry).
 */
export type TakeBack = (em: EntityManager) => Promise<void>;

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
 * The largest batch: its writes hold their row locks until the batch
 * commits, and one round trip carries a statement of each of them.
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
  /**
   * Batches rolled back because one of their writes failed, or was refused
   * and could not take its writes back (their other writes ran again); many
   * of them mean failures are costing throughput.
   */
  readonly undone: number;
  /**
   * Refused writes that took back their claim inside a batch that then
   * committed the others (see {@link TakeBack}).
   */
  readonly takenBack: number;
}

/** One write waiting for, or riding in, a batch. */
interface Unit {
  readonly key: string;
  /** When it started waiting (the batcher's clock, ms). */
  readonly since: number;
  readonly work: (em: EntityManager) => Promise<unknown>;
  readonly takeBack: TakeBack | undefined;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/**
 * Group commit for the idempotent writes of a rush (holds; recharges and
 * payments, in a batcher of their own): writes that arrive while `lanes`
 * transactions are already open wait, and the next lane to free up runs up
 * to `maxBatch` of them, at most one per key, in one MikroORM transaction
 * (`em.begin`, the writes, `em.commit`). A write that finds a lane free runs
 * at once, alone: at low load nothing waits. A key (a user) has at most one
 * write running at a time, whatever the lanes: the next one waits until the
 * first has its outcome, so it sees it committed (a replay), and two holds of
 * one fan never race each other into the one-hold-per-user index from two
 * lanes, where the loser's whole batch would roll back while its seat lock
 * had turned others away.
 *
 * The writes of a batch run side by side on the transaction's connection,
 * and the statements they ask for in the same tick share one round trip (see
 * `TxConnection`): a batch of recharges and payments costs BEGIN, one round
 * trip for all their claims and locks, one for all their writes, and COMMIT,
 * whatever its size. The transaction's fixed costs (knex's set-up, BEGIN and
 * COMMIT with its WAL flush, PostgreSQL's per-transaction work) and the round
 * trips, which are most of a short write's CPU, are then paid once per batch.
 *
 * What stays as it is, write by write:
 * - each write takes its own locks with `SELECT … FOR UPDATE` inside the
 *   batch's transaction and keeps them until the batch commits; it reads only
 *   its own rows, and no two writes of a batch share a key (a user), so none
 *   sees another's changes before they commit;
 * - a write refused by a domain rule (a `DomainError`, decided from the rows
 *   it had locked) gets its refusal, as it would have alone. When it came
 *   with a {@link TakeBack}, that runs in the batch's transaction (the
 *   refused writes' take-backs share one round trip) and the batch commits
 *   the others;
 * - otherwise a batch commits only if every write in it succeeded, and is
 *   rolled back whole: a refusal stands; the writes that succeeded go back
 *   to the front of the line for the next batch; a write that failed
 *   otherwise (an SQL error, which also stops the statements sent after it in
 *   the same round trip) runs again alone and gets that run's outcome;
 * - a write's result is handed out only after the batch's COMMIT succeeded.
 *   If the COMMIT fails, every write runs again alone in a transaction of its
 *   own. That is safe only for writes that claim a request id first (see
 *   `claimAndLock` in modules/idempotency): if the COMMIT did land after all,
 *   the write finds its claim and replays.
 *
 * Lock order: a batch starts its writes in `key` order (the caller's user
 * id). A recharge and a payment each await only their connection before
 * asking for their claim, so the claims with the row locks go out in that
 * order, in one round trip, and two batches take different users' rows in
 * the same order;
 * within a write the order is the write's own (claim, reservation, seat,
 * wallet). A hold locks its seat with `SKIP LOCKED`, which never waits;
 * within a batch, two holds that lock the same seat do not both get it (see
 * `TxConnection.firstToLock`). A cycle can then only come from a write that
 * names another user's rows, or from a batch of holds that keeps one seat's
 * lock while another of its holds waits for its caller's reservation, locked
 * by a payment batch that waits for that seat (a fan holding and paying at
 * once); PostgreSQL breaks it (deadlock_timeout, then an error), and the
 * writes of the failed batch run again as above.
 *
 * Writes must not leave changes in the unit of work (they write with their
 * own statements, see persistence/sql.ts); a batch that fails is rolled back
 * whole, so nothing of it is flushed.
 */
export class WriteBatcher {
  private readonly waiting = new Line();
  private open = 0;
  private writes = 0;
  private transactions = 0;
  private refused = 0;
  private undone = 0;
  private takenBack = 0;
  /** The keys of the writes running now, in a batch or again alone: their next writes wait. */
  private readonly running = new Set<string>();

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

  /** A batcher that runs every write alone, in a {@link transaction} of its own (no group commit). */
  static alone(db: Database): WriteBatcher {
    return WriteBatcher.over(db, { lanes: 1, maxBatch: 1, maxWaitMs: Number.POSITIVE_INFINITY });
  }

  /**
   * Runs `work` in a transaction, alone or batched with others; `key` orders
   * it within a batch (the user id). Resolves with its result once committed.
   * With `takeBack`, a refusal of `work` (a `DomainError`) does not cost the
   * batch's other writes their run (see {@link TakeBack}).
   */
  run<T>(key: string, work: (em: EntityManager) => Promise<T>, takeBack?: TakeBack): Promise<T> {
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
        takeBack,
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
    const { writes, transactions, refused, undone, takenBack } = this;
    return { ...this.load, writes, transactions, refused, undone, takenBack };
  }

  /** Starts a batch on every free lane while writes are waiting. */
  private pump(): void {
    this.refuseStale();
    while (this.open < this.settings.lanes && this.waiting.length > 0) {
      const batch = this.take();
      // Every write waiting is of a key that is running now.
      if (batch.length === 0) return;
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
   * Takes the next batch off the line: up to `maxBatch` writes, oldest
   * first, at most one per key and none of a key running now (a second write
   * of the same user waits until the first has its outcome, so it sees it,
   * as a replay must), sorted by key. Empty when every write waiting is of a
   * key running now.
   */
  private take(): Unit[] {
    const batch: Unit[] = [];
    const passed: Unit[] = [];
    const keys = new Set<string>();
    // Looked at only until the batch is full: a long line (a rush the
    // database is behind on) costs a batch its first writes, not a pass over
    // every write waiting.
    let looked = 0;
    for (; looked < this.waiting.length && batch.length < this.settings.maxBatch; looked++) {
      const unit = this.waiting.at(looked);
      if (!keys.has(unit.key) && !this.running.has(unit.key)) {
        keys.add(unit.key);
        batch.push(unit);
      } else {
        passed.push(unit);
      }
    }
    this.waiting.drop(looked);
    this.waiting.putBack(passed);
    for (const key of keys) this.running.add(key);
    return batch.sort(byKey);
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
    while (stale < this.waiting.length && this.waiting.at(stale).since < oldest) stale++;
    this.refused += stale;
    for (let i = 0; i < stale; i++) this.waiting.at(i).reject(serverBusy());
    this.waiting.drop(stale);
  }

  private async runBatch(batch: readonly Unit[], release: () => void): Promise<void> {
    const [only] = batch;
    if (batch.length === 1 && only !== undefined) {
      const outcome = await settle(this.runTransaction(only.work));
      this.finished(batch);
      release();
      tell(only, outcome);
      return;
    }
    /** Each write's outcome in the batch's transaction, once all of them ran. */
    const ran: { outcomes?: Outcome[]; takenBack?: number } = {};
    try {
      await this.runTransaction(async (em) => {
        // Side by side: the statements each write asks for in the same tick
        // go out in one round trip (see TxConnection), in key order.
        const outcomes = await Promise.all(batch.map((unit) => settle(unit.work(em))));
        ran.outcomes = outcomes;
        const refused = batch.filter((unit, i) => canTakeBack(unit, outcomes[i] as Outcome));
        if (outcomes.filter((outcome) => !outcome.ok).length > refused.length) throw UNDONE;
        // The refused writes take back their claims side by side (one round
        // trip); if one cannot, the batch is rolled back as for a failure.
        const taken = await Promise.all(
          refused.map((unit) => settle((unit.takeBack as TakeBack)(em))),
        );
        if (taken.some((outcome) => !outcome.ok)) throw UNDONE;
        ran.takenBack = refused.length;
      });
    } catch (error) {
      release();
      const { outcomes } = ran;
      if (error !== UNDONE || outcomes === undefined) {
        // BEGIN or COMMIT failed (whether a COMMIT landed is unknown): each
        // write again alone, where its claim replays a COMMIT that did land.
        await this.alone(batch);
        return;
      }
      this.undone += 1;
      const retry: Unit[] = [];
      const again: Unit[] = [];
      const refusals: [Unit, Outcome][] = [];
      outcomes.forEach((outcome, i) => {
        const unit = batch[i] as Unit;
        if (outcome.ok) retry.push(unit);
        else if (outcome.error instanceof DomainError) refusals.push([unit, outcome]);
        else again.push(unit);
      });
      // A refusal stands: it was decided from the write's own locked rows.
      this.finished([...retry, ...refusals.map(([unit]) => unit)]);
      for (const [unit, outcome] of refusals) tell(unit, outcome);
      // The writes that succeeded were undone with the rest: back to the
      // front of the line, for the next batch.
      this.waiting.putBack(retry);
      this.pump();
      await this.alone(again);
      return;
    }
    this.finished(batch);
    release();
    this.takenBack += ran.takenBack ?? 0;
    for (const [i, outcome] of ran.outcomes?.entries() ?? []) tell(batch[i] as Unit, outcome);
  }

  /**
   * Runs each write again in a transaction of its own; each gets that run's
   * outcome. Their keys stay running until then.
   */
  private async alone(units: readonly Unit[]): Promise<void> {
    this.transactions += units.length;
    await Promise.all(
      units.map(async (unit) => {
        const outcome = await settle(this.runTransaction(unit.work));
        this.finished([unit]);
        tell(unit, outcome);
      }),
    );
    this.pump();
  }

  /** The writes of `units` are over or back in line: the next writes of their keys may run. */
  private finished(units: readonly Unit[]): void {
    for (const unit of units) this.running.delete(unit.key);
  }
}

/** True when `unit` was refused by a domain rule and can take back what it wrote. */
function canTakeBack(unit: Unit, outcome: Outcome): boolean {
  return !outcome.ok && outcome.error instanceof DomainError && unit.takeBack !== undefined;
}

/** The figures of several batchers, added up (the metrics report them as one). */
export function sumFigures(all: readonly WriteBatchFigures[]): WriteBatchFigures {
  const sum = (pick: (figures: WriteBatchFigures) => number) =>
    all.reduce((total, figures) => total + pick(figures), 0);
  return {
    waiting: sum((f) => f.waiting),
    open: sum((f) => f.open),
    writes: sum((f) => f.writes),
    transactions: sum((f) => f.transactions),
    refused: sum((f) => f.refused),
    undone: sum((f) => f.undone),
    takenBack: sum((f) => f.takenBack),
  };
}

/** Thrown inside a batch's transaction to roll it back when one of its writes failed. */
const UNDONE = new Error("a write of the batch failed: the batch is rolled back");

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

/**
 * The writes waiting for a lane, oldest first. Taken from the front without
 * moving the rest (an array's `splice` or `shift` would move every write
 * behind, per batch); the taken slots are let go once they are half the
 * array.
 */
class Line {
  private units: Unit[] = [];
  private head = 0;

  get length(): number {
    return this.units.length - this.head;
  }

  push(unit: Unit): void {
    this.units.push(unit);
  }

  /** The write `index` places from the front (which must exist). */
  at(index: number): Unit {
    return this.units[this.head + index] as Unit;
  }

  /** Takes the first `count` writes off the line (at most all of them). */
  drop(count: number): void {
    this.head += Math.min(count, this.length);
    if (this.head > 1024 && this.head * 2 > this.units.length) {
      this.units = this.units.slice(this.head);
      this.head = 0;
    }
  }

  /** Puts writes back at the front, in their order, ahead of every write waiting. */
  putBack(units: readonly Unit[]): void {
    if (units.length === 0) return;
    if (units.length <= this.head) {
      this.head -= units.length;
      for (let i = 0; i < units.length; i++) this.units[this.head + i] = units[i] as Unit;
    } else {
      this.units = units.concat(this.units.slice(this.head));
      this.head = 0;
    }
  }
}
