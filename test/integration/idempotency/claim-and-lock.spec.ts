import { randomUUID } from "node:crypto";
import { expect } from "chai";
import {
  claimRequestId,
  type IdempotentRequest,
} from "../../../server/src/modules/idempotency/index.js";
import { PaymentRepository } from "../../../server/src/modules/payments/payment.repository.js";
import { ReservationRepository } from "../../../server/src/modules/reservations/index.js";
import { WalletRepository } from "../../../server/src/modules/wallet/index.js";
import { TxConnection } from "../../../server/src/persistence/sql.js";
import { type Caller, must, ServiceHarness } from "../reservations/service-harness.js";

/**
 * The statements that claim a request id and take the request's row locks
 * in one round trip (holds, recharges, payments): what each locks, that a
 * replay locks nothing, and that the claim comes first, as in every other
 * transaction. Locks are observed from another connection with `FOR UPDATE
 * NOWAIT`, while the claiming transaction is still open.
 */
describe("claim-and-lock statements on PostgreSQL", () => {
  let h: ServiceHarness;

  before(async () => {
    h = await ServiceHarness.start();
  });
  after(async () => {
    await h?.close();
  });

  /** Whether another transaction holds the row lock of `table`'s row whose `column` is `value`. */
  async function locked(table: string, column: string, value: string): Promise<boolean> {
    try {
      const rows = await h.sql(`select 1 from ${table} where ${column} = $1 for update nowait`, [
        value,
      ]);
      expect(rows, `a ${table} row with ${column} ${value}`).to.have.length(1);
      return false;
    } catch (error) {
      if ((error as { code?: string }).code === "55P03") return true;
      throw error;
    }
  }

  /** Runs `work` in a transaction of its own that commits (MikroORM's, as the services' are). */
  function inTransaction<T>(work: (tx: TxConnection) => Promise<T>): Promise<T> {
    return h.orm.em.fork().transactional(async (em) => work(await TxConnection.of(em)));
  }

  function holdRequest(caller: Caller, seatId: string, requestId = randomUUID()) {
    return {
      userId: caller.principal.userId,
      requestId,
      operation: "hold",
      params: [seatId],
    } satisfies IdempotentRequest;
  }

  /** A hold's claim-and-lock statement, for a new result id, now. */
  function lockForHold(tx: TxConnection, request: IdempotentRequest, seatId: string) {
    return ReservationRepository.claimAndLockForHold(
      tx,
      request,
      randomUUID(),
      h.clock.now(),
      seatId,
    );
  }

  /** A payment's claim-and-lock statement, for a new result id, now. */
  function lockForPay(tx: TxConnection, request: IdempotentRequest, reservationId: string) {
    return PaymentRepository.claimAndLock(tx, request, randomUUID(), h.clock.now(), reservationId);
  }

  /** A caller holding a seat of their own, with `funds` on their wallet. */
  async function holder(funds = 0n): Promise<{ caller: Caller; reservationId: string }> {
    const caller = await h.admit(h.user("locker"));
    if (funds > 0n) {
      await h.services.wallet.recharge(caller.principal, {
        amount: funds,
        requestId: randomUUID(),
      });
    }
    const view = await h.services.reservations.hold(caller.principal, {
      seatId: h.takeSeat().id,
      requestId: randomUUID(),
    });
    return { caller, reservationId: view.reservation.id };
  }

  describe("a hold's", () => {
    it("locks the wanted seat of a caller who holds none", async () => {
      const caller = await h.admit(h.user("locker"));
      const seat = h.takeSeat();
      await inTransaction(async (tx) => {
        const claim = await lockForHold(tx, holdRequest(caller, seat.id), seat.id);
        expect(claim.kind).to.equal("claimed");
        if (claim.kind !== "claimed") return;
        expect(claim.locked.own).to.equal(null);
        expect(must(claim.locked.seat).seat.id).to.equal(seat.id);
        expect(await locked("seat", "id", seat.id)).to.equal(true);
      });
      expect(await locked("seat", "id", seat.id)).to.equal(false);
    });

    it("locks the caller's own hold and never the wanted seat when they hold one", async () => {
      const { caller, reservationId } = await holder();
      const wanted = h.takeSeat();
      await inTransaction(async (tx) => {
        const claim = await lockForHold(tx, holdRequest(caller, wanted.id), wanted.id);
        expect(claim.kind).to.equal("claimed");
        if (claim.kind !== "claimed") return;
        expect(must(claim.locked.own).id).to.equal(reservationId);
        expect(claim.locked.seat).to.equal(null);
        expect(await locked("reservation", "id", reservationId)).to.equal(true);
        expect(await locked("seat", "id", wanted.id)).to.equal(false);
      });
    });

    it("answers a seat another transaction has locked with no seat, without waiting", async () => {
      const caller = await h.admit(h.user("locker"));
      const seat = h.takeSeat();
      const client = await h.pool.connect();
      try {
        await client.query("begin");
        await client.query("select 1 from seat where id = $1 for update", [seat.id]);
        await inTransaction(async (tx) => {
          const claim = await lockForHold(tx, holdRequest(caller, seat.id), seat.id);
          expect(claim).to.deep.equal({ kind: "claimed", locked: { own: null, seat: null } });
        });
      } finally {
        await client.query("rollback");
        client.release();
      }
    });

    it("locks nothing on a replay", async () => {
      const { caller } = await holder();
      const wanted = h.takeSeat();
      const request = holdRequest(caller, wanted.id);
      const firstId = randomUUID();
      await inTransaction((tx) => claimRequestId(tx, request, firstId, h.clock.now()));
      await inTransaction(async (tx) => {
        const claim = await lockForHold(tx, request, wanted.id);
        expect(claim).to.deep.equal({ kind: "replay", resultId: firstId });
        expect(await locked("seat", "id", wanted.id)).to.equal(false);
        const [own] = await h.sql<{ id: string }>(
          "select id from reservation where user_id = $1 and status = 'HELD'",
          [caller.principal.userId],
        );
        expect(await locked("reservation", "id", must(own).id)).to.equal(false);
      });
    });

    it("takes the claim before any row lock: it waits on a claim in flight with the seat unlocked", async () => {
      const caller = await h.admit(h.user("locker"));
      const seat = h.takeSeat();
      const request = holdRequest(caller, seat.id);
      const firstId = randomUUID();
      let release = () => {};
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      let claimed = () => {};
      const claimedOnce = new Promise<void>((resolve) => {
        claimed = resolve;
      });
      const first = inTransaction(async (tx) => {
        await claimRequestId(tx, request, firstId, h.clock.now());
        claimed();
        await released;
      });
      await claimedOnce;
      const second = inTransaction((tx) => lockForHold(tx, request, seat.id));
      try {
        await h.untilAStatementWaitsForALock();
        expect(await locked("seat", "id", seat.id)).to.equal(false);
      } finally {
        release();
      }
      await first;
      expect(await second).to.deep.equal({ kind: "replay", resultId: firstId });
    });
  });

  describe("a payment's", () => {
    function payRequest(caller: Caller, reservationId: string): IdempotentRequest {
      return {
        userId: caller.principal.userId,
        requestId: randomUUID(),
        operation: "pay",
        params: [reservationId, 1n],
      };
    }

    it("locks the caller's held reservation, its seat and the caller's wallet", async () => {
      const { caller, reservationId } = await holder(500_000n);
      const [row] = await h.sql<{ seat_id: string }>(
        "select seat_id from reservation where id = $1",
        [reservationId],
      );
      const seatId = must(row).seat_id;
      await inTransaction(async (tx) => {
        const claim = await lockForPay(tx, payRequest(caller, reservationId), reservationId);
        expect(claim.kind).to.equal("claimed");
        if (claim.kind !== "claimed") return;
        expect(must(claim.locked.reservation).id).to.equal(reservationId);
        expect(must(claim.locked.seat).id).to.equal(seatId);
        expect(must(claim.locked.wallet).balance).to.equal(500_000n);
        expect(await locked("reservation", "id", reservationId)).to.equal(true);
        expect(await locked("seat", "id", seatId)).to.equal(true);
        expect(await locked("wallet", "user_id", caller.principal.userId)).to.equal(true);
      });
    });

    it("locks nothing of another user's reservation, and answers no reservation", async () => {
      const owner = await holder(500_000n);
      const other = await h.admit(h.user("locker"));
      await h.services.wallet.recharge(other.principal, { amount: 1000n, requestId: randomUUID() });
      await inTransaction(async (tx) => {
        const claim = await lockForPay(
          tx,
          payRequest(other, owner.reservationId),
          owner.reservationId,
        );
        expect(claim).to.deep.equal({
          kind: "claimed",
          locked: { reservation: null, seat: null, wallet: null },
        });
        expect(await locked("reservation", "id", owner.reservationId)).to.equal(false);
        expect(await locked("wallet", "user_id", other.principal.userId)).to.equal(false);
      });
    });

    it("locks neither seat nor wallet for a reservation that is no longer held", async () => {
      const { caller, reservationId } = await holder(500_000n);
      await h.services.reservations.release(caller.principal, {
        reservationId,
        requestId: randomUUID(),
      });
      await inTransaction(async (tx) => {
        const claim = await lockForPay(tx, payRequest(caller, reservationId), reservationId);
        expect(claim.kind).to.equal("claimed");
        if (claim.kind !== "claimed") return;
        expect(must(claim.locked.reservation).status).to.equal("RELEASED");
        expect(claim.locked.seat).to.equal(null);
        expect(claim.locked.wallet).to.equal(null);
        expect(await locked("wallet", "user_id", caller.principal.userId)).to.equal(false);
      });
    });

    it("locks nothing on a replay", async () => {
      const { caller, reservationId } = await holder(500_000n);
      const request = payRequest(caller, reservationId);
      const firstId = randomUUID();
      await inTransaction((tx) => claimRequestId(tx, request, firstId, h.clock.now()));
      await inTransaction(async (tx) => {
        const claim = await lockForPay(tx, request, reservationId);
        expect(claim).to.deep.equal({ kind: "replay", resultId: firstId });
        expect(await locked("reservation", "id", reservationId)).to.equal(false);
        expect(await locked("wallet", "user_id", caller.principal.userId)).to.equal(false);
      });
    });
  });

  describe("a recharge's", () => {
    function rechargeRequest(userId: string): IdempotentRequest {
      return { userId, requestId: randomUUID(), operation: "recharge", params: [1000n] };
    }

    it("creates a missing wallet and locks it, and locks an existing one", async () => {
      const userId = h.user("recharger");
      for (const expected of ["created", "existing"]) {
        await inTransaction(async (tx) => {
          const claim = await WalletRepository.claimAndLockOrCreate(
            tx,
            rechargeRequest(userId),
            randomUUID(),
            h.clock.now(),
          );
          expect(claim.kind, expected).to.equal("claimed");
          if (claim.kind !== "claimed") return;
          expect(claim.locked.userId).to.equal(userId);
          expect(claim.locked.balance).to.equal(0n);
          if (expected === "created") {
            // A row this transaction inserted is as good as locked: no one else sees it yet.
            expect(await h.sql("select 1 from wallet where user_id = $1", [userId])).to.have.length(
              0,
            );
          } else {
            expect(await locked("wallet", "user_id", userId)).to.equal(true);
          }
        });
      }
    });

    it("locks nothing on a replay, and creates no wallet", async () => {
      const userId = h.user("recharger");
      const request = rechargeRequest(userId);
      const firstId = randomUUID();
      await inTransaction((tx) => claimRequestId(tx, request, firstId, h.clock.now()));
      await inTransaction(async (tx) => {
        const claim = await WalletRepository.claimAndLockOrCreate(
          tx,
          request,
          randomUUID(),
          h.clock.now(),
        );
        expect(claim).to.deep.equal({ kind: "replay", resultId: firstId });
      });
      expect(await h.sql("select 1 from wallet where user_id = $1", [userId])).to.have.length(0);
    });
  });
});
