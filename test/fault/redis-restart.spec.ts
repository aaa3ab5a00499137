import { randomBytes, randomUUID } from "node:crypto";
import { QueueTokenState, ReservationState, type StagedoorClient } from "@stagedoor/sdk";
import { expect } from "chai";
import { seatEntryKey } from "../../server/src/modules/queue/redis-keys.js";
import { RaceDb } from "../concurrency/race-support.js";
import { clientFor } from "../support/clients.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { connectTestRedis } from "../support/redis.js";
import {
  type CallOutcome,
  findRedisServer,
  outcomeOf,
  RedisProcess,
  ServerProcess,
  sleep,
  tally,
  waitFor,
} from "./fault-kit.js";
import { AdmissionSampler, expectBoxOfficeInvariants, moneyOf } from "./invariants.js";

/**
 * A restart of the waiting room's Redis (the test's own, on its own port).
 * With AOF on (fsync per write), Redis is killed -9 in the middle of a flow
 * of fans paying their way out of a short line: the line and every admission
 * survive and the admission limit holds across the restart. With persistence
 * off, what README.md ("Running it for real") documents is what happens:
 * tokens are unknown (TOKEN_INVALID), fans re-issue and go to the back of
 * the line, holds and payments in PostgreSQL are untouched, and the seat
 * gate forgets, so hold attempts go to the database.
 */

const MAX_ACTIVE = 3;
const PREFIX = "stagedoor-fault:";
const TOP_UP = 200_000n;
const DEADLINE_MS = 3_000;

interface Fan {
  readonly userId: string;
  token: string;
  client: StagedoorClient;
  readonly seatId: string;
  readonly price: bigint;
  readonly holdRequestId: string;
  readonly payRequestId: string;
  reservationId?: string;
  paid: boolean;
  /** The last waiting position seen, to catch a place that moves back. */
  lastPosition: number;
  admittedSeen: boolean;
}

