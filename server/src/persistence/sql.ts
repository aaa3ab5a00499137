import type { EntityManager } from "@mikro-orm/postgresql";
import type pg from "pg";

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
 */
export class TxConnection {
  private constructor(
    private readonly connection: pg.ClientBase,
    private readonly em: EntityManager,
  ) {}

  /** The connection of `em`'s open transaction; throws outside `em.transactional`. */
  static async of(em: EntityManager): Promise<TxConnection> {
    const trx = em.getTransactionContext<{ client: { acquireConnection(): Promise<unknown> } }>();
    if (trx === undefined) throw new Error("TxConnection needs an open transaction");
    // A knex transaction's client hands out the one connection the
    // transaction runs on (and never releases it to the pool early).
    const connection = (await trx.client.acquireConnection()) as pg.ClientBase;
    return new TxConnection(connection, em);
  }

  /** Runs a statement and returns its rows. */
  async all<Row>(statement: Statement<Row>, values: readonly unknown[]): Promise<Row[]> {
    try {
      const result = await this.connection.query<Row & pg.QueryResultRow>({
        name: statement.name,
        text: statement.text,
        values: values as unknown[],
      });
      return result.rows;
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
