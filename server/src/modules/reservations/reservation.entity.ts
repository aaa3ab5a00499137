import { defineEntity, p } from "@mikro-orm/core";
import { DomainError } from "../../shared/domain-error.js";

/** What the reservation row records. */
export type ReservationStatus = "HELD" | "CONFIRMED" | "RELEASED" | "EXPIRED" | "REFUNDED";

/**
 * A seat held for, or sold to, one user. The seat's facts (date, number,
 * price) are copied in at hold time: they never change, and copying them
 * keeps every read of a reservation to one row.
 */
export class Reservation {
  status: ReservationStatus = "HELD";
  confirmedAt: Date | null = null;
  /** When the reservation stopped being held (released, expired or confirmed). */
  endedAt: Date | null = null;

  constructor(
    readonly id: string,
    readonly userId: string,
    readonly concertId: string,
    readonly concertDateId: string,
    readonly date: string,
    readonly seatId: string,
    readonly seatNumber: number,
    readonly price: bigint,
    public heldUntil: Date,
    readonly createdAt: Date,
  ) {}

  /** The reservation's state at `now`: an unpaid hold past `heldUntil` is expired. */
  stateAt(now: Date): ReservationStatus {
    if (this.status === "HELD" && this.heldUntil <= now) return "EXPIRED";
    return this.status;
  }

  /** Throws unless the reservation is an unexpired hold, naming what it is instead. */
  assertHeld(now: Date): void {
    const state = this.stateAt(now);
    if (state === "HELD") return;
    const metadata = { reservation_id: this.id };
    if (state === "CONFIRMED") {
      throw new DomainError(
        "failed_precondition",
        "ALREADY_PAID",
        "the reservation is already paid",
        {
          metadata,
        },
      );
    }
    if (state === "EXPIRED") {
      throw new DomainError("failed_precondition", "HOLD_EXPIRED", "the hold has expired", {
        metadata,
      });
    }
    throw new DomainError("failed_precondition", "RESERVATION_NOT_HELD", "the hold was released", {
      metadata,
    });
  }

  /** Marks a held reservation as paid. Call under the row lock. */
  confirm(now: Date): void {
    this.assertHeld(now);
    this.status = "CONFIRMED";
    this.confirmedAt = now;
    this.endedAt = now;
  }

  /**
   * Cancels a paid reservation on an operator's refund; it stays confirmed
   * in history (`confirmedAt` is kept). Call under the row lock.
   */
  refund(): void {
    const metadata = { reservation_id: this.id };
    if (this.status === "REFUNDED") {
      throw new DomainError(
        "failed_precondition",
        "ALREADY_REFUNDED",
        "the ticket was already refunded",
        {
          metadata,
        },
      );
    }
    if (this.status !== "CONFIRMED") {
      throw new DomainError(
        "failed_precondition",
        "RESERVATION_NOT_CONFIRMED",
        "the reservation is not a paid ticket, so there is nothing to refund",
        { metadata },
      );
    }
    this.status = "REFUNDED";
  }

  /** Gives up a held reservation. Call under the row lock. */
  release(now: Date): void {
    this.assertHeld(now);
    this.status = "RELEASED";
    this.endedAt = now;
  }
}

/** The table mapping of {@link Reservation}. */
export const ReservationSchema = defineEntity({
  class: Reservation,
  tableName: "reservation",
  properties: {
    id: p.uuid().primary(),
    userId: p.text(),
    concertId: p.uuid(),
    concertDateId: p.uuid(),
    date: p.date(),
    seatId: p.uuid(),
    seatNumber: p.integer(),
    price: p.bigint(),
    status: p.text(),
    heldUntil: p.datetime(),
    createdAt: p.datetime(),
    confirmedAt: p.datetime().nullable(),
    endedAt: p.datetime().nullable(),
  },
});
