import { expect } from "chai";
import { createLogger } from "../../../server/src/logger.js";
import { CatalogService } from "../../../server/src/modules/catalog/index.js";
import { PaymentsService, type SaleRecorder } from "../../../server/src/modules/payments/index.js";
import {
  type GateDate,
  type SeatChange,
  type SeatGate,
  SeatGateWriter,
} from "../../../server/src/modules/queue/index.js";
import type { ReservationView } from "../../../server/src/modules/reservations/reservations.service.js";
import {
  type Caller,
  type DemoSeat,
  expectDomainError,
  expectLedgerMatchesBalances,
  moneySnapshot,
  must,
  ServiceHarness,
} from "../reservations/service-harness.js";

const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";

interface Held {
  readonly caller: Caller;
  readonly seat: DemoSeat;
  readonly view: ReservationView;
}

describe("PaymentsService on PostgreSQL", () => {
  let h: ServiceHarness;
  let requests = 0;

  before(async () => {
    h = await ServiceHarness.start();
  });
  afterEach(async () => {
    await expectLedgerMatchesBalances(h);
  });
  after(async () => {
    await h?.close();
  });

  function requestId(): string {
    requests += 1;
    return `req-${requests}`;
  }

  /** An admitted user holding a fresh demo seat, with `funds` in their wallet (none when 0). */
  async function holding(label: string, funds: bigint): Promise<Held> {
    const caller = await h.admit(h.user(label));
    const seat = h.takeSeat();
    if (funds > 0n) {
      await h.services.wallet.recharge(caller.principal, { amount: funds, requestId: requestId() });
    }
    const view = await h.services.reservations.hold(caller.principal, {
      seatId: seat.id,
      requestId: requestId(),
    });
    return { caller, seat, view };
  }

  function pay(caller: Caller, reservationId: string, amount: bigint, id = requestId()) {
    return h.services.payments.pay(caller.principal, { reservationId, amount, requestId: id });
  }

  async function reservationState(id: string) {
    const [row] = await h.sql<{ status: string; confirmed_at: Date | null; ended_at: Date | null }>(
      "select status, confirmed_at, ended_at from reservation where id = $1",
      [id],
    );
    return must(row);
  }

  async function seatState(id: string) {
    const [row] = await h.sql<{
      status: string;
      held_until: Date | null;
      reservation_id: string | null;
    }>("select status, held_until, reservation_id from seat where id = $1", [id]);
    return must(row);
  }

  it("pays a hold: exact debit, payment and ledger rows, confirmed reservation, sold seat, ended admission", async () => {
    const { caller, seat, view } = await holding("payer", 200_000n);
    const userId = caller.principal.userId;
    const now = h.clock.now();
    const result = await pay(caller, view.reservation.id, seat.price, "pay-1");

    expect({ ...result.payment }).to.deep.equal({
      id: result.payment.id,
      status: "COMPLETED",
      userId,
      reservationId: view.reservation.id,
      amount: seat.price,
      createdAt: now,
      refundedAt: null,
    });
    expect(result.reservation.state).to.equal("CONFIRMED");

    const [wallet] = await h.sql<{ balance: string; version: number }>(
      "select balance::text, version from wallet where user_id = $1",
      [userId],
    );
    expect(wallet).to.deep.equal({ balance: String(200_000n - seat.price), version: 2 });
    const payments = await h.sql(
      "select id, user_id, reservation_id, amount::text, status, created_at from payment where user_id = $1",
      [userId],
    );
    expect(payments).to.deep.equal([
      {
        id: result.payment.id,
        user_id: userId,
        reservation_id: view.reservation.id,
        amount: String(seat.price),
        status: "COMPLETED",
        created_at: now,
      },
    ]);
    const ledger = await h.sql(
      `select kind, amount::text, balance_after::text, wallet_version, payment_id
         from ledger_entry where user_id = $1 order by wallet_version`,
      [userId],
    );
    expect(ledger).to.deep.equal([
      {
        kind: "RECHARGE",
        amount: "200000",
        balance_after: "200000",
        wallet_version: 1,
        payment_id: null,
      },
      {
        kind: "PAYMENT",
        amount: String(-seat.price),
        balance_after: String(200_000n - seat.price),
        wallet_version: 2,
        payment_id: result.payment.id,
      },
    ]);
    expect(await reservationState(view.reservation.id)).to.deep.equal({
      status: "CONFIRMED",
      confirmed_at: now,
      ended_at: now,
    });
    expect(await seatState(seat.id)).to.deep.equal({
      status: "SOLD",
      held_until: null,
      reservation_id: view.reservation.id,
    });
    expect((await h.services.catalog.getSeat(seat.id)).state).to.equal("SOLD");

    // The admission ended: the token still authenticates reads, but no longer admits.
    const session = await h.services.queue.authenticate(caller.token);
    expect([session.principal.state, session.status.state]).to.deep.equal([
      "completed",
      "completed",
    ]);
    const next = h.takeSeat();
    await expectDomainError(
      h.services.reservations.hold(session.principal, { seatId: next.id, requestId: requestId() }),
      "permission_denied",
      "TOKEN_NOT_ADMITTED",
    );
    expect((await seatState(next.id)).status).to.equal("AVAILABLE");
    expect(await h.sql("select id from reservation where user_id = $1", [userId])).to.have.length(
      1,
    );
    expect((await h.services.wallet.get(session.principal)).balance).to.equal(
      200_000n - seat.price,
    );
    expect((await h.services.payments.get(session.principal, result.payment.id)).id).to.equal(
      result.payment.id,
    );
    expect(
      (await h.services.reservations.get(session.principal, view.reservation.id)).state,
    ).to.equal("CONFIRMED");
  });

  it("frees the payer's queue slot at once for the next in line", async () => {
    const line = h.graph({ QUEUE_MAX_ACTIVE: "1" });
    const payer = await h.admit(h.user("slot-holder"), { services: line });
    await line.wallet.recharge(payer.principal, { amount: 200_000n, requestId: requestId() });
    const seat = h.takeSeat();
    const view = await line.reservations.hold(payer.principal, {
      seatId: seat.id,
      requestId: requestId(),
    });
    const waiter = await line.queue.issueToken({
      concertId: h.concertId,
      userId: h.user("next-in-line"),
      assertion: undefined,
    });
    expect(waiter.status.state).to.equal("waiting");

    await line.payments.pay(payer.principal, {
      reservationId: view.reservation.id,
      amount: seat.price,
      requestId: requestId(),
    });
    // No promotion job runs here: paying itself hands the slot on.
    expect((await line.queue.authenticate(waiter.token)).principal.state).to.equal("admitted");
  });

  it("refuses an amount other than the seat's price and changes nothing", async () => {
    const { caller, seat, view } = await holding("mismatch", 500_000n);
    const userId = caller.principal.userId;
    const before = await moneySnapshot(h, userId);
    for (const amount of [seat.price - 1n, seat.price + 1n]) {
      const error = await expectDomainError(
        pay(caller, view.reservation.id, amount, "pay-once"),
        "invalid_argument",
        "AMOUNT_MISMATCH",
      );
      expect(error.metadata).to.deep.equal({ price: String(seat.price) });
    }
    for (const amount of [0n, -seat.price]) {
      await expectDomainError(
        pay(caller, view.reservation.id, amount),
        "invalid_argument",
        "INVALID_ARGUMENT",
      );
    }
    expect(await moneySnapshot(h, userId)).to.deep.equal(before);
    expect((await reservationState(view.reservation.id)).status).to.equal("HELD");
    expect((await seatState(seat.id)).status).to.equal("HELD");

    // The refusals claimed nothing: the same request id with the right amount pays.
    const paid = await pay(caller, view.reservation.id, seat.price, "pay-once");
    expect(paid.payment.amount).to.equal(seat.price);
  });

  it("refuses with INSUFFICIENT_BALANCE when the balance is short or there is no wallet, writing nothing", async () => {
    const short = await holding("short", 1n);
    await h.services.wallet.recharge(short.caller.principal, {
      amount: short.seat.price - 2n,
      requestId: requestId(),
    });
    const before = await moneySnapshot(h, short.caller.principal.userId);
    expect(before.wallets).to.equal(`${short.seat.price - 1n}/2`);
    await expectDomainError(
      pay(short.caller, short.view.reservation.id, short.seat.price),
      "failed_precondition",
      "INSUFFICIENT_BALANCE",
    );
    expect(await moneySnapshot(h, short.caller.principal.userId)).to.deep.equal(before);
    expect((await reservationState(short.view.reservation.id)).status).to.equal("HELD");
    expect((await seatState(short.seat.id)).status).to.equal("HELD");

    const broke = await holding("broke", 0n);
    await expectDomainError(
      pay(broke.caller, broke.view.reservation.id, broke.seat.price),
      "failed_precondition",
      "INSUFFICIENT_BALANCE",
    );
    expect(await moneySnapshot(h, broke.caller.principal.userId)).to.deep.equal({
      wallets: "",
      ledger: "0",
      payments: "0",
      // Only the hold's request id.
      keys: "1",
    });
    expect((await reservationState(broke.view.reservation.id)).status).to.equal("HELD");
  });

  it("treats someone else's or an unknown reservation as not found", async () => {
    const owner = await holding("owner", 0n);
    const thief = await holding("thief", 1_000_000n);
    const before = await moneySnapshot(h, thief.caller.principal.userId);
    await expectDomainError(
      pay(thief.caller, owner.view.reservation.id, owner.seat.price),
      "not_found",
      "RESERVATION_NOT_FOUND",
    );
    await expectDomainError(
      pay(thief.caller, UNKNOWN_ID, owner.seat.price),
      "not_found",
      "RESERVATION_NOT_FOUND",
    );
    await expectDomainError(
      pay(thief.caller, "not-a-uuid", owner.seat.price),
      "invalid_argument",
      "INVALID_ARGUMENT",
    );
    expect(await moneySnapshot(h, thief.caller.principal.userId)).to.deep.equal(before);
    expect((await reservationState(owner.view.reservation.id)).status).to.equal("HELD");
    expect((await seatState(owner.seat.id)).reservation_id).to.equal(owner.view.reservation.id);
  });

  it("refuses an expired hold with HOLD_EXPIRED before and after the sweeper, without a debit", async () => {
    const { caller, seat, view } = await holding("late", 500_000n);
    const before = await moneySnapshot(h, caller.principal.userId);
    h.clock.set(view.reservation.heldUntil);
    expect((await reservationState(view.reservation.id)).status, "not swept yet").to.equal("HELD");
    await expectDomainError(
      pay(caller, view.reservation.id, seat.price),
      "failed_precondition",
      "HOLD_EXPIRED",
    );
    expect(await moneySnapshot(h, caller.principal.userId)).to.deep.equal(before);

    await h.services.reservations.expireStaleHolds();
    expect((await reservationState(view.reservation.id)).status).to.equal("EXPIRED");
    await expectDomainError(
      pay(caller, view.reservation.id, seat.price),
      "failed_precondition",
      "HOLD_EXPIRED",
    );
    expect(await moneySnapshot(h, caller.principal.userId)).to.deep.equal(before);
    expect((await seatState(seat.id)).status).to.equal("AVAILABLE");
  });

  it("charges a reservation once: another request id gets ALREADY_PAID", async () => {
    const { caller, seat, view } = await holding("twice", 1_000_000n);
    const first = await pay(caller, view.reservation.id, seat.price);
    const after = await moneySnapshot(h, caller.principal.userId);
    const completed = await h.reauthenticate(caller.token);
    // Both the principal the transport builds now and the one from before the payment.
    for (const principal of [completed, caller.principal]) {
      await expectDomainError(
        h.services.payments.pay(principal, {
          reservationId: view.reservation.id,
          amount: seat.price,
          requestId: requestId(),
        }),
        "failed_precondition",
        "ALREADY_PAID",
      );
    }
    expect(await moneySnapshot(h, caller.principal.userId)).to.deep.equal(after);
    expect(after.wallets).to.equal(`${1_000_000n - seat.price}/2`);
    const payments = await h.sql<{ id: string }>(
      "select id from payment where reservation_id = $1",
      [view.reservation.id],
    );
    expect(payments.map((row) => row.id)).to.deep.equal([first.payment.id]);
  });

  it("replays the same request id with the same payment, also after the admission ended", async () => {
    const { caller, seat, view } = await holding("replay", 1_000_000n);
    const first = await pay(caller, view.reservation.id, seat.price, "pay-replay");
    const after = await moneySnapshot(h, caller.principal.userId);
    h.clock.advance(5_000);
    const completed = await h.reauthenticate(caller.token);
    expect(completed.state).to.equal("completed");
    for (const principal of [caller.principal, completed]) {
      const again = await h.services.payments.pay(principal, {
        reservationId: view.reservation.id,
        amount: seat.price,
        requestId: "pay-replay",
      });
      expect({ ...again.payment }).to.deep.equal({ ...first.payment });
      expect(again.reservation.state).to.equal("CONFIRMED");
    }
    await expectDomainError(
      h.services.payments.pay(completed, {
        reservationId: view.reservation.id,
        amount: seat.price + 1n,
        requestId: "pay-replay",
      }),
      "invalid_argument",
      "REQUEST_ID_REUSED",
    );
    expect(await moneySnapshot(h, caller.principal.userId)).to.deep.equal(after);
  });

  it("shows a payment to its owner only", async () => {
    const { caller, seat, view } = await holding("owner-only", 1_000_000n);
    const { payment } = await pay(caller, view.reservation.id, seat.price);
    const stranger = await h.admit(h.user("stranger"));

    const got = await h.services.payments.get(caller.principal, payment.id);
    expect({ ...got }).to.deep.equal({ ...payment });
    await expectDomainError(
      h.services.payments.get(stranger.principal, payment.id),
      "not_found",
      "PAYMENT_NOT_FOUND",
    );
    await expectDomainError(
      h.services.payments.get(caller.principal, UNKNOWN_ID),
      "not_found",
      "PAYMENT_NOT_FOUND",
    );
    await expectDomainError(
      h.services.payments.get(caller.principal, "p-1"),
      "invalid_argument",
      "INVALID_ARGUMENT",
    );
  });
  it("pays more holds at once than the pool has connections, on a server that has not seen their date", async () => {
    // A fresh catalog and payments service, as right after a restart: the
    // date's facts are not cached anywhere. If a payment loaded them while
    // its transaction held a connection, 12 payments on 10 connections would
    // all wait for an 11th until the pool's acquire timeout.
    const catalog = new CatalogService(
      h.orm.em,
      h.orm.em,
      h.clock,
      h.store.seats,
      createLogger("silent"),
    );
    const payments = new PaymentsService(
      h.orm.em,
      h.writeBatcher(),
      catalog,
      h.services.queue,
      h.services.seatGate,
      h.clock,
      createLogger("silent"),
    );
    const held: Held[] = [];
    for (let i = 0; i < 12; i++) held.push(await holding(`cold-${i}`, 500_000n));
    const results = await Promise.all(
      held.map(({ caller, seat, view }) =>
        payments.pay(caller.principal, {
          reservationId: view.reservation.id,
          amount: seat.price,
          requestId: requestId(),
        }),
      ),
    );
    expect(results.map((result) => result.reservation.state)).to.deep.equal(
      held.map(() => "CONFIRMED"),
    );
    for (const { caller, seat } of held) {
      expect(await moneySnapshot(h, caller.principal.userId)).to.include({
        wallets: `${500_000n - seat.price}/2`,
        payments: "1",
      });
    }
  });

  describe("the seat gate", () => {
    /** A SaleRecorder that remembers what it was told (and can be made to fail). */
    class RecordingGate implements SaleRecorder {
      readonly changes: { dateId: string; change: SeatChange }[] = [];
      failWith: Error | undefined;

      async record({ dateId }: GateDate, change: SeatChange): Promise<void> {
        this.changes.push({ dateId, change });
        if (this.failWith) throw this.failWith;
      }
    }

    /** The payments service as the container builds it, but telling `seats` of its sales. */
    function paymentsWith(seats: SaleRecorder): PaymentsService {
      return new PaymentsService(
        h.orm.em,
        h.writeBatcher(),
        h.services.catalog,
        h.services.queue,
        seats,
        h.clock,
        createLogger("silent"),
      );
    }

    async function seatVersion(seatId: string): Promise<number> {
      const [row] = await h.sql<{ version: number }>("select version from seat where id = $1", [
        seatId,
      ]);
      return must(row).version;
    }

    it("records the sale in the gate the container wires, at the sold row's version", async () => {
      const { caller, seat, view } = await holding("gate-wired", 500_000n);
      const before = await h.store.seats.peek(h.gateDateOf(seat), seat.id);
      expect(before?.state).to.equal("held");
      await pay(caller, view.reservation.id, seat.price);

      const version = await seatVersion(seat.id);
      expect(version).to.be.greaterThan(must(before).seatVersion);
      expect(await h.store.seats.peek(h.gateDateOf(seat), seat.id)).to.deep.equal({
        seatVersion: version,
        state: "sold",
        heldUntil: 0,
        owner: caller.principal.userId,
      });
    });

    it("records each sale once, under the reservation's date, and nothing for a replay or a refusal", async () => {
      const gate = new RecordingGate();
      const payments = paymentsWith(gate);
      const { caller, seat, view } = await holding("gate-once", 1_000_000n);
      const input = { reservationId: view.reservation.id, amount: seat.price, requestId: "g-1" };

      const first = await payments.pay(caller.principal, input);
      expect(gate.changes).to.deep.equal([
        {
          dateId: view.reservation.concertDateId,
          change: {
            seatId: seat.id,
            seatVersion: await seatVersion(seat.id),
            state: "sold",
            heldUntil: 0,
            owner: caller.principal.userId,
          },
        },
      ]);
      expect(view.reservation.concertDateId).to.equal(seat.concertDateId);

      const again = await payments.pay(caller.principal, input);
      expect(again.payment.id).to.equal(first.payment.id);
      await expectDomainError(
        payments.pay(caller.principal, { ...input, requestId: "g-2" }),
        "failed_precondition",
        "ALREADY_PAID",
      );
      const other = await holding("gate-refused", 1_000_000n);
      await expectDomainError(
        payments.pay(other.caller.principal, {
          reservationId: other.view.reservation.id,
          amount: other.seat.price + 1n,
          requestId: "g-3",
        }),
        "invalid_argument",
        "AMOUNT_MISMATCH",
      );
      expect(gate.changes, "a replay or a refusal told the gate something").to.have.length(1);
    });

    it("answers a payment whose gate write fails, with the sale committed", async () => {
      const gate = new RecordingGate();
      gate.failWith = new Error("gate down");
      const { caller, seat, view } = await holding("gate-down", 500_000n);
      const result = await paymentsWith(gate).pay(caller.principal, {
        reservationId: view.reservation.id,
        amount: seat.price,
        requestId: requestId(),
      });
      expect(result.reservation.state).to.equal("CONFIRMED");
      expect(gate.changes).to.have.length(1);
      expect(await seatState(seat.id)).to.include({ status: "SOLD" });
      expect(await moneySnapshot(h, caller.principal.userId)).to.include({
        wallets: `${500_000n - seat.price}/2`,
        payments: "1",
      });
    });

    it("answers a payment whose gate is unreachable, leaving the write to the writer's retries", async () => {
      const unreachable = {
        record: async () => {
          throw new Error("connection refused");
        },
      } as unknown as SeatGate;
      const writer = new SeatGateWriter(unreachable, h.clock, createLogger("silent"));
      try {
        const { caller, seat, view } = await holding("gate-unreachable", 500_000n);
        const result = await paymentsWith(writer).pay(caller.principal, {
          reservationId: view.reservation.id,
          amount: seat.price,
          requestId: requestId(),
        });
        expect(result.payment.amount).to.equal(seat.price);
        expect(writer.backlog, "the sale waits for a retry").to.equal(1);
        expect((await seatState(seat.id)).status).to.equal("SOLD");
      } finally {
        await writer.close();
      }
    });
  });
});
