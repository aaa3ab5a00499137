import { LockMode } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import { LedgerEntry } from "./ledger-entry.entity.js";
import { Wallet } from "./wallet.entity.js";

/** Wallet and ledger queries. Method names say which lock they take. */
export class WalletRepository {
  constructor(private readonly em: EntityManager) {}

  /** Locks a wallet with `FOR UPDATE`; concurrent changes of one balance queue here. */
  lockWallet(userId: string): Promise<Wallet | null> {
    return this.em.findOne(Wallet, { userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  }

  /** Creates the wallet if it is missing, then locks it. */
  async lockOrCreateWallet(userId: string, now: Date): Promise<Wallet> {
    await this.em.execute(
      `insert into wallet (user_id, balance, version, created_at, updated_at)
       values (?, 0, 0, ?, ?) on conflict (user_id) do nothing`,
      [userId, now, now],
    );
    const wallet = await this.lockWallet(userId);
    if (!wallet) throw new Error(`wallet ${userId} vanished after its creation`);
    return wallet;
  }

  /** Reads a wallet without locking it. */
  findWallet(userId: string): Promise<Wallet | null> {
    return this.em.findOne(Wallet, { userId });
  }

  /** Reads one ledger entry. */
  findEntry(entryId: string): Promise<LedgerEntry | null> {
    return this.em.findOne(LedgerEntry, { id: entryId });
  }

  /**
   * One page of a user's ledger, newest first. Ordered by wallet version, the
   * one order that is total even for changes within the same millisecond.
   */
  listEntries(
    userId: string,
    beforeVersion: number | undefined,
    limit: number,
  ): Promise<LedgerEntry[]> {
    return this.em.find(
      LedgerEntry,
      beforeVersion === undefined ? { userId } : { userId, walletVersion: { $lt: beforeVersion } },
      { orderBy: { walletVersion: "desc" }, limit },
    );
  }
}
