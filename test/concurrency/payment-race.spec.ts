import { Code } from "@connectrpc/connect";
import { PaymentState, ReservationState } from "@stagedoor/sdk";
import { expect } from "chai";
import {
  type AdmittedUser,
  admitUser,
  describeError,
  expectRefusal,
  must,
  NO_USER_RATE_LIMITS,
  partition,
  RACE_PROTOCOLS,
  raceSuite,
  requestId,
  type SeatRow,
} from "./race-support.js";

/** Enough for several payments, so a double charge would succeed and show in the balance. */
const STARTING_BALANCE = 1_000_000n;

describe("concurrency: payments", () => {
  const race = raceSuite({ env: NO_USER_RATE_LIMITS });

  /** An admitted user with a funded wallet and a hold on the given seat. */
  async function holder(
    protocol: (typeof RACE_PROTOCOLS)[number],
    label: string,
    seat: SeatRow,
  ): Promise<{ user: AdmittedUser; reservationId: string }> {
    const user = await admitUser(race.server, protocol, label);
    await user.client.wallet.rechargeWallet({ amount: STARTING_BALANCE, requestId: requestId() });
    const { reservation } = await user.client.reservation.holdSeat({
      seatId: seat.id,
      requestId: requestId(),
    });
    return { user, reservationId: must(reservation, "the hold").id };
  }

  /** The rows money left behind for one user and reservation. */
  async function moneyRows(userId: string, reservationId: string) {
    const payments = await race.db.query<{ id: string; amount: string }>(
      "select id, amount::text as amount from payment where reservation_id = $1",
      [reservationId],
    );
    const debits = await race.db.query<{ payment_id: string; amount: string }>(
      `select payment_id, amount::text as amount from ledger_entry
        where user_id = $1 and kind = 'PAYMENT'`,
      [userId],
    );
    const [wallet] = await race.db.query<{ balance: string }>(
      "select balance::text as balance from wallet where user_id = $1",
      [userId],
    );
    const [reservation] = await race.db.query<{ status: string }>(
      "select status from reservation where id = $1",
      [reservationId],
    );
    return { payments, debits, balance: BigInt(must(wallet, "wallet").balance), reservation };
  }

  for (const [index, protocol] of RACE_PROTOCOLS.entries()) {
    it(`a payment racing 30 recharges of the same wallet over ${protocol}: balance = ledger`, async () => {
      const seat = await race.db.seat(0, 21 + index);
      const user = await admitUser(race.server, protocol, `pay-vs-recharge-${protocol}`);
      // One short of the price: whether the payment goes through depends on
      // which recharges it follows, and both endings must leave the books right.
      const start = seat.price - 1n;
      await user.client.wallet.rechargeWallet({ amount: start, requestId: requestId() });
      const { reservation } = await user.client.reservation.holdSeat({
        seatId: seat.id,
        requestId: requestId(),
      });
      const reservationId = must(reservation, "the hold").id;
      const amounts = Array.from({ length: 30 }, (_, i) => BigInt(1 + i));

      // All sent at once; the payment first.
      const paying = user.client.payment.createPayment({
        reservationId,
        amount: seat.price,
        requestId: requestId(),
      });
      const recharging = amounts.map((amount) =>
        user.client.wallet.rechargeWallet({ amount, requestId: requestId() }),
      );
      const [paid] = await Promise.allSettled([paying]);
      const recharges = await Promise.allSettled(recharging);

      const { rejected } = partition(recharges);
      expect(rejected.map(describeError), "failed recharges").to.deep.equal([]);
      const added = amounts.reduce((sum, amount) => sum + amount, 0n);
      const rows = await moneyRows(user.userId, reservationId);
      const outcome = must(paid);
      if (outcome.status === "fulfilled") {
        expect(rows.balance).to.equal(start + added - seat.price);
        expect(rows.payments).to.have.length(1);
        expect(rows.reservation).to.deep.equal({ status: "CONFIRMED" });
      } else {
        expectRefusal(outcome.reason, Code.FailedPrecondition, ["INSUFFICIENT_BALANCE"]);
        expect(rows.balance).to.equal(start + added);
        expect(rows.payments).to.deep.equal([]);
        expect(rows.reservation).to.deep.equal({ status: "HELD" });
      }
      // The versions of the wallet's changes are gapless (also checked after each test).
      const versions = await race.db.query<{ wallet_version: number }>(
        "select wallet_version from ledger_entry where user_id = $1 order by wallet_version",
        [user.userId],
      );
      expect(versions.map((row) => row.wallet_version)).to.deep.equal(
        Array.from({ length: rows.payments.length + 31 }, (_, i) => i + 1),
      );
    });

    it(`50 payments of one reservation with 50 request ids over ${protocol}: one charge`, async () => {
      const seat = await race.db.seat(0, 1 + index);
      const { user, reservationId } = await holder(protocol, `pay-many-ids-${protocol}`, seat);

      const results = await Promise.allSettled(
        Array.from({ length: 50 }, () =>
          user.client.payment.createPayment({
            reservationId,
            amount: seat.price,
            requestId: requestId(),
          }),
        ),
      );

      const { fulfilled, rejected } = partition(results);
      expect(fulfilled.length, "successful payments").to.be.at.least(1);
      // A success beyond the first may only be the same payment answered again.
      const paymentIds = new Set(fulfilled.map((res) => must(res.payment, "payment").id));
      expect(paymentIds.size, "distinct payment ids").to.equal(1);
      for (const error of rejected) {
        expectRefusal(error, Code.FailedPrecondition, ["ALREADY_PAID"]);
      }

      const [paymentId] = [...paymentIds];
      const rows = await moneyRows(user.userId, reservationId);
      expect(rows.payments).to.deep.equal([{ id: paymentId, amount: String(seat.price) }]);
      expect(rows.debits).to.deep.equal([{ payment_id: paymentId, amount: String(-seat.price) }]);
      expect(rows.balance).to.equal(STARTING_BALANCE - seat.price);
      expect(rows.reservation).to.deep.equal({ status: "CONFIRMED" });
    });

    it(`50 payments sharing one request id over ${protocol}: all get the one payment`, async () => {
      const seat = await race.db.seat(0, 11 + index);
      const { user, reservationId } = await holder(protocol, `pay-one-id-${protocol}`, seat);
      const sharedRequestId = requestId();

      const results = await Promise.allSettled(
        Array.from({ length: 50 }, () =>
          user.client.payment.createPayment({
            reservationId,
            amount: seat.price,
            requestId: sharedRequestId,
          }),
        ),
      );

      const { fulfilled, rejected } = partition(results);
      expect(rejected.map(describeError), "failed replays").to.deep.equal([]);
      expect(fulfilled).to.have.length(50);
      const payments = fulfilled.map((res) => must(res.payment, "payment"));
      const paymentId = must(payments[0], "first payment").id;
      for (const [i, payment] of payments.entries()) {
        expect(payment.id, `payment id of call ${i}`).to.equal(paymentId);
        expect(payment.amount).to.equal(seat.price);
        expect(payment.state).to.equal(PaymentState.COMPLETED);
        expect(fulfilled[i]?.reservation?.state).to.equal(ReservationState.CONFIRMED);
      }

      const rows = await moneyRows(user.userId, reservationId);
      expect(rows.payments).to.deep.equal([{ id: paymentId, amount: String(seat.price) }]);
      expect(rows.debits).to.deep.equal([{ payment_id: paymentId, amount: String(-seat.price) }]);
      expect(rows.balance).to.equal(STARTING_BALANCE - seat.price);
      expect(rows.reservation).to.deep.equal({ status: "CONFIRMED" });
    });
  }
});
