import pg from "pg";
import type { QueueRedisClient } from "../../server/src/modules/queue/index.js";
import type { BenchCatalog } from "./bench-catalog.js";
import type { ConnectionPool } from "./load.js";
import { type Fan, type FlowResult, listedFreeSeats } from "./rush-flows.js";

/** One invariant and whether it held, with the figures behind it. */
export interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

/**
 * Samples the size of a concert's admitted set in Redis (`<prefix>{<concert>}:q:a`,
 * see redis-queue-scripts.ts) every ~20 ms while a round runs, to catch an
 * admission past QUEUE_MAX_ACTIVE however briefly it lasts.
 */
export class AdmissionSampler {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private failure: unknown;
  max = 0;
  samples = 0;

  constructor(
    private readonly redis: QueueRedisClient,
    private readonly key: string,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.redis.zCard(this.key).then(
        (size) => {
          this.max = Math.max(this.max, Number(size));
          this.samples++;
          this.busy = false;
        },
        (error: unknown) => {
          this.failure = error;
          this.busy = false;
        },
      );
    }, 20);
  }

  /** Stops sampling after one last sample. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.max = Math.max(this.max, Number(await this.redis.zCard(this.key)));
    this.samples++;
    if (this.failure) throw this.failure;
  }
}

/** What the invariants are checked against. */
export interface RoundFacts {
  readonly databaseUrl: string;
  readonly pool: ConnectionPool;
  readonly catalog: BenchCatalog;
  readonly fans: readonly Fan[];
  /** Payments made by the unmeasured warm-up's fans (on a date of their own). */
  readonly warmUpPaid: number;
  readonly maxActive: number;
  readonly sampler: AdmissionSampler;
}

