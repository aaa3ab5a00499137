import { defineEntity, p } from "@mikro-orm/core";
import { DomainError } from "../../shared/domain-error.js";

/** Where a payment stands: taken, or paid back by an operator. */
export type PaymentStatus = "COMPLETED" | "REFUNDED";

/** Money taken from a wallet for one reservation; at most one per reservation. */
export class Payment {
  status: PaymentStatus = "COMPLETED";
  /** When an operator refunded it; null unless REFUNDED. */
  refundedAt: Date | null = null;

  constructor(
    readonly id: string,
    readonly userId: string,
    readonly reservationId: string,
    readonly amount: bigint,
    readonly createdAt: Date,
  ) {}

  /** Marks a completed payment as paid back. Call under the reservation's row lock. */
  refund(now: Date): void {
    if (this.status === "REFUNDED") {
      throw new DomainError(
        "failed_precondition",
        "ALREADY_REFUNDED",
        "the ticket was already refunded",
        {
          metadata: { payment_id: this.id, reservation_id: this.reservationId },
        },
      );
    }
    this.status = "REFUNDED";
    this.refundedAt = now;
  }
}

/** The table mapping of {@link Payment}. */
export const PaymentSchema = defineEntity({
  class: Payment,
  tableName: "payment",
  properties: {
    id: p.uuid().primary(),
    userId: p.text(),
    reservationId: p.uuid(),
    amount: p.bigint(),
    status: p.text(),
    createdAt: p.datetime(),
    refundedAt: p.datetime().nullable(),
  },
});
