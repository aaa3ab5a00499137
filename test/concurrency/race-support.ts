import { randomInt, randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, QueueTokenState, type StagedoorClient } from "@stagedoor/sdk";
import { expect } from "chai";
import pg from "pg";
import { clientFor, type Protocol } from "../support/clients.js";
import {
  startTestServer,
  type TestServer,
  type TestServerOptions,
} from "../support/test-server.js";

/** The protocols the races run over: gRPC (h2c, multiplexed) and Connect (HTTP/1.1). */
export const RACE_PROTOCOLS = ["grpc", "connect"] as const satisfies readonly Protocol[];

export { NO_USER_RATE_LIMITS } from "../support/rate-limits.js";

/** Returns the value, or fails the test when it is missing. */
export function must<T>(value: T | null | undefined, what = "value"): T {
  if (value === null || value === undefined) throw new Error(`expected ${what} to be present`);
  return value;
}

/** A user id no other test (or run) uses. */
export function uniqueUser(label: string): string {
  return `${label}-${randomUUID().slice(0, 8)}`;
}

/** A fresh request id. */
export function requestId(): string {
  return randomUUID();
}

/** A Fisher-Yates shuffle into a new array. */
export function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [out[i], out[j]] = [must(out[j]), must(out[i])];
  }
  return out;
}

/** Splits settled results into values and rejection reasons. */
export function partition<T>(results: readonly PromiseSettledResult<T>[]): {
  fulfilled: T[];
  rejected: unknown[];
} {
  const fulfilled: T[] = [];
  const rejected: unknown[] = [];
  for (const result of results) {
    if (result.status === "fulfilled") fulfilled.push(result.value);
    else rejected.push(result.reason);
  }
  return { fulfilled, rejected };
}

/** The `google.rpc.ErrorInfo` reason of a Connect error, or undefined. */
export function reasonOf(error: ConnectError): string | undefined {
  return error.findDetails(ErrorInfoSchema)[0]?.reason;
}

/** A rejection as "code REASON: message", for assertion messages. */
export function describeError(error: unknown): string {
  if (!(error instanceof ConnectError)) return `not a ConnectError: ${String(error)}`;
  return `${Code[error.code]} ${reasonOf(error) ?? "(no reason)"}: ${error.rawMessage}`;
}

/**
 * Asserts a rejection is a ConnectError with the expected code and one of the
 * expected reasons (never `internal` or `unknown`), and returns its reason.
 */
export function expectRefusal(
  error: unknown,
  code: Code,
  reasons: readonly string[],
  context = "",
): string {
  if (!(error instanceof ConnectError)) {
    expect.fail(`${context}expected a ConnectError, got ${String(error)}`);
  }
  const reason = reasonOf(error);
  expect(
    { code: Code[error.code], reason },
    `${context}unexpected refusal: ${error.message}`,
  ).to.satisfy(
    (seen: { code: string; reason: string | undefined }) =>
      seen.code === Code[code] && seen.reason !== undefined && reasons.includes(seen.reason),
  );
  return reason ?? "";
}

/** Counts how often each reason occurred. */
export function tally(reasons: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const reason of reasons) counts[reason] = (counts[reason] ?? 0) + 1;
  return counts;
}

/** Call options that authenticate one call as the token's user. */
export function asUser(token: string): { headers: Record<string, string> } {
  return { headers: { authorization: `Bearer ${token}` } };
}

/** A user holding a live, admitted queue token, with clients that send it. */
export interface AdmittedUser {
  readonly userId: string;
  readonly token: string;
  readonly client: StagedoorClient;
}

/** Issues a token for a new user and checks it was admitted at once (free slots). */
export async function admitUser(
  server: TestServer,
  protocol: Protocol,
  label: string,
): Promise<AdmittedUser> {
  const userId = uniqueUser(label);
  const { token, status } = await clientFor(protocol, server.url).queue.issueQueueToken({
    concertId: server.concertId,
    userId,
  });
  expect(status?.state, `${userId} should be admitted at once`).to.equal(QueueTokenState.ADMITTED);
  return { userId, token, client: clientFor(protocol, server.url, token) };
}

/** One seat of the demo catalog, as stored. */
export interface SeatRow {
  readonly id: string;
  readonly dateIndex: number;
  readonly number: number;
  readonly price: bigint;
}

/**
 * Direct access to a test server's database: the invariants are checked
 * against the rows, not against what the API says about them.
 */
export class RaceDb {
  private readonly pool: pg.Pool;

