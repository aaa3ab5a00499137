import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { expect } from "chai";
import pg from "pg";
import { loadConfig } from "../../../server/src/config.js";
import {
  buildServices,
  type Services,
  type Settings,
  settingsFromConfig,
} from "../../../server/src/container.js";
import { createLogger, type Logger } from "../../../server/src/logger.js";
import { seedDemoCatalog } from "../../../server/src/modules/catalog/demo-catalog.js";
import { entities } from "../../../server/src/modules/entities.js";
import type { Principal } from "../../../server/src/modules/identity/principal.js";
import { TrustUserVerifier } from "../../../server/src/modules/identity/user-verifier.js";
import { MemoryQueueStore } from "../../../server/src/modules/queue/memory-queue-store.js";
import { migrateUp, type Orm, openOrm } from "../../../server/src/persistence/orm.js";
import { WriteBatcher } from "../../../server/src/persistence/write-batcher.js";
import { DomainError, type ErrorKind } from "../../../server/src/shared/domain-error.js";
import type { ErrorReason } from "../../../server/src/shared/error-reasons.js";
import { FakeClock } from "../../support/fake-clock.js";
import { createTestDatabase, type TestDatabase } from "../../support/postgres.js";

/**
 * The application services wired exactly as `bootstrap` wires them (same
 * `buildServices`, same ORM options, migrations and demo seed), minus HTTP,
 * over a fresh database, an in-process queue store and a fake clock. Shared
 * by the catalog, reservations, wallet and payments service specs.
 */

/** Returns the value, or fails the test when it is missing. */
export function must<T>(value: T | null | undefined, what = "value"): T {
  if (value === null || value === undefined) throw new Error(`expected ${what} to be present`);
  return value;
}

/** Awaits a call that must fail with a DomainError of this kind and reason, and returns it. */
export async function expectDomainError(
  promise: Promise<unknown>,
  kind: ErrorKind,
  reason: ErrorReason,
): Promise<DomainError> {
  let outcome: unknown;
  try {
    await promise;
  } catch (error) {
    outcome = error;
  }
  if (!(outcome instanceof DomainError)) {
    expect.fail(`expected a DomainError ${kind}/${reason}, got ${String(outcome)}`);
  }
  expect({ kind: outcome.kind, reason: outcome.reason }).to.deep.equal({ kind, reason });
  return outcome;
}

/** A seat of the demo catalog, as a test picks it. */
export interface DemoSeat {
  readonly id: string;
  readonly concertDateId: string;
  readonly number: number;
  readonly price: bigint;
}

/** A catalog created directly in SQL, for tests that must own every seat of it. */
export interface ExtraConcert {
  readonly concertId: string;
  readonly dates: readonly { readonly id: string; readonly date: string }[];
}

/** One date of {@link ServiceHarness.createConcert}. */
export interface ExtraDate {
  /** Days from the fake clock's now; negative for a date that has passed. */
  readonly daysFromNow: number;
  readonly seats: number;
}

/** An admitted (or at least authenticated) caller. */
export interface Caller {
  readonly token: string;
  readonly principal: Principal;
}

export class ServiceHarness {
  private seatCursor = 0;
  private users = 0;
  private readonly extraGraphs: MemoryQueueStore[] = [];

  private constructor(
    readonly database: TestDatabase,
    readonly orm: Orm,
    readonly pool: pg.Pool,
    readonly clock: FakeClock,
    readonly services: Services,
    readonly store: MemoryQueueStore,
    readonly tokenSecret: Buffer,
    readonly concertId: string,
    /** The demo concert's dates in calendar order. */
    readonly dateIds: readonly string[],
    private readonly seats: readonly DemoSeat[],
  ) {}

