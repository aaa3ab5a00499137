import { expect } from "chai";
import { Reservation } from "../../../server/src/modules/reservations/reservation.entity.js";
import { FakeClock } from "../../support/fake-clock.js";
import { expectThrowsDomain } from "../unit-helpers.js";

const HOLD_MS = 300_000;

describe("Reservation entity", () => {
  let clock: FakeClock;

  beforeEach(() => {
    clock = new FakeClock();
  });

  function newReservation(): Reservation {
    return new Reservation(
      "res-1",
      "alice",
      "concert-1",
      "date-1",
      "2030-03-01",
      "seat-1",
      12,
      110_000n,
      new Date(clock.ms() + HOLD_MS),
      clock.now(),
    );
  }

  describe("stateAt", () => {
    it("is HELD before heldUntil and EXPIRED from that instant on", () => {
      const reservation = newReservation();
      expect(reservation.stateAt(clock.now())).to.equal("HELD");
      clock.advance(HOLD_MS - 1);
      expect(reservation.stateAt(clock.now())).to.equal("HELD");
      clock.advance(1);
      expect(reservation.stateAt(clock.now())).to.equal("EXPIRED");
      expect(reservation.status).to.equal("HELD");
    });

    it("keeps CONFIRMED and RELEASED past heldUntil", () => {
      const paid = newReservation();
      paid.confirm(clock.now());
      const released = newReservation();
      released.release(clock.now());
      clock.advance(2 * HOLD_MS);
      expect(paid.stateAt(clock.now())).to.equal("CONFIRMED");
      expect(released.stateAt(clock.now())).to.equal("RELEASED");
    });
  });

  describe("assertHeld", () => {
    it("passes for an unexpired hold", () => {
      const reservation = newReservation();
      clock.advance(HOLD_MS - 1);
      expect(() => reservation.assertHeld(clock.now())).not.to.throw();
    });

    it("names ALREADY_PAID for a confirmed reservation", () => {
      const reservation = newReservation();
      reservation.confirm(clock.now());
      const error = expectThrowsDomain(
        () => reservation.assertHeld(clock.now()),
        "failed_precondition",
        "ALREADY_PAID",
      );
      expect(error.metadata).to.deep.equal({ reservation_id: "res-1" });
    });

    it("names HOLD_EXPIRED for a hold past heldUntil", () => {
      const reservation = newReservation();
      clock.advance(HOLD_MS);
      expectThrowsDomain(
        () => reservation.assertHeld(clock.now()),
        "failed_precondition",
        "HOLD_EXPIRED",
      );
    });

    it("names HOLD_EXPIRED for a reservation the sweeper marked EXPIRED", () => {
      const reservation = newReservation();
      reservation.status = "EXPIRED";
      expectThrowsDomain(
        () => reservation.assertHeld(clock.now()),
        "failed_precondition",
        "HOLD_EXPIRED",
      );
    });

    it("names RESERVATION_NOT_HELD for a released reservation", () => {
      const reservation = newReservation();
      reservation.release(clock.now());
      expectThrowsDomain(
        () => reservation.assertHeld(clock.now()),
        "failed_precondition",
        "RESERVATION_NOT_HELD",
      );
    });
  });

  describe("confirm", () => {
    it("marks a held reservation paid at now", () => {
      const reservation = newReservation();
      clock.advance(1000);
      reservation.confirm(clock.now());
      expect(reservation.status).to.equal("CONFIRMED");
      expect(reservation.confirmedAt?.getTime()).to.equal(clock.ms());
      expect(reservation.endedAt?.getTime()).to.equal(clock.ms());
    });

    it("refuses an expired hold and changes nothing", () => {
      const reservation = newReservation();
      clock.advance(HOLD_MS);
      expectThrowsDomain(
        () => reservation.confirm(clock.now()),
        "failed_precondition",
        "HOLD_EXPIRED",
      );
      expect(reservation.status).to.equal("HELD");
      expect(reservation.confirmedAt).to.equal(null);
      expect(reservation.endedAt).to.equal(null);
    });

    it("refuses to confirm twice, keeping the first confirmation time", () => {
      const reservation = newReservation();
      const first = clock.ms();
      reservation.confirm(clock.now());
      clock.advance(1000);
      expectThrowsDomain(
        () => reservation.confirm(clock.now()),
        "failed_precondition",
        "ALREADY_PAID",
      );
      expect(reservation.confirmedAt?.getTime()).to.equal(first);
    });

    it("refuses a released reservation", () => {
      const reservation = newReservation();
      reservation.release(clock.now());
      expectThrowsDomain(
        () => reservation.confirm(clock.now()),
        "failed_precondition",
        "RESERVATION_NOT_HELD",
      );
      expect(reservation.status).to.equal("RELEASED");
    });
  });

  describe("release", () => {
    it("gives up a held reservation at now", () => {
      const reservation = newReservation();
      clock.advance(5000);
      reservation.release(clock.now());
      expect(reservation.status).to.equal("RELEASED");
      expect(reservation.endedAt?.getTime()).to.equal(clock.ms());
      expect(reservation.confirmedAt).to.equal(null);
    });

    it("never releases a paid reservation", () => {
      const reservation = newReservation();
      reservation.confirm(clock.now());
      expectThrowsDomain(
        () => reservation.release(clock.now()),
        "failed_precondition",
        "ALREADY_PAID",
      );
      expect(reservation.status).to.equal("CONFIRMED");
    });

    it("refuses an expired hold", () => {
      const reservation = newReservation();
      clock.advance(HOLD_MS + 1);
      expectThrowsDomain(
        () => reservation.release(clock.now()),
        "failed_precondition",
        "HOLD_EXPIRED",
      );
      expect(reservation.status).to.equal("HELD");
    });
  });
});
