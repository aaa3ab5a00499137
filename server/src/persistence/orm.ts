import { FlushMode, type Options } from "@mikro-orm/core";
import { Migrator } from "@mikro-orm/migrations";
import { MikroORM, PostgreSqlDriver } from "@mikro-orm/postgresql";
import pg from "pg";
import { Migration20261126000000 } from "./migrations/Migration20261126000000.js";
import { Migration20261207000000 } from "./migrations/Migration20261207000000.js";
import { Migration20261207010000 } from "./migrations/Migration20261207010000.js";
import { Migration20261207030000 } from "./migrations/Migration20261207030000.js";
import { Migration20261207031500 } from "./migrations/Migration20261207031500.js";
import { Migration20261207040000 } from "./migrations/Migration20261207040000.js";

/** The ORM instance type the server uses. */
export type Orm = MikroORM;

/** What {@link openOrm} needs. */
export interface OrmOptions {
  readonly url: string;
  readonly entities: NonNullable<Options["entities"]>;
  /** Pool size; small on purpose: extra requests queue in Node, not in PostgreSQL. */
  readonly poolMax: number;
  /** Log SQL at debug level. */
  readonly debug?: boolean;
  /** How its connections show in `pg_stat_activity`; "stagedoor" by default. */
  readonly applicationName?: string;
}

/** Every migration, in order. Listed explicitly so nothing is discovered from disk at runtime. */
export const migrations = [
  { name: "Migration20261126000000", class: Migration20261126000000 },
  { name: "Migration20261207000000", class: Migration20261207000000 },
  { name: "Migration20261207010000", class: Migration20261207010000 },
  { name: "Migration20261207030000", class: Migration20261207030000 },
  { name: "Migration20261207031500", class: Migration20261207031500 },
  { name: "Migration20261207040000", class: Migration20261207040000 },
];

/**
 * How long a request may wait for a pooled connection before it is refused
 * as `SERVER_BUSY` (and, by the same rule, for a transaction to share: see
 * write-batcher.ts).
 */
export const POOL_ACQUIRE_TIMEOUT_MS = 10_000;

/**
 * Connects MikroORM to PostgreSQL. There is no global EntityManager: every
 * request and job must `orm.em.fork()`, which `allowGlobalContext: false`
 * enforces.
 */
export async function openOrm(options: OrmOptions): Promise<Orm> {
  return MikroORM.init({
    driver: PostgreSqlDriver,
    clientUrl: options.url,
    entities: [...options.entities],
    allowGlobalContext: false,
    // Changes are written when a use case's transaction commits, never as a
    // side effect of a query: every use case flushes once, and no query pays
    // for a change-set scan first.
    flushMode: FlushMode.COMMIT,
    forceUtcTimezone: true,
    debug: options.debug ?? false,
    // Entities are loaded whole; nothing is lazily fetched behind our back.
    populateWhere: "infer",
    extensions: [Migrator],
    migrations: {
      migrationsList: migrations,
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      silent: true,
    },
    pool: { min: 0, max: options.poolMax, acquireTimeoutMillis: POOL_ACQUIRE_TIMEOUT_MS },
    driverOptions: {
      connection: {
        application_name: options.applicationName ?? "stagedoor",
        // A stuck statement or lock wait fails the request instead of piling up.
        statement_timeout: 15_000,
        lock_timeout: 5_000,
        idle_in_transaction_session_timeout: 30_000,
      },
    },
  });
}

/** The advisory lock that serialises migrations across instances. */
const MIGRATION_LOCK_KEY = 7_342_001;

/**
 * Applies every pending migration. Idempotent, and safe when several
 * instances start at once: one migrates while the others wait on an advisory
 * lock held on a connection of its own, then find nothing left to do.
 */
export async function migrateUp(orm: Orm, url: string): Promise<void> {
  const lock = new pg.Client({ connectionString: url, application_name: "stagedoor-migrate" });
  await lock.connect();
  try {
    await lock.query("select pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    await orm.getMigrator().up();
  } finally {
    await lock.end();
  }
}

/** What tarn (knex's pool) tells of its connections; read for the metrics. */
interface TarnPool {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
}

/**
 * The pool's connections in use and idle, and acquires waiting for one, or
 * undefined when the pool is not there (not yet made, or already destroyed).
 */
export function poolCounts(orm: Orm): { used: number; free: number; pending: number } | undefined {
  const pool = (orm.em.getConnection().getKnex().client as { pool?: TarnPool }).pool;
  if (pool === undefined || pool === null) return undefined;
  return { used: pool.numUsed(), free: pool.numFree(), pending: pool.numPendingAcquires() };
}