  /**
   * Starts the services on a fresh, migrated, seeded database. `env` is the
   * same environment `loadConfig` reads in production (e.g. HOLD_TTL_SECONDS).
   */
  static async start(env: Readonly<Record<string, string>> = {}): Promise<ServiceHarness> {
    const database = await createTestDatabase();
    let orm: Orm | undefined;
    try {
      orm = await openOrm({ url: database.url, entities, poolMax: 10 });
      await migrateUp(orm, database.url);
      const clock = new FakeClock();
      await seedDemoCatalog(orm.em, clock.now());
      const settings = settingsFor(database.url, env);
      const store = new MemoryQueueStore(settings.queue);
      const tokenSecret = randomBytes(32);
      const services = buildServices({
        db: orm.em,
        store,
        tokenSecret,
        ticketKey: randomBytes(32),
        verifier: new TrustUserVerifier(),
        clock,
        logger: createLogger("silent"),
        settings,
      });
      const pool = new pg.Pool({ connectionString: database.url, max: 4 });
      const concertId = (await services.catalog.defaultConcert()).id;
      const dates = await pool.query<{ id: string }>(
        "select id from concert_date where concert_id = $1 order by date",
        [concertId],
      );
      const seats = await pool.query<{
        id: string;
        concert_date_id: string;
        number: number;
        price: string;
      }>(
        `select s.id, s.concert_date_id, s.number, s.price::text as price
           from seat s join concert_date d on d.id = s.concert_date_id
          where d.concert_id = $1 order by d.date, s.number`,
        [concertId],
      );
      return new ServiceHarness(
        database,
        orm,
        pool,
        clock,
        services,
        store,
        tokenSecret,
        concertId,
        dates.rows.map((row) => row.id),
        seats.rows.map((row) => ({
          id: row.id,
          concertDateId: row.concert_date_id,
          number: row.number,
          price: BigInt(row.price),
        })),
      );
    } catch (error) {
      await orm?.close();
      await database.drop();
      throw error;
    }
  }

  /**
   * A second service graph over the same database and clock, with its own
   * in-process queue store and settings: another server instance in all but
   * its waiting room, e.g. one with QUEUE_MAX_ACTIVE=1 so a user can wait.
   * `options.db` gives it a pool of its own (an ORM the caller opened and
   * closes), `options.logger` a logger to read.
   */
  graph(
    env: Readonly<Record<string, string>>,
    options: { readonly db?: Orm["em"]; readonly logger?: Logger } = {},
  ): Services {
    const settings = settingsFor(this.database.url, env);
    const store = new MemoryQueueStore(settings.queue);
    this.extraGraphs.push(store);
    return buildServices({
      db: options.db ?? this.orm.em,
      store,
      tokenSecret: this.tokenSecret,
      ticketKey: randomBytes(32),
      verifier: new TrustUserVerifier(),
      clock: this.clock,
      logger: options.logger ?? createLogger("silent"),
      settings,
    });
  }

  /** A write batcher as the container builds one, with the configuration's defaults. */
  writeBatcher(env: Readonly<Record<string, string>> = {}): WriteBatcher {
    return WriteBatcher.over(this.orm.em, settingsFor(this.database.url, env).writes);
  }

  /** A user id no other test of this process uses. */
  user(label: string): string {
    this.users += 1;
    return `${label}-${this.users}-${randomBytes(3).toString("hex")}`;
  }

  /** Issues a token and authenticates it; the user must be admitted at once. */
  async admit(
    userId: string,
    options: { concertId?: string; services?: Services } = {},
  ): Promise<Caller> {
    const services = options.services ?? this.services;
    const issued = await services.queue.issueToken({
      concertId: options.concertId ?? this.concertId,
      userId,
      assertion: undefined,
    });
    expect(issued.status.state, `admission of ${userId}`).to.equal("admitted");
    const session = await services.queue.authenticate(issued.token);
    return { token: issued.token, principal: session.principal };
  }

  /** The caller's principal as the transport would build it for the next request. */
  async reauthenticate(token: string, services: Services = this.services): Promise<Principal> {
    return (await services.queue.authenticate(token)).principal;
  }

  /** A demo seat no earlier call of this harness returned (files own their seats). */
  /** Where the seat gate keeps a demo seat's date (its concert and date). */
  gateDateOf(seat: DemoSeat): { concertId: string; dateId: string } {
    return { concertId: this.concertId, dateId: seat.concertDateId };
  }

  takeSeat(): DemoSeat {
    const seat = this.seats[this.seatCursor];
    this.seatCursor += 1;
    return must(seat, "an unused demo seat");
  }

  /** Waits until a statement on this harness's database waits for another transaction's lock. */
  async untilAStatementWaitsForALock(): Promise<void> {
    for (let attempt = 0; attempt < 1000; attempt++) {
      const [row] = await this.sql<{ waiting: number }>(
        `select count(*)::int as waiting from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`,
      );
      if (must(row).waiting > 0) return;
      await sleep(5);
    }
    expect.fail("no statement ever waited for a lock");
  }

  /** Runs SQL on a plain pg connection, bypassing the ORM. */
  async sql<T extends pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<T[]> {
    return (await this.pool.query<T>(text, params)).rows;
  }

