import { defineEntity, p } from "@mikro-orm/core";
import { DomainError } from "../../shared/domain-error.js";

/** What the seat row records. A HELD seat whose hold has passed counts as free. */
export type SeatStatus = "AVAILABLE" | "HELD" | "SOLD";

/** Whether a seat can be booked at a given moment. */
export type SeatState = "AVAILABLE" | "HELD" | "SOLD";

/** A seat's state from its row at `now`: an expired hold counts as free. */
export function seatStateAt(status: SeatStatus, heldUntil: Date | null, now: Date): SeatState {
  return seatStateAtMs(status, heldUntil?.getTime() ?? 0, now.getTime());
}

/** {@link seatStateAt} on epoch milliseconds, for loops over many seats. */
export function seatStateAtMs(status: SeatStatus, heldUntilMs: number, nowMs: number): SeatState {
  if (status === "HELD" && heldUntilMs <= nowMs) return "AVAILABLE";
  return status;
}

/**
 * One seat of one concert date: the row that is locked to decide who gets it.
 * Expiry is by time, not by a job: a hold whose `heldUntil` has passed is free
 * the moment it passes, whether or not the sweeper has tidied the row yet.
 */
export class Seat {
  status: SeatStatus = "AVAILABLE";
  heldUntil: Date | null = null;
  /** The reservation that holds or bought the seat. */
  reservationId: string | null = null;
  version = 1;

  constructor(
    readonly id: string,
    readonly concertDateId: string,
    readonly number: number,
    readonly grade: string,
    readonly price: bigint,
  ) {}

  /** The seat's state at `now`, counting expired holds as free. */
  stateAt(now: Date): SeatState {
    return seatStateAt(this.status, this.heldUntil, now);
  }

  /** Holds the seat for a reservation, or throws `SEAT_UNAVAILABLE`. Call under the row lock. */
  hold(reservationId: string, until: Date, now: Date): void {
    if (this.stateAt(now) !== "AVAILABLE") {
      throw new DomainError(
        "failed_precondition",
        "SEAT_UNAVAILABLE",
        "the seat is not available",
        {
          metadata: { seat_id: this.id },
        },
      );
    }
    this.status = "HELD";
    this.heldUntil = until;
    this.reservationId = reservationId;
    this.version += 1;
  }

  /** Whether the seat is under the given reservation's unexpired hold. */
  isHeldBy(reservationId: string, now: Date): boolean {
    return this.reservationId === reservationId && this.stateAt(now) === "HELD";
  }

  /** Sells the seat to the reservation holding it. Call under the row lock. */
  sell(reservationId: string, now: Date): void {
    if (!this.isHeldBy(reservationId, now)) {
      throw new DomainError(
        "failed_precondition",
        "HOLD_EXPIRED",
        "the hold on this seat has ended",
        {
          metadata: { seat_id: this.id },
        },
      );
    }
    this.status = "SOLD";
    this.heldUntil = null;
    this.version += 1;
  }

  /**
   * Puts a seat sold to this reservation back on sale (an operator's
   * refund). Throws if the row says otherwise: a refund is only ever of the
   * sale that row records. Call under the row lock.
   */
  returnToSale(reservationId: string): void {
    if (this.status !== "SOLD" || this.reservationId !== reservationId) {
      throw new Error(`seat ${this.id} is not sold to reservation ${reservationId}`);
    }
    this.status = "AVAILABLE";
    this.heldUntil = null;
    this.reservationId = null;
    this.version += 1;
  }

  /**
   * Frees the seat if this reservation still holds it, and says whether it
   * did. Call under the row lock.
   */
  release(reservationId: string): boolean {
    if (this.reservationId !== reservationId || this.status !== "HELD") return false;
    this.status = "AVAILABLE";
    this.heldUntil = null;
    this.reservationId = null;
    this.version += 1;
    return true;
  }
}

/** The table mapping of {@link Seat}. */
export const SeatSchema = defineEntity({
  class: Seat,
  tableName: "seat",
  properties: {
    id: p.uuid().primary(),
    concertDateId: p.uuid(),
    number: p.integer(),
    grade: p.text(),
    price: p.bigint(),
    status: p.text(),
    heldUntil: p.datetime().nullable(),
    reservationId: p.uuid().nullable(),
    version: p.integer(),
  },
});
