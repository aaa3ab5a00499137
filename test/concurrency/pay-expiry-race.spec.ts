import { setImmediate as nextTurn } from "node:timers/promises";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { ReservationState, SeatState } from "@stagedoor/sdk";
import { expect } from "chai";
import { clientFor } from "../support/clients.js";
import { FakeClock } from "../support/fake-clock.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import {
  admitUser,
  expectRefusal,
  must,
  NO_USER_RATE_LIMITS,
  RaceDb,
  requestId,
  type SeatRow,
  shuffled,
} from "./race-support.js";

/**
 * A fake clock that calls a hook before every read. The race below uses it to
 * move time at an exact point of the server's work (the k-th clock read after
 * the race starts) instead of at a random wall-clock moment.
 */
class ObservedClock extends FakeClock {
  onRead: (() => void) | undefined;

  override now(): Date {
    this.onRead?.();
    return super.now();
  }
}

/** When the clock passes the hold's expiry: before the k-th clock read of the race, or after it. */
const ADVANCE_AT = [0, 1, 2, 3, 4, "after"] as const;
/** When the sweeper runs relative to the payment and the advance. */
const SWEEP_MODES = ["before-pay", "with-advance", "jittered", "twice", "after"] as const;

type AdvanceAt = (typeof ADVANCE_AT)[number];
type SweepMode = (typeof SWEEP_MODES)[number];

describe("concurrency: payment racing the hold's expiry and the sweeper", () => {
  const clock = new ObservedClock();
  let server: TestServer;
  let db: RaceDb;

  before(async () => {
    server = await startTestServer({
      clock,
      withoutJobs: true,
      env: {
        QUEUE_MAX_ACTIVE: "1000",
        HOLD_TTL_SECONDS: "300",
        TOKEN_TTL_SECONDS: "600",
        ...NO_USER_RATE_LIMITS,
      },
    });
    db = new RaceDb(server.databaseUrl);
  });
  afterEach(async () => {
    clock.onRead = undefined;
    await db.expectInvariants(clock.now());
  });
  after(async () => {
    clock.onRead = undefined;
    await db?.close();
    await server?.stop();
  });

  it("30 users × shuffled schedules: each hold ends paid once or expired unpaid", async () => {
    // Every (advance point, sweep mode) pair once, in a random order; each
    // round is a fresh user on a fresh seat.
    const schedules = shuffled(
      ADVANCE_AT.flatMap((advanceAt) => SWEEP_MODES.map((sweep) => ({ advanceAt, sweep }))),
    );
    const seats = (await db.seats()).slice(0, schedules.length);
    const outcomes: string[] = [];
    for (const [round, schedule] of schedules.entries()) {
      const seat = must(seats[round], `seat for round ${round}`);
      outcomes.push(await raceRound(round, seat, schedule.advanceAt, schedule.sweep));
    }
    // The schedules include "time passes first" (k = 0: always refused) and
    // "time passes after the payment" (always paid), so both endings occur.
    expect(outcomes).to.include("CONFIRMED");
    expect(outcomes).to.include("EXPIRED");
  });

  async function raceRound(
    round: number,
    seat: SeatRow,
    advanceAt: AdvanceAt,
    sweep: SweepMode,
  ): Promise<string> {
    const label = `round ${round} (advance at ${advanceAt}, sweep ${sweep}): `;
    const user = await admitUser(server, "grpc", `expiry-${round}`);
    const funds = seat.price * 3n;
    await user.client.wallet.rechargeWallet({ amount: funds, requestId: requestId() });
    const { reservation } = await user.client.reservation.holdSeat({
      seatId: seat.id,
      requestId: requestId(),
    });
    const reservationId = must(reservation, "hold").id;
    const heldUntil = timestampMs(must(reservation?.holdExpireTime, "hold expiry"));
    clock.set(heldUntil - 1);

    const sweeps: Promise<number>[] = [];
    const runSweeper = () => {
      sweeps.push(server.services.reservations.expireStaleHolds());
    };
    let advanced = false;
    const advance = () => {
      if (advanced) return;
      advanced = true;
      // Past the hold, well before the admission (600 s) ends.
      clock.set(heldUntil + 1 + (round % 7) * 100);
      if (sweep === "with-advance") runSweeper();
    };
    let reads = 0;
    clock.onRead = () => {
      if (typeof advanceAt === "number" && reads++ === advanceAt) advance();
    };

    if (sweep === "before-pay" || sweep === "twice") runSweeper();
    const payment = user.client.payment.createPayment({
      reservationId,
      amount: seat.price,
      requestId: requestId(),
    });
    const jittered = (async () => {
      if (sweep !== "jittered" && sweep !== "twice") return;
      for (let i = round % 4; i > 0; i--) await nextTurn();
      runSweeper();
    })();
    const [paid] = await Promise.allSettled([payment]);
    await jittered;
    clock.onRead = undefined;
    advance();
    if (sweep === "after") runSweeper();
    const swept = (await Promise.all(sweeps)).reduce((sum, n) => sum + n, 0);

    // The seat's state by time alone, before any further sweeping.
    const { seat: seatView } = await clientFor("grpc", server.url).catalog.getSeat({
      seatId: seat.id,
    });
    const outcome = paid.status === "fulfilled" ? "CONFIRMED" : "EXPIRED";
    if (paid.status === "fulfilled") {
      expect(paid.value.reservation?.state, label).to.equal(ReservationState.CONFIRMED);
      expect(swept, `${label}the sweeper touched a paid hold`).to.equal(0);
      expect(seatView?.state, label).to.equal(SeatState.SOLD);
    } else {
      expectRefusal(paid.reason, Code.FailedPrecondition, ["HOLD_EXPIRED"], label);
      expect(swept, `${label}holds expired by the sweeper`).to.be.at.most(1);
      expect(seatView?.state, `${label}an expired hold must leave the seat free`).to.equal(
        SeatState.AVAILABLE,
      );
    }

    // Tidy up as the sweeper job would, then check the rows themselves.
    await server.services.reservations.expireStaleHolds();
    const [row] = await db.query<{ status: string; seat_status: string; seat_res: string | null }>(
      `select r.status, s.status as seat_status, s.reservation_id as seat_res
         from reservation r join seat s on s.id = r.seat_id where r.id = $1`,
      [reservationId],
    );
    const payments = await db.query<{ id: string }>(
      "select id from payment where reservation_id = $1",
      [reservationId],
    );
    const debits = await db.query<{ amount: string }>(
      "select amount::text as amount from ledger_entry where user_id = $1 and kind = 'PAYMENT'",
      [user.userId],
    );
    const [wallet] = await db.query<{ balance: string }>(
      "select balance::text as balance from wallet where user_id = $1",
      [user.userId],
    );
    if (outcome === "CONFIRMED") {
      expect(row, label).to.deep.equal({
        status: "CONFIRMED",
        seat_status: "SOLD",
        seat_res: reservationId,
      });
      expect(payments, label).to.have.length(1);
      expect(debits, label).to.deep.equal([{ amount: String(-seat.price) }]);
      expect(BigInt(must(wallet, "wallet").balance), label).to.equal(funds - seat.price);
    } else {
      expect(row, label).to.deep.equal({
        status: "EXPIRED",
        seat_status: "AVAILABLE",
        seat_res: null,
      });
      expect(payments, `${label}payment on an expired hold`).to.deep.equal([]);
      expect(debits, `${label}debit without a sale`).to.deep.equal([]);
      expect(BigInt(must(wallet, "wallet").balance), label).to.equal(funds);
    }
    await db.expectInvariants(clock.now());
    return outcome;
  }
});