  /** A new concert with its own dates and seats (1..n, all AVAILABLE, price 1000 + n). */
  async createConcert(dates: readonly ExtraDate[]): Promise<ExtraConcert> {
    // Created after the demo concert so the demo stays the default one.
    const createdAt = new Date(this.clock.ms() + 60_000);
    const [concert] = await this.sql<{ id: string }>(
      `insert into concert (id, title, venue, created_at)
       values (gen_random_uuid(), 'Extra', 'Test hall', $1) returning id`,
      [createdAt],
    );
    const concertId = must(concert).id;
    const created: { id: string; date: string }[] = [];
    for (const spec of dates) {
      const startsAt = new Date(this.clock.ms() + spec.daysFromNow * 86_400_000);
      const [row] = await this.sql<{ id: string; date: string }>(
        `insert into concert_date (id, concert_id, date, starts_at, total_seats)
         values (gen_random_uuid(), $1, ($2::timestamptz at time zone 'UTC')::date, $2, $3)
         returning id, to_char(date, 'YYYY-MM-DD') as date`,
        [concertId, startsAt, spec.seats],
      );
      const date = must(row);
      await this.sql(
        `insert into seat (id, concert_date_id, number, grade, price, status, version)
         select gen_random_uuid(), $1, n, 'R', 1000 + n, 'AVAILABLE', 1
           from generate_series(1, $2::int) as n`,
        [date.id, spec.seats],
      );
      created.push(date);
    }
    return { concertId, dates: created };
  }

  /** The id of seat `number` of a date. */
  async seatId(concertDateId: string, number: number): Promise<string> {
    const [row] = await this.sql<{ id: string }>(
      "select id from seat where concert_date_id = $1 and number = $2",
      [concertDateId, number],
    );
    return must(row, `seat ${number}`).id;
  }

  /** Stops everything this harness opened and drops its database. */
  async close(): Promise<void> {
    await this.pool.end();
    await this.orm.close();
    await this.store.close();
    for (const store of this.extraGraphs) await store.close();
    await this.database.drop();
  }
}

/** The settings production derives from the same environment. */
function settingsFor(url: string, env: Readonly<Record<string, string>>): Settings {
  return settingsFromConfig(
    loadConfig({
      DATABASE_URL: url,
      AUTH_MODE: "trust",
      // Every test user is admitted at once unless a test asks for a line.
      QUEUE_MAX_ACTIVE: "1000000",
      ...env,
    }),
  );
}

/** Row counts the money tests compare before and after a refused request. */
export interface MoneySnapshot {
  readonly wallets: string;
  readonly ledger: string;
  readonly payments: string;
  readonly keys: string;
}

/** What a user's money rows look like right now. */
export async function moneySnapshot(h: ServiceHarness, userId: string): Promise<MoneySnapshot> {
  const [row] = await h.sql<{ wallets: string; ledger: string; payments: string; keys: string }>(
    `select (select coalesce(string_agg(balance::text || '/' || version, ','), '') from wallet where user_id = $1) as wallets,
            (select count(*)::text from ledger_entry where user_id = $1) as ledger,
            (select count(*)::text from payment where user_id = $1) as payments,
            (select count(*)::text from idempotency_key where user_id = $1) as keys`,
    [userId],
  );
  return must(row);
}

/**
 * Checks the money invariants over the whole database: every wallet's
 * balance equals the sum of its ledger, and its ledger versions are exactly
 * 1..version (the `unique (user_id, wallet_version)` never had to save us
 * from a lost update).
 */
export async function expectLedgerMatchesBalances(h: ServiceHarness): Promise<void> {
  const broken = await h.sql(
    `select w.user_id, w.balance::text, w.version,
            coalesce(sum(l.amount), 0)::text as ledger_sum,
            count(l.id)::int as entries,
            count(distinct l.wallet_version)::int as versions,
            coalesce(max(l.wallet_version), 0) as max_version
       from wallet w left join ledger_entry l on l.user_id = w.user_id
      group by w.user_id
     having w.balance <> coalesce(sum(l.amount), 0)
         or count(l.id) <> w.version
         or count(distinct l.wallet_version) <> w.version
         or coalesce(max(l.wallet_version), 0) <> w.version`,
  );
  expect(broken, "wallets whose balance or versions disagree with the ledger").to.deep.equal([]);
  const orphans = await h.sql(
    "select l.id from ledger_entry l left join wallet w using (user_id) where w.user_id is null",
  );
  expect(orphans).to.deep.equal([]);
}
