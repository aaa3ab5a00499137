import { randomBytes, randomInt, randomUUID } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { QueueTokenState, type StagedoorClient } from "@stagedoor/sdk";
import { expect } from "chai";
import { clientFor } from "../support/clients.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { deleteKeys, reportRedisSkipped, testRedisUrl, uniqueKeyPrefix } from "../support/redis.js";
import {
  type CallOutcome,
  outcomeOf,
  ServerProcess,
  START_MS,
  sleep,
  tally,
  waitFor,
} from "./fault-kit.js";
import { expectBoxOfficeInvariants, moneyOf } from "./invariants.js";

/**
 * kill -9 of a server process in the middle of a stream of payments: every
 * payment is committed once or not at all, a retry with the same request id
 * against a fresh process returns the first result or a clean refusal, and
 * the seat of an unpaid hold frees at its held_until (not before, and by
 * itself).
 */

const HOLD_TTL_SECONDS = 5;
const PAYERS = 40;
const IDLE_HOLDERS = 2;
const WORKERS = 8;
/** The kill lands once this many payments were answered OK. */
const KILL_AFTER = 12;
const TOP_UP = 200_000n;

interface Fan {
  readonly userId: string;
  readonly token: string;
  readonly client: StagedoorClient;
  seatId: string;
  price: bigint;
  reservationId?: string;
  heldUntil?: number;
  payRequestId?: string;
  /** How the payment ended on the killed server. */
  first?: CallOutcome & { paymentId?: string };
  /** How the retry ended on the fresh server. */
  retry?: CallOutcome & { paymentId?: string; createdAt?: number };
}

