import type { Database } from "../../persistence/database.js";
import { TxConnection } from "../../persistence/sql.js";
import type { WriteBatcher } from "../../persistence/write-batcher.js";
import type { Clock } from "../../shared/clock.js";
import { invalidField } from "../../shared/domain-error.js";
import { newId } from "../../shared/ids.js";
import { decodePageToken, pageOf } from "../../shared/page-token.js";
import { pageSize, requireRequestId } from "../../shared/validation.js";
import { claimTakeBack } from "../idempotency/index.js";
import type { Principal, Reader } from "../identity/index.js";
import { LedgerEntry } from "./ledger-entry.entity.js";
import { WalletRepository } from "./wallet.repository.js";

/** A wallet as a change left it (or as it is now, for reads). */
export interface WalletView {
  readonly userId: string;
  readonly balance: bigint;
  /** 0 for a wallet that has never changed. */
  readonly version: number;
  /** When the balance last changed; undefined for a wallet that never has. */
  readonly updatedAt: Date | undefined;
}

/**
 * The wallet of a fan who has never recharged: empty, not missing. Every fan
 * has a wallet with balance 0 from the start; its row is only written by the
 * first change, so reading it never writes.
 */
export function emptyWallet(userId: string): WalletView {
  return { userId, balance: 0n, version: 0, updatedAt: undefined };
}

/** The money limits, from configuration. */
export interface WalletLimits {
  readonly maxRecharge: bigint;
  readonly maxBalance: bigint;
}

/**
 * Prepaid balances. Every change locks the wallet row, writes a ledger entry
 * in the same transaction, and is idempotent per request id. The write path
 * runs prepared statements on the transaction's connection; the reads stay
 * on the ORM.
 */
export class WalletService {
  constructor(
    private readonly db: Database,
    private readonly writes: WriteBatcher,
    private readonly clock: Clock,
    private readonly limits: WalletLimits,
  ) {}

  /**
   * Adds a positive amount to the caller's balance, creating the wallet on
   * first use. Four round trips: BEGIN, the request-id claim with the
   * wallet's create-and-lock (one statement; one more only when the same
   * user's first recharges race), the write of the wallet and its ledger
   * entry (one statement), COMMIT. A replay: BEGIN, claim, read the claim,
   * read the entry, COMMIT. Under load the transaction is shared with other
   * recharges and payments (see `WriteBatcher`): BEGIN and COMMIT are then
   * paid once per batch, and the claim and the write each share a round trip
   * with the other writes' statements of the same step.
   */
  async recharge(
    principal: Principal,
    input: { amount: bigint; requestId: string },
  ): Promise<{ wallet: WalletView; entry: LedgerEntry }> {
    const amount = this.checkAmount(input.amount);
    const requestId = requireRequestId(input.requestId);
    const now = this.clock.now();
    const entryId = newId();
    const request = {
      userId: principal.userId,
      requestId,
      operation: "recharge",
      params: [amount],
    } as const;
    // The only refusal below (`credit`, over the balance limit) comes before
    // writeRecharge, and never meets a wallet this request created (a
    // recharge is at most maxRecharge <= maxBalance): the claim is all it wrote.
    const takeBack = claimTakeBack(request, entryId);
    const entry = await this.writes.run(
      principal.userId,
      async (em) => {
        const tx = await TxConnection.of(em);
        const claim = await WalletRepository.claimAndLockOrCreate(tx, request, entryId, now);
        if (claim.kind === "replay") {
          const first = await WalletRepository.findEntry(tx, claim.resultId);
          if (!first)
            throw new Error(`ledger entry ${claim.resultId} of a claimed request is missing`);
          return first;
        }
        const wallet = claim.locked;
        const lockedVersion = wallet.version;
        wallet.credit(amount, this.limits.maxBalance, now);
        const created = new LedgerEntry(
          entryId,
          wallet.userId,
          "RECHARGE",
          amount,
          wallet.balance,
          wallet.version,
          null,
          now,
        );
        await WalletRepository.writeRecharge(tx, wallet, lockedVersion, created);
        return created;
      },
      takeBack,
    );
    return { wallet: walletAfter(entry), entry };
  }

  /** The caller's wallet: an {@link emptyWallet} until the first recharge. */
  async get(principal: Reader): Promise<WalletView> {
    const wallet = await new WalletRepository(this.db.fork()).findWallet(principal.userId);
    if (!wallet) return emptyWallet(principal.userId);
    return {
      userId: wallet.userId,
      balance: wallet.balance,
      version: wallet.version,
      updatedAt: wallet.updatedAt,
    };
  }

  /** The caller's ledger, newest first, one page at a time. */
  async listEntries(
    principal: Reader,
    size: number,
    token: string,
  ): Promise<{ entries: LedgerEntry[]; nextPageToken: string }> {
    const limit = pageSize(size, 50, 500);
    const after = decodePageToken(token, { v: "number" });
    const rows = await new WalletRepository(this.db.fork()).listEntries(
      principal.userId,
      after?.v,
      limit + 1,
    );
    const page = pageOf(rows, limit, (last) => ({ v: last.walletVersion }));
    return { entries: page.items, nextPageToken: page.nextPageToken };
  }

  private checkAmount(amount: bigint): bigint {
    if (amount <= 0n) throw invalidField("amount", "must be positive");
    if (amount > this.limits.maxRecharge) {
      throw invalidField("amount", `must be at most ${this.limits.maxRecharge}`);
    }
    return amount;
  }
}

/** The wallet exactly as a ledger entry left it. */
export function walletAfter(entry: LedgerEntry): WalletView {
  return {
    userId: entry.userId,
    balance: entry.balanceAfter,
    version: entry.walletVersion,
    updatedAt: entry.createdAt,
  };
}