async function count(client: pg.Client, sql: string, values: unknown[] = []): Promise<number> {
  const { rows } = await client.query<{ n: string }>(
    `select count(*) as n from (${sql}) x`,
    values,
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * Checks every invariant of the box office after a round: from the database
 * (no seat sold twice, no double charge, balances equal to their ledgers),
 * from Redis (admissions within the limit), from the listings (no held or
 * sold seat listed as free) and from what the fans were told.
 */
export async function checkInvariants(facts: RoundFacts): Promise<Check[]> {
  const checks: Check[] = [];
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  const winners = facts.fans.filter((fan) => fan.win !== undefined);
  const paid = facts.fans.filter((fan) => fan.paid);
  const seatCount = facts.catalog.dates.reduce((sum, d) => sum + d.seats.length, 0);

  const seatsWon = new Map<string, number>();
  for (const fan of winners) {
    const key = `${fan.win?.dateIndex}:${fan.win?.number}`;
    seatsWon.set(key, (seatsWon.get(key) ?? 0) + 1);
  }
  const shared = [...seatsWon.values()].filter((n) => n > 1).length;
  check(
    "winners ≤ seats",
    winners.length <= seatCount,
    `${winners.length} winners, ${seatCount} seats`,
  );
  check(
    "every winner got a distinct seat",
    shared === 0,
    `${shared} seats told to two fans or more`,
  );

  const client = new pg.Client({ connectionString: facts.databaseUrl });
  await client.connect();
  try {
    const doubleSales = await count(
      client,
      "select seat_id from reservation where status = 'CONFIRMED' group by seat_id having count(*) > 1",
    );
    const soldWrong = await count(
      client,
      `select s.id from seat s
        where s.status = 'SOLD'
          and (select count(*) from reservation r where r.seat_id = s.id and r.status = 'CONFIRMED') <> 1`,
    );
    const confirmedUnsold = await count(
      client,
      `select r.id from reservation r join seat s on s.id = r.seat_id
        where r.status = 'CONFIRMED' and (s.status <> 'SOLD' or s.reservation_id <> r.id)`,
    );
    check(
      "no seat sold twice",
      doubleSales + soldWrong + confirmedUnsold === 0,
      `${doubleSales} seats with two sales, ${soldWrong} SOLD seats without exactly one sale, ` +
        `${confirmedUnsold} sales whose seat is not SOLD to them`,
    );

    const paymentsPerReservation = await count(
      client,
      "select reservation_id from payment group by reservation_id having count(*) > 1",
    );
    const ledgerPerPayment = await count(
      client,
      `select p.id from payment p
        where (select count(*) from ledger_entry l
                where l.payment_id = p.id and l.kind = 'PAYMENT' and l.amount = -p.amount) <> 1`,
    );
    const chargedTwice = await count(
      client,
      `select user_id from ledger_entry where kind = 'PAYMENT' group by user_id having count(*) > 1
       union select user_id from payment group by user_id having count(*) > 1`,
    );
    check(
      "no double charge",
      paymentsPerReservation + ledgerPerPayment + chargedTwice === 0,
      `${paymentsPerReservation} reservations paid twice, ${ledgerPerPayment} payments without ` +
        `exactly one matching PAYMENT entry, ${chargedTwice} fans charged more than once`,
    );

    const payments = await count(client, "select id from payment");
    const confirmed = await count(client, "select id from reservation where status = 'CONFIRMED'");
    const told = paid.length + facts.warmUpPaid;
    check(
      "every payment a fan was told of is recorded, and no other",
      payments === told && confirmed === told,
      `${paid.length} fans (+${facts.warmUpPaid} warming up) told they paid, ${payments} payments, ` +
        `${confirmed} confirmed reservations`,
    );

    const { rows } = await client.query<{
      id: string;
      user_id: string;
      seat_number: number;
      status: string;
    }>("select id, user_id, seat_number, status from reservation where id = any($1::uuid[])", [
      winners.map((fan) => fan.win?.reservationId),
    ]);
    const byId = new Map(rows.map((row) => [row.id, row]));
    const mismatched = winners.filter((fan) => {
      const row = byId.get(fan.win?.reservationId ?? "");
      const expected = fan.paid ? "CONFIRMED" : "HELD";
      return (
        !row ||
        row.user_id !== fan.userId ||
        row.seat_number !== fan.win?.number ||
        row.status !== expected
      );
    }).length;
    check(
      "every hold a fan was told of is theirs in the database",
      mismatched === 0,
      `${mismatched} of ${winners.length} holds missing, someone else's, or in the wrong state`,
    );

    const unbalanced = await count(
      client,
      `select w.user_id from wallet w
         left join (select user_id, sum(amount) as total from ledger_entry group by user_id) l
           on l.user_id = w.user_id
        where w.balance <> coalesce(l.total, 0)`,
    );
    const wallets = await count(client, "select user_id from wallet");
    check(
      "every wallet balance equals the sum of its ledger",
      unbalanced === 0,
      `${unbalanced} of ${wallets} wallets off`,
    );
  } finally {
    await client.end();
  }

  check(
    "admissions never above the limit",
    facts.sampler.samples > 0 && facts.sampler.max <= facts.maxActive,
    `max ${facts.sampler.max} admitted at once over ${facts.sampler.samples} samples, ` +
      `QUEUE_MAX_ACTIVE ${facts.maxActive}`,
  );
  check(
    "the queue store was Redis",
    facts.sampler.max > 0,
    facts.sampler.max > 0 ? "admitted set seen in Redis" : "no admitted set in Redis",
  );

  const listed = await listedFreeSeats(facts.pool, facts.catalog);
  for (const [api, free] of [
    ["GET /api/concerts/seats", listed.rest],
    ["ListAvailableSeats", listed.connect],
  ] as const) {
    const heldListed = winners.filter((fan) =>
      free.has(`${fan.win?.dateIndex}:${fan.win?.number}`),
    );
    const paidListed = heldListed.filter((fan) => fan.paid).length;
    check(
      `no held or paid seat listed as free by ${api}`,
      heldListed.length === 0,
      `${free.size} listed free (${seatCount - winners.length} expected); ` +
        `${paidListed} paid and ${heldListed.length - paidListed} held seats among them`,
    );
  }
  return checks;
}

/**
 * Prints the verdict of a benchmark's rounds: the invariants that failed (each
 * named with its round) and how many replies no fan expected, warm-ups
 * included. A run whose fans met errors measured something other than the
 * rush, so either fails the process.
 */
export function reportVerdict<
  R extends { readonly result: FlowResult; readonly checks: readonly Check[] },
>(rounds: readonly R[], title: (round: R) => string): void {
  const failed = rounds.flatMap((round) =>
    round.checks.filter((check) => !check.ok).map((check) => `${title(round)}: ${check.name}`),
  );
  const errors = rounds.reduce(
    (sum, round) =>
      sum +
      (round.result.warmUp?.errors ?? 0) +
      round.result.phases.reduce((n, phase) => n + phase.errors, 0),
    0,
  );
  console.log(
    `\ninvariants: ${failed.length === 0 ? "all held" : `${failed.length} FAILED: ${failed.join("; ")}`}` +
      `; unexpected replies: ${errors}`,
  );
  if (failed.length > 0 || errors > 0) process.exitCode = 1;
}
