import { createHash, randomBytes } from "node:crypto";
import { type Client, Code, createClient } from "@connectrpc/connect";
import { AdminService, LedgerEntryKind } from "@stagedoor/sdk";
import { expect } from "chai";
import { bearer, clientFor, type Protocol, transportFor } from "../support/clients.js";
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

const OPS_KEY = randomBytes(24).toString("base64url");
const SUPPORT_KEY = randomBytes(24).toString("base64url");
const entry = (name: string, key: string) =>
  `${name}:${createHash("sha256").update(key).digest("hex")}`;

const STARTING_BALANCE = 1_000_000n;

describe("concurrency: refunds", () => {
  const race = raceSuite({
    env: {
      ADMIN_API_KEYS: `${entry("ops", OPS_KEY)},${entry("support", SUPPORT_KEY)}`,
      ...NO_USER_RATE_LIMITS,
    },
  });

  function admin(protocol: Protocol, key: string): Client<typeof AdminService> {
    return createClient(AdminService, transportFor(protocol, race.server.url, [bearer(key)]));
  }

  /** An admitted, funded user who bought `seat`. */
  async function buyer(
    protocol: Protocol,
    label: string,
    seat: SeatRow,
  ): Promise<{ user: AdmittedUser; reservationId: string }> {
    const user = await admitUser(race.server, protocol, label);
    await user.client.wallet.rechargeWallet({ amount: STARTING_BALANCE, requestId: requestId() });
    const { reservation } = await user.client.reservation.holdSeat({
      seatId: seat.id,
      requestId: requestId(),
    });
    const reservationId = must(reservation, "the hold").id;
    await user.client.payment.createPayment({
      reservationId,
      amount: seat.price,
      requestId: requestId(),
    });
    return { user, reservationId };
  }

  async function balanceOf(userId: string): Promise<bigint> {
    const [row] = await race.db.query<{ balance: string }>(
      "select balance::text as balance from wallet where user_id = $1",
      [userId],
    );
    return BigInt(must(row, "wallet").balance);
  }

  for (const [index, protocol] of RACE_PROTOCOLS.entries()) {
    it(`30 refunds of one ticket by two operators over ${protocol}, racing the buyer's recharges: paid back once`, async () => {
      const seat = await race.db.seat(2, 1 + index);
      const { user, reservationId } = await buyer(protocol, `refund-race-${protocol}`, seat);
      const ops = admin(protocol, OPS_KEY);
      const support = admin(protocol, SUPPORT_KEY);
      const shared = requestId();
      const results = await Promise.allSettled([
        // Ten retries of one request, twenty requests of their own.
        ...Array.from({ length: 10 }, () =>
          ops.refundTicket({ reservationId, requestId: shared, note: "retry" }),
        ),
        ...Array.from({ length: 20 }, (_, i) =>
          (i % 2 === 0 ? ops : support).refundTicket({
            reservationId,
            requestId: requestId(),
            note: "",
          }),
        ),
        ...Array.from({ length: 10 }, () =>
          user.client.wallet.rechargeWallet({ amount: 1000n, requestId: requestId() }),
        ),
      ]);
      const refunds = results.slice(0, 30);
      const { fulfilled, rejected } = partition(refunds);
      for (const error of rejected) {
        expectRefusal(error, Code.FailedPrecondition, ["ALREADY_REFUNDED"], "refund: ");
      }
      // Every success is the one refund: the same ledger entry.
      const entryIds = new Set(fulfilled.map((r) => must(r.entry, "entry").id));
      expect(entryIds.size, "distinct refunds").to.equal(1);
      expect(partition(results.slice(30)).rejected.map(describeError)).to.deep.equal([]);

      const refundsInLedger = await race.db.query<{ amount: string }>(
        "select amount::text as amount from ledger_entry where user_id = $1 and kind = 'REFUND'",
        [user.userId],
      );
      expect(refundsInLedger.map((r) => BigInt(r.amount))).to.deep.equal([seat.price]);
      expect(await balanceOf(user.userId)).to.equal(STARTING_BALANCE + 10n * 1000n);
      const audits = await race.db.query<{ n: number }>(
        "select count(*)::int as n from admin_audit where target = $1",
        [`reservation/${reservationId}`],
      );
      expect(must(audits[0]).n).to.equal(1);
    });

    it(`a refund racing 10 fans trying to buy the seat over ${protocol}: the seat is sold exactly once more`, async () => {
      const seat = await race.db.seat(2, 11 + index);
      const { reservationId } = await buyer(protocol, `refund-resale-${protocol}`, seat);
      const fans = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          admitUser(race.server, protocol, `resale-${protocol}-${i}`),
        ),
      );
      await Promise.all(
        fans.map((fan) =>
          fan.client.wallet.rechargeWallet({ amount: STARTING_BALANCE, requestId: requestId() }),
        ),
      );
      let refundDone = false;
      const attempt = async (fan: AdmittedUser) => {
        // Keep trying while the refund is in flight; once it has committed,
        // the seat is free until one fan holds it, so a refusal then means
        // another fan has it. A loser is refused, never charged.
        for (let tries = 0; tries < 1000; tries++) {
          const afterRefund = refundDone;
          try {
            const { reservation } = await fan.client.reservation.holdSeat({
              seatId: seat.id,
              requestId: requestId(),
            });
            const id = must(reservation).id;
            await fan.client.payment.createPayment({
              reservationId: id,
              amount: seat.price,
              requestId: requestId(),
            });
            return fan.userId;
          } catch (error) {
            expectRefusal(error, Code.FailedPrecondition, ["SEAT_UNAVAILABLE"], "resale: ");
            if (afterRefund) return undefined;
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        }
        throw new Error(`${fan.userId} never saw the refund`);
      };
      const refunding = admin(protocol, OPS_KEY)
        .refundTicket({ reservationId, requestId: requestId(), note: "" })
        .finally(() => {
          refundDone = true;
        });
      const [refund, ...buyers] = await Promise.allSettled([refunding, ...fans.map(attempt)]);
      expect(
        refund?.status,
        refund?.status === "rejected" ? describeError(refund.reason) : "",
      ).to.equal("fulfilled");
      const { fulfilled, rejected } = partition(buyers);
      expect(rejected.map(describeError)).to.deep.equal([]);
      const winners = fulfilled.filter((userId) => userId !== undefined);
      expect(winners.length, "fans who bought the seat").to.equal(1);
      const confirmed = await race.db.query<{ user_id: string }>(
        "select user_id from reservation where seat_id = $1 and status = 'CONFIRMED'",
        [seat.id],
      );
      expect(confirmed.map((r) => r.user_id)).to.deep.equal(winners);
      // Only the winner paid; every other fan still has the whole recharge.
      for (const fan of fans) {
        const expected = winners.includes(fan.userId)
          ? STARTING_BALANCE - seat.price
          : STARTING_BALANCE;
        expect(await balanceOf(fan.userId), fan.userId).to.equal(expected);
      }
    });
  }

  it("refunds of one user's tickets racing that user's next payment: money conserved", async () => {
    const protocol = "grpc";
    const first = await race.db.seat(2, 21);
    const second = await race.db.seat(2, 22);
    const { user, reservationId } = await buyer(protocol, "refund-vs-pay", first);
    // Paying ended the first admission; the user lines up again.
    const { token } = await clientFor(protocol, race.server.url).queue.issueQueueToken({
      concertId: race.server.concertId,
      userId: user.userId,
    });
    const again = clientFor(protocol, race.server.url, token);
    const { reservation } = await again.reservation.holdSeat({
      seatId: second.id,
      requestId: requestId(),
    });
    const held = must(reservation).id;
    const [refunded, paid] = await Promise.allSettled([
      admin(protocol, OPS_KEY).refundTicket({ reservationId, requestId: requestId(), note: "" }),
      again.payment.createPayment({
        reservationId: held,
        amount: second.price,
        requestId: requestId(),
      }),
    ]);
    expect(refunded.status).to.equal("fulfilled");
    expect(paid.status).to.equal("fulfilled");
    expect(await balanceOf(user.userId)).to.equal(STARTING_BALANCE - second.price);
    const { entries } = await again.wallet.listLedgerEntries({});
    expect(entries.map((e) => e.kind).sort()).to.deep.equal(
      [
        LedgerEntryKind.RECHARGE,
        LedgerEntryKind.PAYMENT,
        LedgerEntryKind.PAYMENT,
        LedgerEntryKind.REFUND,
      ].sort(),
    );
  });
});
