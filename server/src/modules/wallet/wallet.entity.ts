import { defineEntity, p } from "@mikro-orm/core";
import { DomainError } from "../../shared/domain-error.js";

/**
 * A user's prepaid balance in minor units. Only ever changed under its row
 * lock, and every change writes a ledger entry in the same transaction, so
 * the balance always equals the sum of the ledger.
 */
export class Wallet {
  balance = 0n;
  version = 0;

  constructor(
    readonly userId: string,
    readonly createdAt: Date,
    public updatedAt: Date,
  ) {}

  /** Adds money, refusing to cross the server's balance limit. */
  credit(amount: bigint, maxBalance: bigint, now: Date): void {
    if (amount <= 0n) throw new RangeError("credit amount must be positive");
    if (this.balance + amount > maxBalance) {
      throw new DomainError(
        "resource_exhausted",
        "BALANCE_LIMIT_REACHED",
        `the balance may not exceed ${maxBalance}`,
        { metadata: { max_balance: String(maxBalance) } },
      );
    }
    this.balance += amount;
    this.version += 1;
    this.updatedAt = now;
  }

  /**
   * Pays back money the wallet paid before (an operator's refund). Unlike a
   * credit it is not held to the balance limit: the money was the user's.
   */
  payBack(amount: bigint, now: Date): void {
    if (amount <= 0n) throw new RangeError("refund amount must be positive");
    this.balance += amount;
    this.version += 1;
    this.updatedAt = now;
  }

  /** Takes money, refusing to go below zero. */
  debit(amount: bigint, now: Date): void {
    if (amount <= 0n) throw new RangeError("debit amount must be positive");
    if (this.balance < amount) {
      throw new DomainError(
        "failed_precondition",
        "INSUFFICIENT_BALANCE",
        "the balance is too low for this payment",
        { metadata: { balance: String(this.balance), amount: String(amount) } },
      );
    }
    this.balance -= amount;
    this.version += 1;
    this.updatedAt = now;
  }
}

/** The table mapping of {@link Wallet}. */
export const WalletSchema = defineEntity({
  class: Wallet,
  tableName: "wallet",
  properties: {
    userId: p.text().primary(),
    balance: p.bigint(),
    version: p.integer(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
  },
});
