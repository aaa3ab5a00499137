import type { EntityManager } from "@mikro-orm/postgresql";
import type pg from "pg";
import { type PipelinedStatement, preparedOn, StatementPipeline } from "./statement-pipeline.js";

/**
 * One SQL statement of a hot path, sent as a named prepared statement: each
 * pooled connection has PostgreSQL parse and plan it once, and every later
 * execution sends only its parameters (real bind parameters, never values
 * inlined into the text). `Row` is the shape of a result row as `pg` returns
 * it with MikroORM's type settings: `bigint` columns arrive as strings and
 * `timestamptz` columns as strings too, so statements select times as epoch
 * milliseconds (`float8`) instead.
 */
export interface Statement<Row> {
  readonly name: string;
  readonly text: string;
  /** Never set; carries the row type. */
  readonly row?: Row;
}

/** Declares a statement once, at module load, under a name unique in the server. */
export function statement<Row>(name: string, text: string): Statement<Row> {
  if (declared.has(name)) throw new Error(`two SQL statements are named ${name}`);
  declared.add(name);
  return { name, text };
}

const declared = new Set<string>();

/**
 * The connection of the transaction an EntityManager runs in, for the
 * statements of the hot paths (holds, recharges, payments).
 *
 * The transaction itself stays MikroORM's: `em.transactional` opens it,
 * commits it, and rolls it back on any error. Its statements go straight to
 * the transaction's `pg` connection as prepared statements instead of through
 * the query builder and the unit of work's flush, which measured about 0.25 ms
 * of CPU per `findOne` and as much again per flushed change on this stack
 * against a few microseconds here. Failures are converted by MikroORM's own
 * exception converter, so callers see the same exception classes (for example
 * `UniqueConstraintViolationException`) as from any other ORM call.
 *
 * Statements asked for in the same tick on the same connection (the writes
 * of one group-commit batch run side by side, see `WriteBatcher`) are sent
 * together, in the order they were asked for, in one round trip (see
 * {@link StatementPipeline}); a statement asked for alone is sent alone, as
 * `client.query` sends it.
 */
export class TxConnection {
  /** Where this connection's statements wait to be sent (one per pooled connection). */
  private readonly outbox: Outbox;

  private constructor(
    connection: pg.ClientBase,
    private readonly em: EntityManager,
    private readonly transaction: object,
  ) {
    this.outbox = outboxOf(connection);
  }

  /** The connection of `em`'s open transaction; throws outside `em.transactional`. */
  static async of(em: EntityManager): Promise<TxConnection> {
    const trx = em.getTransactionContext<{ client: { acquireConnection(): Promise<unknown> } }>();
    if (trx === undefined) throw new Error("TxConnection needs an open transaction");
    // A knex transaction's client hands out the one connection the
    // transaction runs on (and never releases it to the pool early).
    const connection = (await trx.client.acquireConnection()) as pg.ClientBase;
    return new TxConnection(connection, em, trx);
  }

  /**
   * Whether this is the first write of the transaction to take the row lock
   * named `lock` (say `seat:<id>`); later asks for the same name are false.
   * The writes of a group-commit batch share one transaction, and
   * PostgreSQL's `SKIP LOCKED` skips only other transactions' locks: a write
   * that locked a row with it and is not the first of its batch to do so
   * must treat the row as locked by someone else, as it would be alone.
   */
  firstToLock(lock: string): boolean {
    let taken = locksTaken.get(this.transaction);
    if (taken === undefined) {
      taken = new Set();
      locksTaken.set(this.transaction, taken);
    }
    if (taken.has(lock)) return false;
    taken.add(lock);
    return true;
  }

  /** Runs a statement and returns its rows. */
  async all<Row>(statement: Statement<Row>, values: readonly unknown[]): Promise<Row[]> {
    try {
      return (await this.outbox.send(statement, values)) as Row[];
    } catch (error) {
      throw this.em.getDriver().convertException(error as Error);
    }
  }

  /** Runs a statement and returns its first row, if any. */
  async one<Row>(statement: Statement<Row>, values: readonly unknown[]): Promise<Row | undefined> {
    const rows = await this.all(statement, values);
    return rows[0];
  }
}

/**
 * The statements asked for on one connection and not yet sent. They go out
 * together once the current tick's promise jobs have run (`process.nextTick`
 * queued from a promise job runs after all of them), so writes that run side
 * by side share the round trip; while a round trip is in flight, new ones
 * wait for it and go out together after it. The connection is never asked
 * two things at once.
 */
class Outbox {
  private pending: PipelinedStatement[] = [];
  private scheduled = false;
  private busy = false;

  constructor(private readonly client: pg.ClientBase) {}

  send(statement: Statement<unknown>, values: readonly unknown[]): Promise<unknown[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ name: statement.name, text: statement.text, values, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.busy || this.pending.length === 0) return;
    this.scheduled = true;
    process.nextTick(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const statements = this.pending;
    this.pending = [];
    this.busy = true;
    void this.roundTrips(statements).finally(() => {
      this.busy = false;
      this.schedule();
    });
  }

  /** Sends `statements`; settles once every one of them has its answer. */
  private roundTrips(statements: readonly PipelinedStatement[]): Promise<void> {
    if (statements.length > 1 && preparedOn(this.client, statements)) {
      return new Promise((settled) => {
        try {
          StatementPipeline.run(this.client, statements, settled);
        } catch (error) {
          for (const statement of statements) statement.reject(error);
          settled();
        }
      });
    }
    return this.oneByOne(statements);
  }

  /**
   * Alone, or not yet prepared on this connection: one round trip each, one
   * after the other (`pg` parses each statement the first time).
   */
  private async oneByOne(statements: readonly PipelinedStatement[]): Promise<void> {
    for (const { name, text, values, resolve, reject } of statements) {
      try {
        resolve((await this.client.query({ name, text, values: values as unknown[] })).rows);
      } catch (error) {
        reject(error);
      }
    }
  }
}

/** The row locks each open transaction's writes asked for ({@link TxConnection.firstToLock}). */
const locksTaken = new WeakMap<object, Set<string>>();

const outboxes = new WeakMap<pg.ClientBase, Outbox>();

/** The {@link Outbox} of a pooled connection, made the first time a transaction uses it. */
function outboxOf(client: pg.ClientBase): Outbox {
  let found = outboxes.get(client);
  if (found === undefined) {
    found = new Outbox(client);
    outboxes.set(client, found);
  }
  return found;
}