  constructor(databaseUrl: string) {
    this.pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  }

  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.pool.query<R>(sql, params)).rows;
  }

  /** Every demo seat, by date (0-based, in date order) and number. */
  async seats(): Promise<SeatRow[]> {
    const rows = await this.query<{
      id: string;
      date_index: number;
      number: number;
      price: string;
    }>(
      `select s.id, (dense_rank() over (order by d.date) - 1)::int as date_index,
              s.number, s.price::text as price
         from seat s join concert_date d on d.id = s.concert_date_id
        order by d.date, s.number`,
    );
    return rows.map((row) => ({
      id: row.id,
      dateIndex: row.date_index,
      number: row.number,
      price: BigInt(row.price),
    }));
  }

  /** One seat of the demo catalog. */
  async seat(dateIndex: number, number: number): Promise<SeatRow> {
    const seat = (await this.seats()).find((s) => s.dateIndex === dateIndex && s.number === number);
    return must(seat, `seat ${number} of date ${dateIndex}`);
  }

  /**
   * Every cross-table invariant of the box office, as a list of violations
   * (empty when all hold). `now` is the server's clock, for the rules about
   * unexpired holds.
   */
  async violations(now: Date): Promise<string[]> {
    const checks: [string, string, unknown[]][] = [
      [
        "a seat has two CONFIRMED reservations",
        `select seat_id as id from reservation where status = 'CONFIRMED'
          group by seat_id having count(*) > 1`,
        [],
      ],
      [
        "a seat has two unexpired HELD reservations",
        `select seat_id as id from reservation where status = 'HELD' and held_until > $1
          group by seat_id having count(*) > 1`,
        [now],
      ],
      [
        "a user has two HELD reservations",
        `select user_id as id from reservation where status = 'HELD'
          group by user_id having count(*) > 1`,
        [],
      ],
      [
        "a reservation has more than one payment",
        `select reservation_id as id from payment group by reservation_id having count(*) > 1`,
        [],
      ],
      [
        "a payment is not for a reservation of its payer at the seat's price, CONFIRMED (or REFUNDED with it)",
        `select p.id from payment p left join reservation r on r.id = p.reservation_id
          where r.id is null or r.user_id <> p.user_id or r.price <> p.amount
             or r.status <> case p.status when 'REFUNDED' then 'REFUNDED' else 'CONFIRMED' end`,
        [],
      ],
      [
        "a payment's REFUND entries are not exactly one of its amount when REFUNDED, none otherwise",
        `select p.id from payment p left join ledger_entry l on l.refunded_payment_id = p.id
          group by p.id, p.amount, p.status, p.user_id
         having count(l.id) <> (case p.status when 'REFUNDED' then 1 else 0 end)
             or coalesce(sum(l.amount), p.amount) <> p.amount
             or bool_or(l.kind <> 'REFUND') or bool_or(l.user_id <> p.user_id)`,
        [],
      ],
      [
        "a REFUNDED reservation's seat is still taken by it",
        `select r.id from reservation r join seat s on s.id = r.seat_id
          where r.status = 'REFUNDED' and s.reservation_id = r.id`,
        [],
      ],
      [
        "a CONFIRMED reservation has no payment",
        `select r.id from reservation r where r.status = 'CONFIRMED'
            and not exists (select 1 from payment p where p.reservation_id = r.id)`,
        [],
      ],
      [
        "a CONFIRMED reservation's seat is not SOLD to it",
        `select r.id from reservation r join seat s on s.id = r.seat_id
          where r.status = 'CONFIRMED' and (s.status <> 'SOLD' or s.reservation_id <> r.id)`,
        [],
      ],
      [
        "a SOLD seat has no paid, CONFIRMED reservation",
        `select s.id from seat s where s.status = 'SOLD' and not exists (
           select 1 from reservation r join payment p on p.reservation_id = r.id
            where r.id = s.reservation_id and r.seat_id = s.id and r.status = 'CONFIRMED')`,
        [],
      ],
      [
        "an unexpired HELD seat does not point at a HELD reservation of it",
        `select s.id from seat s where s.status = 'HELD' and s.held_until > $1 and not exists (
           select 1 from reservation r
            where r.id = s.reservation_id and r.seat_id = s.id and r.status = 'HELD'
              and r.held_until = s.held_until)`,
        [now],
      ],
      [
        "a payment does not have exactly one PAYMENT ledger entry of minus its amount",
        `select p.id from payment p left join ledger_entry l on l.payment_id = p.id
          group by p.id, p.amount
         having count(l.id) <> 1 or coalesce(sum(l.amount), 0) <> -p.amount
             or bool_or(l.kind <> 'PAYMENT') or bool_or(l.user_id <> p.user_id)`,
        [],
      ],
      [
        "a wallet's balance differs from the sum of its ledger",
        `select w.user_id as id from wallet w left join ledger_entry l on l.user_id = w.user_id
          group by w.user_id, w.balance, w.version
         having w.balance <> coalesce(sum(l.amount), 0) or w.version <> count(l.id)`,
        [],
      ],
      ["a wallet's balance is negative", "select user_id as id from wallet where balance < 0", []],
      [
        "a ledger's versions or running balances are not a gapless chain",
        `select distinct user_id as id from (
           select user_id, wallet_version, balance_after,
                  sum(amount) over (partition by user_id order by wallet_version) as running,
                  row_number() over (partition by user_id order by wallet_version) as rn
             from ledger_entry) chain
          where running <> balance_after or rn <> wallet_version or balance_after < 0`,
        [],
      ],
    ];
    const found: string[] = [];
    for (const [rule, sql, params] of checks) {
      const rows = await this.query<{ id: string }>(sql, params);
      for (const row of rows) found.push(`${rule}: ${row.id}`);
    }
    return found;
  }

  /** Fails the test unless every invariant holds. */
  async expectInvariants(now: Date): Promise<void> {
    expect(await this.violations(now), "database invariants").to.deep.equal([]);
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

/** The server and database of a race suite (see {@link raceSuite}). */
export interface RaceSuite {
  readonly server: TestServer;
  readonly db: RaceDb;
}

/**
 * Sets up a race suite, called inside its `describe`: starts a server with
 * `options` and a {@link RaceDb} on its database before the tests, checks the
 * box office's invariants after each test, and stops both after the last.
 */
export function raceSuite(options: TestServerOptions): RaceSuite {
  let server: TestServer | undefined;
  let db: RaceDb | undefined;
  before(async () => {
    server = await startTestServer(options);
    db = new RaceDb(server.databaseUrl);
  });
  afterEach(async () => {
    await must(db, "the race database").expectInvariants(new Date());
  });
  after(async () => {
    await db?.close();
    await server?.stop();
  });
  return {
    get server() {
      return must(server, "the race server");
    },
    get db() {
      return must(db, "the race database");
    },
  };
}
