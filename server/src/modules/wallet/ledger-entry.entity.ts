import { defineEntity, p } from "@mikro-orm/core";

/**
 * Why a balance changed: the user recharged, paid, was paid back by an
 * operator's refund, or was credited by an operator.
 */
export type LedgerEntryKind = "RECHARGE" | "PAYMENT" | "REFUND" | "CREDIT";

/**
 * One change of a balance, append-only. `balanceAfter` and `walletVersion`
 * record the wallet as this change left it, which is also what an idempotent
 * replay of a recharge returns.
 */
export class LedgerEntry {
  constructor(
    readonly id: string,
    readonly userId: string,
    readonly kind: LedgerEntryKind,
    /** Signed: negative for a payment, positive for every other kind. */
    readonly amount: bigint,
    readonly balanceAfter: bigint,
    readonly walletVersion: number,
    readonly paymentId: string | null,
    readonly createdAt: Date,
    /** The payment a REFUND entry pays back; null for every other kind. */
    readonly refundedPaymentId: string | null = null,
  ) {}
}

/** The table mapping of {@link LedgerEntry}. */
export const LedgerEntrySchema = defineEntity({
  class: LedgerEntry,
  tableName: "ledger_entry",
  properties: {
    id: p.uuid().primary(),
    userId: p.text(),
    kind: p.text(),
    amount: p.bigint(),
    balanceAfter: p.bigint(),
    walletVersion: p.integer(),
    paymentId: p.uuid().nullable(),
    createdAt: p.datetime(),
    refundedPaymentId: p.uuid().nullable(),
  },
});
