import { type Database, transaction } from "./database.js";

/**
 * The tables a sale fills from empty, fast: a new deployment may open a sale
 * with no wallets, reservations, payments, ledger entries or request-id
 * claims at all.
 */
export const GROWING_TABLES = [
  "wallet",
  "ledger_entry",
  "payment",
  "reservation",
  "idempotency_key",
] as const;

/**
 * Below this many analysed rows a table counts as small: plans made while it
 * is this small may scan it, and those plans go stale as it grows. Above it,
 * PostgreSQL's own autovacuum keeps statistics good enough.
 */
export const SMALL_TABLE_ROWS = 10_000;

/** A table is analysed again once it has this many times the rows of its last analysis. */
const GROWTH_FACTOR = 2;

/** Fewer rows than this never need a fresh analysis, whatever their growth. */
const MIN_ROWS = 64;

/** Keeps two instances from analysing the same tables at once. */
const ANALYZE_LOCK_KEY = 7_342_003;

/**
 * Re-analyses tables that have grown a lot since PostgreSQL last analysed
 * them while they were small, and returns their names.
 *
 * Why: every pooled connection caches the plans of its prepared statements
 * and of the foreign-key checks, and a plan made when a table held a few
 * rows scans the whole table. Autovacuum analyses it again only a minute or
 * so later, and a sale that opens on empty tables grows them by thousands of
 * rows in that time, each lookup reading every row (measured: half of
 * PostgreSQL's CPU in the pay phase of the rush benchmark). ANALYZE updates
 * the statistics and invalidates those plans in every backend, so they are
 * planned again with index scans. Growth by a factor keeps the analyses
 * logarithmic in the table's size, and tables past {@link SMALL_TABLE_ROWS}
 * are left to autovacuum. Under an advisory lock, so among many instances
 * one does the work.
 */
export async function analyzeGrowingTables(db: Database): Promise<string[]> {
  // One transaction, so the lock and the statements share one connection.
  return transaction(db, async (tx) => {
    const [locked] = await tx.execute<{ locked: boolean }[]>(
      "select pg_try_advisory_xact_lock(?) as locked",
      [ANALYZE_LOCK_KEY],
    );
    if (!locked?.locked) return [];
    const rows = await tx.execute<{ relname: string }[]>(
      `select c.relname
         from pg_class c join pg_stat_user_tables s on s.relid = c.oid
        where c.relname in (?)
          and c.reltuples < ?
          and s.n_live_tup >= greatest(?, ? * greatest(c.reltuples, 0))`,
      [[...GROWING_TABLES], SMALL_TABLE_ROWS, MIN_ROWS, GROWTH_FACTOR],
    );
    const grown = rows.map((row) => row.relname);
    for (const table of grown) {
      // The name comes from the fixed list above, never from input.
      await tx.execute(`analyze ${table}`);
    }
    return grown;
  });
}
