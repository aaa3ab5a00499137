import { randomInt } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { QueueTokenState, type StagedoorClient } from "@stagedoor/sdk";
import { expect } from "chai";
import { type LogLine, ServerProcess, waitFor } from "../fault/fault-kit.js";
import { AdmissionSampler, expectBoxOfficeInvariants, moneyOf } from "../fault/invariants.js";
import { clientFor } from "../support/clients.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { deleteKeys, reportRedisSkipped, testRedisUrl, uniqueKeyPrefix } from "../support/redis.js";
import {
  redisClusterUnavailable,
  reportRedisClusterSkipped,
  sharedRedisCluster,
  type TestRedisCluster,
} from "../support/redis-cluster.js";
import {
  describeError,
  expectRefusal,
  must,
  RaceDb,
  requestId,
  type SeatRow,
  shuffled,
} from "./race-support.js";

/**
 * The whole rush across three server processes (server/src/main.ts, as
 * `npm start` runs it) on one PostgreSQL database and one Redis, with every
 * instance running its background jobs, and fans spread over the instances
 * round-robin: each fan takes a token from one instance, watches the line on
 * the next, holds and pays on the third. After it: no seat sold twice, no
 * double charge, balances equal to their ledgers, never more admitted than the
 * global limit, admission in FIFO order, every abandoned hold expired by one
 * of the sweepers, every instance lists the same free seats, and no instance
 * logged a failing job or an error.
 */

/** Samples how many users are admitted at once (see AdmissionSampler). */
export type AdmissionWatch = Pick<AdmissionSampler, "start" | "stop" | "expectWithin">;

/** How the instances share a Redis: their environment, and how the test watches admissions. */
export interface SharedRedis {
  readonly label: string;
  /** Added to every instance's environment (REDIS_URL and REDIS_KEY_PREFIX, or a cluster's). */
  readonly env: Readonly<Record<string, string>>;
  /** A sampler of how many users of a concert are admitted at once. */
  admissionSampler(concertId: string): AdmissionWatch;
  /** Deletes the test's keys. */
  close(): Promise<void>;
}

/** One Redis primary (TEST_REDIS_URL), under a key prefix of the test's own. */
export function singleRedis(url: string): SharedRedis {
  const prefix = uniqueKeyPrefix();
  return {
    label: "one Redis",
    env: { REDIS_URL: url, REDIS_KEY_PREFIX: prefix },
    admissionSampler: (concertId) =>
      new AdmissionSampler(url, AdmissionSampler.admittedKey(prefix, concertId)),
    close: () => deleteKeys(url, prefix),
  };
}

/**
 * A three-master Redis Cluster the tests start (test/support/redis-cluster.ts),
 * under a key prefix of the test's own. A concert's admitted set lives on the
 * master that owns its slot, which the sampler reads directly.
 */
async function clusterRedis(): Promise<SharedRedis> {
  const cluster = await sharedRedisCluster();
  const prefix = uniqueKeyPrefix();
  return {
    label: "a Redis Cluster",
    env: { REDIS_CLUSTER_URLS: cluster.urls.join(","), REDIS_KEY_PREFIX: prefix },
    admissionSampler: (concertId) => new ClusterAdmissionSampler(cluster, prefix, concertId),
    close: async () => {
      await cluster.deleteMatching(`${prefix}*`);
    },
  };
}

/** An {@link AdmissionSampler} on the master that serves the concert's admitted set. */
class ClusterAdmissionSampler implements AdmissionWatch {
  private sampler: AdmissionSampler | undefined;

  constructor(
    private readonly cluster: TestRedisCluster,
    private readonly prefix: string,
    private readonly concertId: string,
  ) {}

  async start(): Promise<void> {
    const key = AdmissionSampler.admittedKey(this.prefix, this.concertId);
    const port = await this.cluster.masterOfSlot(await this.cluster.keySlot(key));
    this.sampler = new AdmissionSampler(`redis://127.0.0.1:${port}`, key);
    await this.sampler.start();
  }

