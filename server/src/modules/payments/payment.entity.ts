import { defineEntity, p } from "@mikro-orm/core";

/** Where a payment stands. Only completed payments exist today. */
export type PaymentStatus = "COMPLETED";

/** Money taken from a wallet for one reservation; at most one per reservation. */
export class Payment {
  readonly status: PaymentStatus = "COMPLETED";

  constructor(
    readonly id: string,
    readonly userId: string,
    readonly reservationId: string,
    readonly amount: bigint,
    readonly createdAt: Date,
  ) {}
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
  },
});
