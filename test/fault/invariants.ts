import { expect } from "chai";
import { admittedKey } from "../../server/src/modules/queue/redis-keys.js";
import { RaceDb } from "../concurrency/race-support.js";
import { connectTestRedis } from "../support/redis.js";

/**
 * The box office's invariants, checked after a fault against what is stored
 * rather than against what the API says: no seat sold twice, no double
 * charge, every balance equal to the sum of its ledger (RaceDb.violations,
 * shared with the concurrency suites), and admissions never above the limit
 * ({@link AdmissionSampler}).
 */

/** Fails the test unless every database invariant holds now. */
export async function expectBoxOfficeInvariants(databaseUrl: string): Promise<void> {
  const db = new RaceDb(databaseUrl);
  try {
    expect(await db.violations(new Date()), "database invariants").to.deep.equal([]);
  } finally {
    await db.close();
  }
}

/** What the database holds about one fan's money. */
export interface FanMoney {
  /** Their payments' ids. */
  readonly payments: string[];
  /** How many PAYMENT ledger entries they have. */
  readonly paymentEntries: number;
  readonly balance: bigint;
  readonly ledgerSum: bigint;
}

/** The payments, PAYMENT entries, balance and ledger sum of each fan. */
export async function moneyOf(
  databaseUrl: string,
  userIds: readonly string[],
): Promise<Map<string, FanMoney>> {
  const db = new RaceDb(databaseUrl);
  try {
    const rows = await db.query<{
      user_id: string;
      payments: string[] | null;
      entries: number;
      balance: string | null;
      ledger: string | null;
    }>(
      `select u.user_id,
              (select array_agg(p.id::text) from payment p where p.user_id = u.user_id) as payments,
              (select count(*)::int from ledger_entry l
                where l.user_id = u.user_id and l.kind = 'PAYMENT') as entries,
              (select w.balance::text from wallet w where w.user_id = u.user_id) as balance,
              (select sum(l.amount)::text from ledger_entry l where l.user_id = u.user_id) as ledger
         from unnest($1::text[]) as u(user_id)`,
      [userIds],
    );
    return new Map(
      rows.map((row) => [
        row.user_id,
        {
          payments: row.payments ?? [],
          paymentEntries: row.entries,
          balance: BigInt(row.balance ?? "0"),
          ledgerSum: BigInt(row.ledger ?? "0"),
        },
      ]),
    );
  } finally {
    await db.close();
  }
}

/**
 * Samples the size of a concert's admitted set in Redis (`<prefix>{<concert>}:q:a`,
 * see redis-keys.ts) every ~20 ms, to catch an admission past
 * QUEUE_MAX_ACTIVE however briefly it lasts. Samples that fail (Redis is
 * down on purpose) are counted and skipped; the client reconnects by itself.
 */
export class AdmissionSampler {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private redis: Awaited<ReturnType<typeof connectTestRedis>> | undefined;
  max = 0;
  samples = 0;
  failed = 0;

  constructor(
    private readonly redisUrl: string,
    private readonly key: string,
  ) {}

  static admittedKey(prefix: string, concertId: string): string {
    return admittedKey(prefix, concertId);
  }

  async start(): Promise<void> {
    const redis = await connectTestRedis(this.redisUrl);
    this.redis = redis;
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      redis.zCard(this.key).then(
        (size) => {
          this.max = Math.max(this.max, Number(size));
          this.samples++;
          this.busy = false;
        },
        () => {
          this.failed++;
          this.busy = false;
        },
      );
    }, 20);
  }

  /** Stops sampling and disconnects. Safe to call more than once. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.redis?.destroy();
    this.redis = undefined;
  }

  /** "max N admitted over S samples (F failed)", for reports. */
  describe(limit: number): string {
    return `max ${this.max} admitted at once (limit ${limit}) over ${this.samples} samples, ${this.failed} failed while Redis was down`;
  }

  /** Fails the test if the admitted set ever exceeded `limit`, or was never sampled. */
  expectWithin(limit: number): void {
    expect(this.samples, "admission samples").to.be.greaterThan(0);
    expect(this.max, this.describe(limit)).to.be.at.most(limit);
  }
}
