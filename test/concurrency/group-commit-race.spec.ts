import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import {
  type AdmittedUser,
  admitUser,
  describeError,
  expectRefusal,
  must,
  NO_USER_RATE_LIMITS,
  RACE_PROTOCOLS,
  raceSuite,
  requestId,
} from "./race-support.js";

/** Payers per race: enough writes in flight at once that group commit batches them. */
const PAYERS = 24;

/** A payer, the seat they hold, and whether their balance covers it. */
interface Payer {
  readonly user: AdmittedUser;
  readonly reservationId: string;
  readonly price: bigint;
  readonly funded: bigint;
  readonly canPay: boolean;
}

/**
 * Group commit puts the recharges and payments of different users in one
 * transaction, sends their statements together, and rolls the whole batch
 * back when one write is refused (the others run again). These races mix
 * refusals, replays and successes of many users at once, so batches carry
 * all three, and check that every caller got the outcome of their own rows
 * and that the books show exactly those outcomes.
 */
describe("concurrency: group commit of many users' payments and recharges", () => {
  const race = raceSuite({ env: NO_USER_RATE_LIMITS });

  for (const [index, protocol] of RACE_PROTOCOLS.entries()) {
    it(`${PAYERS} users over ${protocol}, every other one too poor, each paying twice with one request id while topping up: each gets their own outcome`, async () => {
      const seats = (await race.db.seats()).filter((seat) => seat.dateIndex === index);
      const payers: Payer[] = await Promise.all(
        Array.from({ length: PAYERS }, async (_, i): Promise<Payer> => {
          const seat = must(seats[i], `seat ${i} of date ${index}`);
          const user = await admitUser(race.server, protocol, `batch-race-${i}`);
          const canPay = i % 2 === 0;
          // The top-up below adds 1: still 99 short for those who cannot pay.
          const funded = canPay ? seat.price : seat.price - 100n;
          await user.client.wallet.rechargeWallet({ amount: funded, requestId: requestId() });
          const { reservation } = await user.client.reservation.holdSeat({
            seatId: seat.id,
            requestId: requestId(),
          });
          const reservationId = must(reservation, "the hold").id;
          return { user, reservationId, price: seat.price, funded, canPay };
        }),
      );

      // Everything at once: two payments sharing a request id, and a top-up, per user.
      const sent = payers.map((payer) => {
        const pay = {
          reservationId: payer.reservationId,
          amount: payer.price,
          requestId: requestId(),
        };
        return {
          payer,
          payments: Promise.allSettled([
            payer.user.client.payment.createPayment(pay),
            payer.user.client.payment.createPayment(pay),
          ]),
          topUp: payer.user.client.wallet.rechargeWallet({ amount: 1n, requestId: requestId() }),
          requestId: pay.requestId,
        };
      });

      for (const { payer, payments, topUp, requestId: payRequest } of sent) {
        const who = `${payer.user.userId} (${payer.canPay ? "can pay" : "too poor"})`;
        await topUp.catch((error: unknown) =>
          expect.fail(`${who}: top-up ${describeError(error)}`),
        );
        const [first, second] = await payments;
        const [wallet] = await race.db.query<{ balance: string }>(
          "select balance::text as balance from wallet where user_id = $1",
          [payer.user.userId],
        );
        const rows = await race.db.query<{ id: string }>(
          "select id from payment where reservation_id = $1",
          [payer.reservationId],
        );
        const [reservation] = await race.db.query<{ status: string }>(
          "select status from reservation where id = $1",
          [payer.reservationId],
        );
        const claims = await race.db.query<{ result_id: string }>(
          "select result_id from idempotency_key where user_id = $1 and request_id = $2",
          [payer.user.userId, payRequest],
        );
        if (payer.canPay) {
          if (first?.status !== "fulfilled" || second?.status !== "fulfilled") {
            const failed = [first, second].find((o) => o?.status === "rejected");
            expect.fail(`${who}: ${describeError((failed as PromiseRejectedResult).reason)}`);
          }
          const id = must(first.value.payment, "the payment").id;
          expect(must(second.value.payment, "the replay").id, who).to.equal(id);
          expect(
            rows.map((row) => row.id),
            who,
          ).to.deep.equal([id]);
          expect(
            claims.map((claim) => claim.result_id),
            who,
          ).to.deep.equal([id]);
          expect(reservation?.status, who).to.equal("CONFIRMED");
          expect(BigInt(must(wallet).balance), who).to.equal(payer.funded + 1n - payer.price);
        } else {
          for (const outcome of [first, second]) {
            expect(outcome?.status, who).to.equal("rejected");
            const reason = (outcome as PromiseRejectedResult).reason;
            expect(reason, who).to.be.instanceOf(ConnectError);
            expectRefusal(reason, Code.FailedPrecondition, ["INSUFFICIENT_BALANCE"], `${who}: `);
          }
          // A refusal changed nothing: no payment, the hold as it was, the request id unused.
          expect(rows, who).to.deep.equal([]);
          expect(claims, who).to.deep.equal([]);
          expect(reservation?.status, who).to.equal("HELD");
          expect(BigInt(must(wallet).balance), who).to.equal(payer.funded + 1n);
        }
      }
    });
  }
});