describe("fault: Redis restart", function () {
  this.timeout(150_000);
  let redisServer: string | undefined;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    redisServer = await findRedisServer();
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A Redis, a database and a server for one test, all removed after it. */
  async function setUp(appendOnly: boolean) {
    const redis = await RedisProcess.start(appendOnly);
    cleanups.push(() => redis.remove());
    const database: TestDatabase = await createTestDatabase();
    cleanups.push(() => database.drop());
    const server = await ServerProcess.start({
      DATABASE_URL: database.url,
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: PREFIX,
      TOKEN_SECRET: randomBytes(32).toString("hex"),
      QUEUE_MAX_ACTIVE: String(MAX_ACTIVE),
      QUEUE_IDLE_SECONDS: "300",
      DB_POOL_MAX: "4",
    });
    cleanups.push(() => server.kill());
    const anonymous = clientFor("connect", server.url);
    const concertId = (await anonymous.catalog.listConcerts({})).concerts[0]?.id ?? "";
    const { dates } = await anonymous.catalog.listConcertDates({ concertId });
    const dateId = dates[0]?.id ?? "";
    const { seats } = await anonymous.catalog.listAvailableSeats({
      concertDateId: dateId,
      pageSize: 100,
    });
    /** Issues tokens in order (the line's order) and tops every fan's wallet up. */
    const fansInLine = async (count: number, label: string): Promise<Fan[]> => {
      const fans: Fan[] = [];
      for (let i = 0; i < count; i++) {
        const userId = `${label}-${i}-${randomUUID().slice(0, 8)}`;
        const { token, status } = await anonymous.queue.issueQueueToken({ concertId, userId });
        expect(status?.state, userId).to.equal(
          i < MAX_ACTIVE ? QueueTokenState.ADMITTED : QueueTokenState.WAITING,
        );
        const client = clientFor("connect", server.url, token);
        await client.wallet.rechargeWallet({ amount: TOP_UP, requestId: randomUUID() });
        const seat = seats[i];
        fans.push({
          userId,
          token,
          client,
          seatId: seat?.id ?? "",
          price: seat?.price ?? 0n,
          holdRequestId: randomUUID(),
          payRequestId: randomUUID(),
          paid: false,
          lastPosition: Number.POSITIVE_INFINITY,
          admittedSeen: false,
        });
      }
      return fans;
    };
    return { redis, database, server, anonymous, concertId, dateId, fansInLine };
  }

  it("with AOF on: killed -9 mid-flow, the line and every admission survive and the limit holds", async function () {
    // Skipped only where no redis-server binary exists (it restarts a Redis of its own); .ci/run installs it.
    if (redisServer === undefined) this.skip();
    const FANS = 15;
    const { redis, database, server, concertId, fansInLine } = await setUp(true);
    const fans = await fansInLine(FANS, "aof");
    const sampler = new AdmissionSampler(
      redis.url,
      AdmissionSampler.admittedKey(PREFIX, concertId),
    );
    await sampler.start();
    cleanups.push(async () => sampler.stop());

    // The flow: every fan polls its place; once admitted it holds its seat
    // and pays (fixed request ids, so a retry after an error replays), which
    // ends its admission and lets the next one in.
    const failures: (CallOutcome & { userId: string })[] = [];
    const movedBack: string[] = [];
    const lostAdmission: string[] = [];
    let stopped = false;
    const step = async (fan: Fan, run: () => Promise<unknown>): Promise<boolean> => {
      const outcome = await outcomeOf(run);
      if (outcome.code !== "OK") failures.push({ ...outcome, userId: fan.userId });
      return outcome.code === "OK";
    };
    const flow = async (fan: Fan) => {
      const deadline = Date.now() + 90_000;
      while (!fan.paid && !stopped && Date.now() < deadline) {
        let state: QueueTokenState | undefined;
        await step(fan, async () => {
          const { status } = await fan.client.queue.getQueueStatus({}, { timeoutMs: DEADLINE_MS });
          state = status?.state;
          if (state === QueueTokenState.WAITING) {
            const position = Number(status?.position ?? 0n);
            if (position > fan.lastPosition) {
              movedBack.push(`${fan.userId}: ${fan.lastPosition} → ${position}`);
            }
            fan.lastPosition = position;
            if (fan.admittedSeen) lostAdmission.push(fan.userId);
          }
        });
        if (state === QueueTokenState.ADMITTED) {
          if (!fan.admittedSeen) {
            fan.admittedSeen = true;
            // A fan looks at the seat map before choosing, and at the price
            // before paying: admissions last long enough for the kill to find some.
            await sleep(400);
          }
          const held =
            fan.reservationId !== undefined ||
            (await step(fan, async () => {
              const { reservation } = await fan.client.reservation.holdSeat(
                { seatId: fan.seatId, requestId: fan.holdRequestId },
                { timeoutMs: DEADLINE_MS },
              );
              fan.reservationId = reservation?.id;
            }));
          if (held) {
            await sleep(200);
            fan.paid = await step(fan, () =>
              fan.client.payment.createPayment(
                {
                  reservationId: fan.reservationId ?? "",
                  amount: fan.price,
                  requestId: fan.payRequestId,
                },
                { timeoutMs: DEADLINE_MS },
              ),
            );
          }
        }
        if (!fan.paid) await sleep(150);
      }
    };
    const flowing = Promise.all(fans.map(flow));
    // If the test fails before the flow ends, the flow stops with it.
    cleanups.push(async () => {
      stopped = true;
      await flowing;
    });

    // Kill -9 once the line has moved (some fans paid their way out) while
    // admitted fans hold seats they have not paid for yet.
    await waitFor(
      () =>
        fans.filter((f) => f.paid).length >= 4 &&
        fans.some((f) => f.reservationId !== undefined && !f.paid)
          ? true
          : undefined,
      30_000,
      "the first payments",
      5,
    );
    const killedAt = Date.now();
    const admittedAtKill = fans.filter((f) => f.admittedSeen && !f.paid);
    const waitingAtKill = fans.filter((f) => !f.admittedSeen);
    const paidAtKill = fans.filter((f) => f.paid).length;
    await redis.stop("SIGKILL");
    await sleep(1_000);
    const restartAt = Date.now();
    await redis.start();
    await flowing;

    sampler.stop();
    const probe = await connectTestRedis(redis.url);
    const stillAdmitted = await probe.zCard(AdmissionSampler.admittedKey(PREFIX, concertId));
    probe.destroy();
    const summary =
      `Redis (AOF, fsync always) killed -9 with ${paidAtKill} paid, ${admittedAtKill.length} admitted and ` +
      `${waitingAtKill.length} waiting; down ${restartAt - killedAt} ms (+ start); ` +
      `${failures.length} failed calls: ${JSON.stringify(tally(failures))}; ${sampler.describe(MAX_ACTIVE)}; ` +
      `${stillAdmitted} admissions still counted once everyone paid ` +
      `(${server.logged("could not end admission after payment").length} payments could not end theirs ` +
      `while Redis was down: those slots free at TOKEN_TTL_SECONDS)`;
    console.log(`      ${summary}`);

    expect(
      fans.filter((f) => !f.paid).map((f) => f.userId),
      "fans who never got through",
    ).to.deep.equal([]);
    expect(admittedAtKill.length, "admitted fans at the kill").to.be.greaterThan(0);
    expect(waitingAtKill.length, "a line at the kill").to.be.greaterThan(0);
    for (const failure of failures) {
      const label = `${failure.userId}: ${failure.code} ${failure.reason} after ${failure.ms} ms`;
      // Only the outage itself: never a token that stopped working.
      expect(failure.code, label).to.equal("Unavailable");
      expect(failure.retryInfo, `${label}: RetryInfo`).to.equal(true);
    }
    expect(movedBack, "waiting places that moved back").to.deep.equal([]);
    expect(lostAdmission, "admitted fans sent back to the line").to.deep.equal([]);
    sampler.expectWithin(MAX_ACTIVE);
    const money = await moneyOf(
      database.url,
      fans.map((f) => f.userId),
    );
    for (const fan of fans) {
      const facts = money.get(fan.userId);
      expect(facts?.payments, fan.userId).to.have.length(1);
      expect(facts?.balance, fan.userId).to.equal(TOP_UP - fan.price);
    }
    await expectBoxOfficeInvariants(database.url);
  });

  it("with persistence off: what README.md documents is what fans see", async function () {
    // Skipped only where no redis-server binary exists (it restarts a Redis of its own); .ci/run installs it.
    if (redisServer === undefined) this.skip();
    const { redis, database, server, anonymous, concertId, dateId, fansInLine } =
      await setUp(false);
    // Three admitted, five waiting. The first holds a seat, the second pays
    // for one (and so leaves), and the first in line takes the freed slot.
    const fans = await fansInLine(MAX_ACTIVE + 5, "volatile");
    const [holder, payer, , firstWaiting] = fans;
    if (!holder || !payer || !firstWaiting) throw new Error("fans missing");
    const { reservation: held } = await holder.client.reservation.holdSeat({
      seatId: holder.seatId,
      requestId: randomUUID(),
    });
    const { reservation: bought } = await payer.client.reservation.holdSeat({
      seatId: payer.seatId,
      requestId: randomUUID(),
    });
    const { payment } = await payer.client.payment.createPayment({
      reservationId: bought?.id ?? "",
      amount: payer.price,
      requestId: randomUUID(),
    });
    await waitFor(
      async () => {
        const { status } = await firstWaiting.client.queue.getQueueStatus({});
        return status?.state === QueueTokenState.ADMITTED ? true : undefined;
      },
      15_000,
      "the first in line to take the freed slot",
    );

    const redisClient = await connectTestRedis(redis.url);
    cleanups.push(async () => redisClient.destroy());
    const gateKey = (seatId: string) => seatEntryKey(PREFIX, { concertId, dateId }, seatId);
    expect(
      await redisClient.exists(gateKey(holder.seatId)),
      "the gate knows the held seat",
    ).to.equal(1);
    const rows = async () => {
      const db = new RaceDb(database.url);
      try {
        return {
          reservations: await db.query(
            "select id, user_id, seat_id, status, held_until from reservation order by id",
          ),
          payments: await db.query("select id, user_id, amount from payment order by id"),
          seats: await db.query(
            "select id, status, reservation_id, held_until from seat where status <> 'AVAILABLE' order by id",
          ),
          wallets: await db.query("select user_id, balance from wallet order by user_id"),
        };
      } finally {
        await db.close();
      }
    };
    const before = await rows();

    // Restart with nothing kept.
    await redis.stop("SIGTERM");
    await redis.start();
    redisClient.destroy();

    // Every old token is unknown now: TOKEN_INVALID, not a hang, not INTERNAL.
    const oldTokens = await waitFor(
      async () => {
        const outcomes = await Promise.all(
          fans.map((fan) => outcomeOf(() => fan.client.queue.getQueueStatus({}))),
        );
        return outcomes.every((o) => o.code !== "Unavailable") ? outcomes : undefined;
      },
      30_000,
      "the server to reach the restarted Redis",
    );
    expect(oldTokens.map((o) => `${o.code} ${o.reason}`)).to.deep.equal(
      fans.map(() => "Unauthenticated TOKEN_INVALID"),
    );

    // Fans re-issue, each going to the back of the line as it comes back:
    // here in reverse order, so the old head of the line is now last.
    const reissued: { userId: string; state: string; position: number }[] = [];
    for (const fan of [...fans].reverse()) {
      const { token, status } = await anonymous.queue.issueQueueToken({
        concertId,
        userId: fan.userId,
      });
      fan.token = token;
      fan.client = clientFor("connect", server.url, token);
      reissued.push({
        userId: fan.userId,
        state: QueueTokenState[status?.state ?? 0],
        position: Number(status?.position ?? -1n),
      });
    }
    expect(reissued).to.deep.equal(
      [...fans].reverse().map((fan, i) => ({
        userId: fan.userId,
        state: i < MAX_ACTIVE ? "ADMITTED" : "WAITING",
        position: i < MAX_ACTIVE ? 0 : i - MAX_ACTIVE + 1,
      })),
    );

    // PostgreSQL is untouched: the hold, the payment, the seats, the money.
    expect(await rows(), "the database's rows").to.deep.equal(before);
    const { reservation } = await holder.client.reservation.getReservation({
      reservationId: held?.id ?? "",
    });
    expect(reservation?.state).to.equal(ReservationState.HELD);
    const { payment: kept } = await payer.client.payment.getPayment({
      paymentId: payment?.id ?? "",
    });
    expect(kept?.id).to.equal(payment?.id);

    // The gate forgot the seats: a rival's attempts go to the database, which
    // refuses them (and the gate learns the seat's state again from it).
    const rival = must(fans.at(-1), "the first fan back in line");
    const check = await connectTestRedis(redis.url);
    cleanups.push(async () => check.destroy());
    expect(await check.exists(gateKey(holder.seatId)), "the gate forgot the held seat").to.equal(0);
    for (const seatId of [holder.seatId, payer.seatId]) {
      const attempt = await outcomeOf(() =>
        rival.client.reservation.holdSeat({ seatId, requestId: randomUUID() }),
      );
      expect(`${attempt.code} ${attempt.reason}`).to.equal("FailedPrecondition SEAT_UNAVAILABLE");
      expect(await check.exists(gateKey(seatId)), "the gate learnt the seat again").to.equal(1);
    }
    expect(server.logged("unexpected error"), "calls answered INTERNAL").to.deep.equal([]);
    await expectBoxOfficeInvariants(database.url);
    console.log(
      `      Redis without persistence restarted: ${fans.length} old tokens → ${JSON.stringify(
        tally(oldTokens),
      )}; re-issued in reverse: ${reissued.filter((r) => r.state === "ADMITTED").length} admitted, ` +
        `the rest at positions 1–${reissued.length - MAX_ACTIVE}; rows unchanged; gate entries gone, ` +
        `rival holds refused by the database (SEAT_UNAVAILABLE)`,
    );
  });
});

function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`expected ${what}`);
  return value;
}
