import { setImmediate as nextTurn } from "node:timers/promises";
import { expect } from "chai";
import { DomainError } from "../../server/src/shared/domain-error.js";
import {
  type Caller,
  type DemoSeat,
  expectLedgerMatchesBalances,
  ServiceHarness,
} from "../integration/reservations/service-harness.js";

const HOLD_TTL_MS = 300_000;
const ROUNDS = 30;

/**
 * A fan re-holds the seat whose hold just ended by time, while the sweeper
 * expires that same hold, and a rival wants the seat too. Every transaction
 * locks reservation rows before seat rows, so none may deadlock (PostgreSQL
 * would break one after a second and it would surface as CONCURRENT_UPDATE),
 * the seat ends up held by exactly one of them, and the old hold is EXPIRED
 * once swept.
 */
describe("concurrency: re-holding an ended hold while the sweeper expires it", () => {
  let h: ServiceHarness;

  before(async () => {
    h = await ServiceHarness.start({
      HOLD_TTL_SECONDS: String(HOLD_TTL_MS / 1000),
      TOKEN_TTL_SECONDS: "86400",
    });
  });
  after(async () => {
    await h?.close();
  });

  async function outcome(work: Promise<unknown>): Promise<string> {
    try {
      await work;
      return "held";
    } catch (error) {
      if (error instanceof DomainError) return error.reason;
      throw error;
    }
  }

  it(`never deadlocks and leaves one holder, over ${ROUNDS} interleavings`, async () => {
    const fan: Caller = await h.admit(h.user("fan"));
    for (let round = 0; round < ROUNDS; round++) {
      const seat: DemoSeat = h.takeSeat();
      const rival = await h.admit(h.user("rival"));
      const first = await h.services.reservations.hold(fan.principal, {
        seatId: seat.id,
        requestId: `first-${round}`,
      });
      h.clock.advance(HOLD_TTL_MS);
      const sweep = (async () => {
        for (let i = 0; i < round % 3; i++) await nextTurn();
        return h.services.reservations.expireStaleHolds();
      })();
      const rehold = outcome(
        h.services.reservations.hold(fan.principal, {
          seatId: seat.id,
          requestId: `again-${round}`,
        }),
      );
      const steal = outcome(
        h.services.reservations.hold(rival.principal, {
          seatId: seat.id,
          requestId: `steal-${round}`,
        }),
      );
      const [, fanOutcome, rivalOutcome] = await Promise.all([sweep, rehold, steal]);
      const outcomes = [fanOutcome, rivalOutcome];
      expect(outcomes, `round ${round}`).to.not.include("CONCURRENT_UPDATE");
      for (const o of outcomes)
        expect(["held", "SEAT_UNAVAILABLE"], `round ${round}`).to.include(o);
      expect(
        outcomes.filter((o) => o === "held"),
        `round ${round}`,
      ).to.have.length(1);

      // Ended by time whatever happened; a losing re-hold rolls back its own
      // tidying, so the next sweep makes it EXPIRED.
      await h.services.reservations.expireStaleHolds();
      const [old] = await h.sql<{ status: string }>(
        "select status from reservation where id = $1",
        [first.reservation.id],
      );
      expect(old?.status, `round ${round}`).to.equal("EXPIRED");
      const [row] = await h.sql<{ status: string; user_id: string }>(
        `select s.status, r.user_id from seat s join reservation r on r.id = s.reservation_id
          where s.id = $1 and r.status = 'HELD'`,
        [seat.id],
      );
      const winner = fanOutcome === "held" ? fan.principal.userId : rival.principal.userId;
      expect(row, `round ${round}`).to.deep.equal({ status: "HELD", user_id: winner });
      // Free the fan for the next round if they won.
      if (fanOutcome === "held") h.clock.advance(HOLD_TTL_MS);
    }
    await expectLedgerMatchesBalances(h);
  });
});