  stop(): void {
    this.sampler?.stop();
  }

  expectWithin(limit: number): void {
    expect(this.sampler, "the sampler was started").to.not.equal(undefined);
    this.sampler?.expectWithin(limit);
  }
}

const INSTANCES = 3;
const MAX_ACTIVE = 6;
const FANS = 36;
/** Fans pick among this many seats of the first date: collisions are certain. */
const CONTESTED_SEATS = 20;
const MAX_REFUSALS = 6;
const HOLD_TTL_SECONDS = 5;

/** One fan and what the servers told them. */
interface Fan {
  readonly rank: number;
  readonly userId: string;
  token: string;
  admittedSeen: boolean;
  done: boolean;
  won?: { readonly seat: SeatRow; readonly reservationId: string };
  paid: boolean;
  abandoned: boolean;
}

/**
 * Runs the many-instances suite on a shared Redis. The lead adds one more
 * call per Redis topology (e.g. a Redis Cluster) once its support is merged.
 */
export function manyInstances(
  name: string,
  shared: () => SharedRedis | Promise<SharedRedis>,
): void {
  describe(name, function () {
    // Three servers compile with tsx and start on two busy, shared cores.
    this.timeout(180_000);
    let database: TestDatabase;
    let redis: SharedRedis;
    let servers: ServerProcess[] = [];
    let db: RaceDb;

    before(async () => {
      database = await createTestDatabase();
      redis = await shared();
      db = new RaceDb(database.url);
      // All three at once: migrations and the demo seed run once, under advisory locks.
      const starting = Array.from({ length: INSTANCES }, () =>
        ServerProcess.start({
          DATABASE_URL: database.url,
          ...redis.env,
          QUEUE_MAX_ACTIVE: String(MAX_ACTIVE),
          HOLD_TTL_SECONDS: String(HOLD_TTL_SECONDS),
          TOKEN_TTL_SECONDS: "120",
          QUEUE_IDLE_SECONDS: "60",
          DB_POOL_MAX: "5",
        }),
      );
      const started = await Promise.allSettled(starting);
      servers = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
      const failed = started.find((result) => result.status === "rejected");
      if (failed) throw failed.reason;
    });

    after(async () => {
      await Promise.all(servers.map((server) => server.stop()));
      await db?.close();
      await redis?.close();
      await database?.drop();
    });

    it(`${FANS} fans over ${INSTANCES} instances, limit ${MAX_ACTIVE}: tokens, watch, admission, contested holds, payments`, async () => {
      const concerts = await db.query<{ id: string }>("select id from concert");
      expect(concerts, "instances started together seeded one concert").to.have.length(1);
      const concertId = must(concerts[0], "concert").id;
      const seats = (await db.seats()).filter((s) => s.dateIndex === 0).slice(0, CONTESTED_SEATS);
      const urls = servers.map((server) => server.url);
      const on = (k: number, token?: string): StagedoorClient =>
        clientFor("connect", must(urls[k % INSTANCES], "url"), token);

      const sampler = redis.admissionSampler(concertId);
      await sampler.start();
      const fans: Fan[] = [];
      const failures: string[] = [];
      const fifo: string[] = [];
      let furthestAdmitted = -1;
      let collisions = 0;
      let waited = 0;
      const seen = (fan: Fan) => {
        fan.admittedSeen = true;
        furthestAdmitted = Math.max(furthestAdmitted, fan.rank);
      };

      /** A fan after their token: watch until admitted, try seats, pay (or abandon), leave. */
      async function play(fan: Fan): Promise<void> {
        const rank = fan.rank;
        let admitted = false;
        for await (const message of on(rank + 1, fan.token).queue.watchQueueStatus({})) {
          if (message.event.case === "admitted") {
            admitted = true;
            break;
          }
        }
        expect(admitted, `${fan.userId}'s watch ended with an admission`).to.equal(true);
        seen(fan);
        const mine = on(rank + 2, fan.token);
        let refusals = 0;
        for (const seat of shuffled(seats)) {
          if (refusals >= MAX_REFUSALS) break;
          try {
            const { reservation } = await mine.reservation.holdSeat({
              seatId: seat.id,
              requestId: requestId(),
            });
            fan.won = { seat, reservationId: must(reservation, "reservation").id };
            break;
          } catch (error) {
            expectRefusal(error, Code.FailedPrecondition, ["SEAT_UNAVAILABLE"], `${fan.userId}: `);
            refusals++;
            collisions++;
          }
        }
        const payer = on(rank, fan.token);
        if (fan.won && rank % 4 !== 3) {
          await payer.wallet.rechargeWallet({ amount: fan.won.seat.price, requestId: requestId() });
          await payer.payment.createPayment({
            reservationId: fan.won.reservationId,
            amount: fan.won.seat.price,
            requestId: requestId(),
          });
          fan.paid = true; // Paying ends the admission.
        } else {
          // Losers leave; every fourth winner walks away from their hold, which expires.
          fan.abandoned = fan.won !== undefined;
          await payer.queue.leaveQueue({});
        }
      }

      /** Reads waiting fans' status, later ranks first; one still waiting behind an admitted later rank breaks FIFO. */
      async function watchOrder(): Promise<void> {
        let reads = 0;
        while (fans.length < FANS || fans.some((fan) => !fan.done)) {
          for (const fan of [...fans].reverse()) {
            if (fan.admittedSeen || fan.done) continue;
            const furthest = furthestAdmitted;
            let state: QueueTokenState;
            try {
              const { status } = await on(reads++, fan.token).queue.getQueueStatus({});
              state = must(status, "status").state;
            } catch (error) {
              // Admitted and gone (left or paid) during the read: nothing to judge.
              if (fan.admittedSeen) continue;
              throw error;
            }
            if (state === QueueTokenState.WAITING && fan.rank < furthest) {
              fifo.push(`rank ${fan.rank} still waiting after rank ${furthest} was admitted`);
            }
            if (state === QueueTokenState.ADMITTED) seen(fan);
          }
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }

      const order = watchOrder();
      const playing: Promise<void>[] = [];
      // Tokens one after another, spread over the instances: their order is the line's order.
      for (let rank = 0; rank < FANS; rank++) {
        const fan: Fan = {
          rank,
          userId: `fan-${rank}-${randomInt(1e9)}`,
          token: "",
          admittedSeen: false,
          done: false,
          paid: false,
          abandoned: false,
        };
        const issued = await on(rank).queue.issueQueueToken({ concertId, userId: fan.userId });
        fan.token = issued.token;
        const state = must(issued.status, "status").state;
        expect(state === QueueTokenState.WAITING || state === QueueTokenState.ADMITTED).to.equal(
          true,
        );
        if (state === QueueTokenState.ADMITTED) seen(fan);
        else waited++;
        fans.push(fan);
      }
      // Then everyone plays at once: the first MAX_ACTIVE hold and pay while the rest watch.
      for (const fan of fans) {
        playing.push(
          play(fan)
            .catch((error: unknown) => {
              failures.push(`${fan.userId}: ${describeError(error)}`);
            })
            .finally(() => {
              fan.done = true;
            }),
        );
      }
      await Promise.all(playing);
      try {
        await order;
      } finally {
        sampler.stop();
      }

      expect(failures, "fans' unexpected errors").to.deep.equal([]);
      expect(fifo, "FIFO admission").to.deep.equal([]);
      sampler.expectWithin(MAX_ACTIVE);
      expect(waited, "fans who had to wait in line").to.be.greaterThan(FANS / 2);

      const winners = fans.filter((fan) => fan.won !== undefined);
      const paid = fans.filter((fan) => fan.paid);
      const abandoned = fans.filter((fan) => fan.abandoned);
      // A seat whose hold was abandoned may be won again once that hold has expired.
      expect(winners.length, "winners").to.be.within(1, CONTESTED_SEATS + abandoned.length);
      expect(new Set(paid.map((fan) => fan.won?.seat.id)).size, "no seat paid twice").to.equal(
        paid.length,
      );
      expect(collisions, "holds refused because another fan had the seat").to.be.greaterThan(0);
      expect(abandoned.length, "some holds were abandoned").to.be.greaterThan(0);

      // Money: each payer charged once, every balance equal to its ledger.
      const money = await moneyOf(
        database.url,
        fans.map((fan) => fan.userId),
      );
      for (const fan of fans) {
        const m = must(money.get(fan.userId), fan.userId);
        expect(m.payments.length, `${fan.userId} payments`).to.equal(fan.paid ? 1 : 0);
        expect(m.paymentEntries, `${fan.userId} PAYMENT entries`).to.equal(fan.paid ? 1 : 0);
        expect(m.balance, `${fan.userId} balance = ledger`).to.equal(m.ledgerSum);
      }
      const [counts] = await db.query<{ payments: number; confirmed: number }>(
        `select (select count(*)::int from payment) as payments,
                (select count(*)::int from reservation where status = 'CONFIRMED') as confirmed`,
      );
      expect(counts).to.deep.equal({ payments: paid.length, confirmed: paid.length });

      // The abandoned holds end by time: one of the three sweepers (or a later hold of the
      // same seat) marks each EXPIRED and lets its seat go.
      const abandonedIds = abandoned.map((fan) => fan.won?.reservationId);
      const expired = await waitFor(
        async () => {
          const rows = await db.query<{ ended: boolean }>(
            `select r.status = 'EXPIRED' and s.reservation_id is distinct from r.id as ended
               from reservation r join seat s on s.id = r.seat_id
              where r.id = any($1::uuid[])`,
            [abandonedIds],
          );
          return rows.every((row) => row.ended) ? rows : undefined;
        },
        (HOLD_TTL_SECONDS + 15) * 1000,
        "the sweepers' expiry of the abandoned holds",
        250,
      );
      expect(expired).to.have.length(abandoned.length);
      await expectBoxOfficeInvariants(database.url);

      // Every instance lists exactly the contested seats nobody bought as free.
      const unsold = seats
        .filter((seat) => !paid.some((fan) => fan.won?.seat.id === seat.id))
        .map((seat) => seat.number);
      const dateId = must(
        (await db.query<{ id: string }>("select id from concert_date order by date limit 1"))[0],
        "date",
      ).id;
      for (let k = 0; k < INSTANCES; k++) {
        const listed = await waitFor(
          async () => {
            const { seats: free } = await on(k).catalog.listAvailableSeats({
              concertDateId: dateId,
              pageSize: 100,
            });
            const contested = free.map((s) => s.number).filter((n) => n <= CONTESTED_SEATS);
            return contested.length === unsold.length ? contested : undefined;
          },
          10_000,
          `instance ${k + 1} listing the expired holds' seats as free`,
        );
        expect(listed, `instance ${k + 1}'s free contested seats`).to.deep.equal(unsold);
      }

      // No instance's jobs failed or fought, and nothing was logged as an error.
      for (const [k, server] of servers.entries()) {
        const bad = server.lines.filter(
          (line: LogLine) =>
            (typeof line.level === "number" && line.level >= 50) ||
            line.msg?.startsWith("background job"),
        );
        expect(bad, `instance ${k + 1}'s errors and failing jobs`).to.deep.equal([]);
        expect(server.running, `instance ${k + 1} still running`).to.equal(true);
      }
    });
  });
}

if (testRedisUrl) {
  const url = testRedisUrl;
  manyInstances("concurrency: three instances on one PostgreSQL and one Redis", () =>
    singleRedis(url),
  );
} else {
  reportRedisSkipped("concurrency: three instances on one PostgreSQL and one Redis");
}

const clusterMissing = await redisClusterUnavailable();
if (clusterMissing === undefined) {
  manyInstances("concurrency: three instances on one PostgreSQL and a Redis Cluster", clusterRedis);
} else {
  reportRedisClusterSkipped(
    "concurrency: three instances on one PostgreSQL and a Redis Cluster",
    clusterMissing,
  );
}
