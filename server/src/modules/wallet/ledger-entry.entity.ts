import { defineEntity, p } from "@mikro-orm/core";

/** Why a balance changed. */
export type LedgerEntryKind = "RECHARGE" | "PAYMENT";

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
    /** Signed: positive for a recharge, negative for a payment. */
    readonly amount: bigint,
    readonly balanceAfter: bigint,
    readonly walletVersion: number,
    readonly paymentId: string | null,
    readonly createdAt: Date,
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
  },
});
