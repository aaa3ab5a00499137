import { expect } from "chai";
import { Seat } from "../../../server/src/modules/catalog/seat.entity.js";
import { FakeClock } from "../../support/fake-clock.js";
import { expectThrowsDomain } from "../unit-helpers.js";

const HOLD_MS = 300_000;

describe("Seat entity", () => {
  let clock: FakeClock;

  beforeEach(() => {
    clock = new FakeClock();
  });

  function newSeat(): Seat {
    return new Seat("seat-1", "date-1", 7, "VIP", 150_000n);
  }

  function heldSeat(reservationId = "res-1"): Seat {
    const seat = newSeat();
    seat.hold(reservationId, new Date(clock.ms() + HOLD_MS), clock.now());
    return seat;
  }

  describe("stateAt", () => {
    it("is AVAILABLE for a new seat", () => {
      expect(newSeat().stateAt(clock.now())).to.equal("AVAILABLE");
    });

    it("is HELD until the hold's end, and AVAILABLE from the very instant it passes", () => {
      const seat = heldSeat();
      clock.advance(HOLD_MS - 1);
      expect(seat.stateAt(clock.now())).to.equal("HELD");
      clock.advance(1);
      // held_until <= now counts as expired, with no sweeper involved.
      expect(seat.stateAt(clock.now())).to.equal("AVAILABLE");
      expect(seat.status).to.equal("HELD");
    });

    it("stays SOLD forever", () => {
      const seat = heldSeat();
      seat.sell("res-1", clock.now());
      clock.advance(10 * HOLD_MS);
      expect(seat.stateAt(clock.now())).to.equal("SOLD");
    });
  });

  describe("hold", () => {
    it("records the hold, its end and the reservation, and bumps the version", () => {
      const seat = newSeat();
      const until = new Date(clock.ms() + HOLD_MS);
      seat.hold("res-1", until, clock.now());
      expect(seat.status).to.equal("HELD");
      expect(seat.heldUntil?.getTime()).to.equal(until.getTime());
      expect(seat.reservationId).to.equal("res-1");
      expect(seat.version).to.equal(2);
    });

    it("refuses a seat under an unexpired hold with SEAT_UNAVAILABLE and leaves it unchanged", () => {
      const seat = heldSeat("res-1");
      clock.advance(HOLD_MS - 1);
      const error = expectThrowsDomain(
        () => seat.hold("res-2", new Date(clock.ms() + HOLD_MS), clock.now()),
        "failed_precondition",
        "SEAT_UNAVAILABLE",
      );
      expect(error.metadata).to.deep.equal({ seat_id: "seat-1" });
      expect(seat.reservationId).to.equal("res-1");
      expect(seat.version).to.equal(2);
    });

    it("refuses a sold seat with SEAT_UNAVAILABLE", () => {
      const seat = heldSeat("res-1");
      seat.sell("res-1", clock.now());
      expectThrowsDomain(
        () => seat.hold("res-2", new Date(clock.ms() + HOLD_MS), clock.now()),
        "failed_precondition",
        "SEAT_UNAVAILABLE",
      );
      expect(seat.status).to.equal("SOLD");
    });

    it("takes over a seat whose hold has expired, though the row still says HELD", () => {
      const seat = heldSeat("res-1");
      clock.advance(HOLD_MS);
      const until = new Date(clock.ms() + HOLD_MS);
      seat.hold("res-2", until, clock.now());
      expect(seat.reservationId).to.equal("res-2");
      expect(seat.heldUntil?.getTime()).to.equal(until.getTime());
      expect(seat.stateAt(clock.now())).to.equal("HELD");
    });
  });

  describe("sell", () => {
    it("sells the seat to the reservation holding it and clears the hold's end", () => {
      const seat = heldSeat("res-1");
      clock.advance(HOLD_MS - 1);
      seat.sell("res-1", clock.now());
      expect(seat.status).to.equal("SOLD");
      expect(seat.heldUntil).to.equal(null);
      expect(seat.reservationId).to.equal("res-1");
      expect(seat.version).to.equal(3);
    });

    it("refuses with HOLD_EXPIRED once the hold has passed", () => {
      const seat = heldSeat("res-1");
      clock.advance(HOLD_MS);
      const error = expectThrowsDomain(
        () => seat.sell("res-1", clock.now()),
        "failed_precondition",
        "HOLD_EXPIRED",
      );
      expect(error.metadata).to.deep.equal({ seat_id: "seat-1" });
      expect(seat.status).to.equal("HELD");
    });

    it("refuses another reservation's purchase", () => {
      const seat = heldSeat("res-1");
      expectThrowsDomain(
        () => seat.sell("res-2", clock.now()),
        "failed_precondition",
        "HOLD_EXPIRED",
      );
      expect(seat.status).to.equal("HELD");
    });

    it("refuses a seat that was never held", () => {
      const seat = newSeat();
      expectThrowsDomain(
        () => seat.sell("res-1", clock.now()),
        "failed_precondition",
        "HOLD_EXPIRED",
      );
      expect(seat.status).to.equal("AVAILABLE");
    });

    it("never sells a seat twice", () => {
      const seat = heldSeat("res-1");
      seat.sell("res-1", clock.now());
      expectThrowsDomain(
        () => seat.sell("res-1", clock.now()),
        "failed_precondition",
        "HOLD_EXPIRED",
      );
      expect(seat.version).to.equal(3);
    });
  });

  describe("isHeldBy", () => {
    it("is true only for the holding reservation and only before the hold ends", () => {
      const seat = heldSeat("res-1");
      expect(seat.isHeldBy("res-1", clock.now())).to.equal(true);
      expect(seat.isHeldBy("res-2", clock.now())).to.equal(false);
      clock.advance(HOLD_MS);
      expect(seat.isHeldBy("res-1", clock.now())).to.equal(false);
    });
  });

  describe("release", () => {
    it("frees a seat held by the reservation", () => {
      const seat = heldSeat("res-1");
      seat.release("res-1");
      expect(seat.status).to.equal("AVAILABLE");
      expect(seat.heldUntil).to.equal(null);
      expect(seat.reservationId).to.equal(null);
      expect(seat.version).to.equal(3);
    });

    it("ignores another reservation, leaving the current hold in place", () => {
      const seat = heldSeat("res-1");
      seat.release("res-2");
      expect(seat.status).to.equal("HELD");
      expect(seat.reservationId).to.equal("res-1");
      expect(seat.version).to.equal(2);
    });

    it("never frees a sold seat", () => {
      const seat = heldSeat("res-1");
      seat.sell("res-1", clock.now());
      seat.release("res-1");
      expect(seat.status).to.equal("SOLD");
      expect(seat.reservationId).to.equal("res-1");
      expect(seat.version).to.equal(3);
    });
  });
});