describe("fault: kill -9 of a server in the middle of a stream of payments", function () {
  if (!testRedisUrl) {
    reportRedisSkipped("fault: kill -9 during payments");
    return;
  }
  const redisUrl = testRedisUrl;
  this.timeout(3 * START_MS + 60_000);
  const keyPrefix = uniqueKeyPrefix();
  let database: TestDatabase | undefined;
  const servers: ServerProcess[] = [];

  after(async () => {
    for (const server of servers) await server.kill();
    await database?.drop();
    await deleteKeys(redisUrl, keyPrefix);
  });

  it("commits each payment once or not at all, replays it on a fresh process, and frees unpaid seats at held_until", async () => {
    database = await createTestDatabase();
    // Both processes share the database, the Redis prefix and the token
    // secret, as two lives of one instance do.
    const env = {
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: keyPrefix,
      TOKEN_SECRET: randomBytes(32).toString("hex"),
      HOLD_TTL_SECONDS: String(HOLD_TTL_SECONDS),
      QUEUE_MAX_ACTIVE: "500",
      DB_POOL_MAX: "4",
    };
    const first = await ServerProcess.start(env);
    servers.push(first);
    const anonymous = clientFor("connect", first.url);
    const concertId = (await anonymous.catalog.listConcerts({})).concerts[0]?.id ?? "";
    const { dates } = await anonymous.catalog.listConcertDates({ concertId });
    const { seats } = await anonymous.catalog.listAvailableSeats({
      concertDateId: dates[0]?.id ?? "",
      pageSize: 100,
    });
    expect(seats.length).to.be.at.least(PAYERS + IDLE_HOLDERS);

    // Fans: admitted, topped up, each with a seat of their own to hold.
    const fans: Fan[] = [];
    for (let i = 0; i < PAYERS + IDLE_HOLDERS; i++) {
      const userId = `kill-${i}-${randomUUID().slice(0, 8)}`;
      const issued = await anonymous.queue.issueQueueToken({ concertId, userId });
      expect(issued.status?.state).to.equal(QueueTokenState.ADMITTED);
      const client = clientFor("connect", first.url, issued.token);
      await client.wallet.rechargeWallet({ amount: TOP_UP, requestId: randomUUID() });
      const seat = seats[i];
      fans.push({
        userId,
        token: issued.token,
        client,
        seatId: seat?.id ?? "",
        price: seat?.price ?? 0n,
      });
    }
    const hold = async (fan: Fan) => {
      const { reservation } = await fan.client.reservation.holdSeat({
        seatId: fan.seatId,
        requestId: randomUUID(),
      });
      fan.reservationId = reservation?.id;
      const until = reservation?.holdExpireTime;
      fan.heldUntil = until ? timestampDate(until).getTime() : 0;
    };
    // Holds first (one burst), so that the stream itself is payments only.
    await Promise.all(fans.map(hold));
    const payers = fans.slice(0, PAYERS);
    const idle = fans.slice(PAYERS);

    // The stream: WORKERS payments in flight at any time, and kill -9 as
    // soon as KILL_AFTER of them were answered.
    let answered = 0;
    let killedAt = 0;
    let killing: Promise<void> | undefined;
    let killed = false;
    let next = 0;
    const worker = async () => {
      while (!killed && next < payers.length) {
        const fan = payers[next++];
        if (fan === undefined) break;
        const requestId = randomUUID();
        fan.payRequestId = requestId;
        let paymentId: string | undefined;
        const outcome = await outcomeOf(async () => {
          const paid = await fan.client.payment.createPayment({
            reservationId: fan.reservationId ?? "",
            amount: fan.price,
            requestId,
          });
          paymentId = paid.payment?.id;
        });
        fan.first = { ...outcome, paymentId };
        if (outcome.code === "OK" && ++answered === KILL_AFTER) {
          // A few milliseconds later, so that the kill finds payments in
          // every phase (on the wire, in the transaction, committed).
          killing ??= (async () => {
            await sleep(randomInt(0, 30));
            killedAt = Date.now();
            killed = true;
            await first.kill();
          })();
        }
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, worker));
    // Had the stream ended first (it must not), the report below says why.
    killing ??= first.kill();
    await killing;

    const attempted = payers.filter((fan) => fan.first !== undefined);
    const toldPaid = attempted.filter((fan) => fan.first?.code === "OK");
    const unknown = attempted.filter((fan) => fan.first?.code !== "OK");
    const neverSent = payers.filter((fan) => fan.first === undefined);
    const report = {
      attempted: attempted.length,
      answeredOk: toldPaid.length,
      inFlightAtKill: unknown.length,
      inFlightCodes: tally(unknown.flatMap((fan) => (fan.first ? [fan.first] : []))),
      neverSent: neverSent.length,
    };
    expect(toldPaid.length, JSON.stringify(report)).to.be.at.least(KILL_AFTER);

    // A fresh process on the same database and Redis.
    const second = await ServerProcess.start(env);
    servers.push(second);
    const restartedMs = Date.now() - killedAt;

    // Every hold left unpaid frees at its held_until: a rival's hold is
    // refused before it, and succeeds after it without anyone's help. Those
    // never paid for are watched from now on, while the retries run.
    const anonymous2 = clientFor("connect", second.url);
    const refusedBefore: string[] = [];
    const freedAfterMs: number[] = [];
    let rivals = 0;
    const freesAtHeldUntil = async (fan: Fan) => {
      const userId = `rival-${rivals++}-${randomUUID().slice(0, 8)}`;
      const issued = await anonymous2.queue.issueQueueToken({ concertId, userId });
      const rival = clientFor("connect", second.url, issued.token);
      const heldUntil = fan.heldUntil ?? 0;
      await waitFor(
        async () => {
          const attempt = await outcomeOf(() =>
            rival.reservation.holdSeat({ seatId: fan.seatId, requestId: randomUUID() }),
          );
          const at = Date.now();
          if (attempt.code === "OK") {
            expect(at, `${fan.userId}'s seat freed before its held_until`).to.be.at.least(
              heldUntil,
            );
            freedAfterMs.push(at - heldUntil);
            return true;
          }
          expect(attempt.reason, attempt.message).to.equal("SEAT_UNAVAILABLE");
          refusedBefore.push(fan.userId);
          return undefined;
        },
        HOLD_TTL_SECONDS * 1000 + 30_000,
        `${fan.userId}'s unpaid seat to free`,
        250,
      );
    };
    const watching = Promise.all([...neverSent, ...idle].map(freesAtHeldUntil));
    // Awaited below; a failure meanwhile must not surface as an unhandled rejection.
    watching.catch(() => undefined);

    // Every attempted payment retried with its own request id: half of those
    // the kill left in flight only once their hold has ended, so that one
    // that never committed meets a hold that is gone.
    const late = unknown.filter((_, i) => i % 2 === 1);
    const retry = async (fan: Fan) => {
      const client = clientFor("connect", second.url, fan.token);
      let paymentId: string | undefined;
      let createdAt: number | undefined;
      const outcome = await outcomeOf(async () => {
        const paid = await client.payment.createPayment({
          reservationId: fan.reservationId ?? "",
          amount: fan.price,
          requestId: fan.payRequestId ?? "",
        });
        paymentId = paid.payment?.id;
        const created = paid.payment?.createTime;
        createdAt = created ? timestampDate(created).getTime() : undefined;
      });
      fan.retry = { ...outcome, paymentId, createdAt };
    };
    for (const fan of attempted.filter((f) => !late.includes(f))) await retry(fan);
    await sleep(Math.max(0, ...late.map((fan) => (fan.heldUntil ?? 0) + 250 - Date.now())));
    for (const fan of late) await retry(fan);
    for (const fan of toldPaid) {
      // The first result, exactly.
      expect(fan.retry?.code, `${fan.userId}: ${fan.retry?.message}`).to.equal("OK");
      expect(fan.retry?.paymentId).to.equal(fan.first?.paymentId);
    }
    for (const fan of unknown) {
      // Whatever the kill left: the payment committed (replayed now) or a
      // clean, typed refusal; never an internal error.
      const retry = fan.retry;
      expect(retry?.code, `${fan.userId}: ${retry?.message}`).to.not.be.oneOf([
        "Internal",
        "Unknown",
      ]);
      if (retry?.code !== "OK") {
        expect(retry?.reason, `${fan.userId}: a refusal carries an ErrorInfo reason`).to.be.a(
          "string",
        );
      }
    }

    // Committed once or not at all, checked on the rows.
    const money = await moneyOf(
      database.url,
      fans.map((fan) => fan.userId),
    );
    for (const fan of fans) {
      const facts = money.get(fan.userId);
      const paid = fan.retry?.code === "OK";
      expect(facts?.payments.length, `${fan.userId}'s payments`).to.equal(paid ? 1 : 0);
      if (paid) expect(facts?.payments[0]).to.equal(fan.retry?.paymentId);
      expect(facts?.paymentEntries, `${fan.userId}'s PAYMENT entries`).to.equal(paid ? 1 : 0);
      expect(facts?.balance, `${fan.userId}'s balance`).to.equal(TOP_UP - (paid ? fan.price : 0n));
      expect(facts?.ledgerSum, `${fan.userId}'s ledger`).to.equal(facts?.balance);
    }
    await expectBoxOfficeInvariants(database.url);

    // The holds the kill left unpaid for good, retried or not, free too.
    const refused = unknown.filter((fan) => fan.retry?.code !== "OK");
    await Promise.all([watching, ...refused.map(freesAtHeldUntil)]);
    await expectBoxOfficeInvariants(database.url);

    const retried = {
      replayedSameResult: toldPaid.length,
      // The kill came after their commit: the retry replayed it.
      inFlightCommittedBeforeKill: unknown.filter(
        (fan) => fan.retry?.code === "OK" && (fan.retry.createdAt ?? 0) < killedAt,
      ).length,
      // The kill came before: the retry paid (the hold was still live).
      inFlightPaidByRetry: unknown.filter(
        (fan) => fan.retry?.code === "OK" && (fan.retry.createdAt ?? 0) >= killedAt,
      ).length,
      inFlightRefused: tally(
        unknown.flatMap((fan) => (fan.retry && fan.retry.code !== "OK" ? [fan.retry] : [])),
      ),
    };
    console.log(
      `      kill -9: ${JSON.stringify(report)}; fresh process serving ${restartedMs} ms after the kill; ` +
        `retries: ${JSON.stringify(retried)}; ${freedAfterMs.length} unpaid holds (${idle.length} never paid on purpose) ` +
        `freed ${Math.min(...freedAfterMs)}–${Math.max(...freedAfterMs)} ms after held_until, ` +
        `${new Set(refusedBefore).size} of them seen refused before`,
    );
  });
});
