import type { EntityManager } from "@mikro-orm/postgresql";
import { statement, type TxConnection } from "../../persistence/sql.js";
import {
  CLAIMED,
  type ClaimAndLock,
  claimAndLock,
  claimAndLockStatement,
  type IdempotentRequest,
} from "../idempotency/index.js";
import { LedgerEntry, type LedgerEntryKind } from "./ledger-entry.entity.js";
import { Wallet } from "./wallet.entity.js";

/** A wallet row as the lock statements select it ({@link WALLET_COLUMNS}). */
export interface WalletRow {
  readonly balance: string;
  readonly version: number;
  readonly created_at_ms: number;
  readonly updated_at_ms: number;
}

/** A ledger entry row as {@link FIND_ENTRY} selects it. */
interface LedgerRow {
  readonly id: string;
  readonly user_id: string;
  readonly kind: LedgerEntryKind;
  readonly amount: string;
  readonly balance_after: string;
  readonly wallet_version: number;
  readonly payment_id: string | null;
  readonly refunded_payment_id: string | null;
  readonly created_at_ms: number;
}

/** A row whose columns may all be null (the unmatched side of an outer join). */
type OrNull<T> = { readonly [K in keyof T]: T[K] | null };

const ms = (column: string) => `(extract(epoch from ${column}) * 1000)::float8 as ${column}_ms`;

/**
 * The columns of a {@link WalletRow}. The balance is sent as text, so it stays
 * exact even where a statement returns the row as JSON.
 */
export const WALLET_COLUMNS = `balance::text as balance, version, ${ms("created_at")}, ${ms("updated_at")}`;

const LOCK = statement<WalletRow>(
  "wallet_lock",
  `select ${WALLET_COLUMNS} from wallet where user_id = $1 for update`,
);

/**
 * Creates the wallet if it is missing and locks it, in one statement. Its
 * parts share one snapshot, so at most one of them returns the row:
 * - the wallet was committed before the statement began: the INSERT does
 *   nothing, and `locked` takes the row lock (`FOR UPDATE`: it waits for any
 *   other holder, then returns the row's newest version);
 * - the wallet is missing: the INSERT creates it, and `created` returns it. A
 *   row this transaction inserted is as good as locked: no one else sees it
 *   before we commit, and a concurrent INSERT of it waits on the primary key
 *   until we end;
 * - another transaction inserted it and committed after this statement began:
 *   the INSERT waited for that commit and did nothing, and `locked` cannot see
 *   the row under the statement's snapshot. No row comes back, and the caller
 *   locks it with {@link LOCK}, a new statement with a new snapshot.
 */
const LOCK_OR_CREATE = statement<WalletRow>(
  "wallet_lock_or_create",
  `with created as (
     insert into wallet (user_id, balance, version, created_at, updated_at)
     values ($1, 0, 0, $2, $2)
     on conflict (user_id) do nothing
     returning ${WALLET_COLUMNS}
   ), locked as (
     select ${WALLET_COLUMNS} from wallet where user_id = $1 for update
   )
   select * from created
   union all
   select * from locked`,
);

/**
 * {@link LOCK_OR_CREATE} behind the claim of the recharge's request id, in
 * one round trip (see {@link CLAIM_CTE}): the wallet is created and locked
 * only when the claim is new, so a replay locks nothing. Its parameters after
 * the claim's: $7 the user, $8 the time.
 */
const CLAIM_AND_LOCK_OR_CREATE = claimAndLockStatement<OrNull<WalletRow>>(
  "wallet_claim_and_lock_or_create",
  `created as (
     insert into wallet (user_id, balance, version, created_at, updated_at)
     select $7, 0, 0, $8, $8 where ${CLAIMED}
     on conflict (user_id) do nothing
     returning ${WALLET_COLUMNS}
   ), locked as materialized (
     select ${WALLET_COLUMNS} from wallet where user_id = $7 and ${CLAIMED} for update
   )`,
  `wallet.*
     from (values (1)) as one
     left join (select * from created union all select * from locked) as wallet on true`,
);

/**
 * Writes a recharged (or operator-credited, by `$9`) wallet and its ledger entry. The UPDATE is guarded by
 * the version the wallet was locked at, and the entry is inserted only from
 * the row the UPDATE returned (its new balance and version), so one returned
 * row means both were written and agree.
 */
const WRITE_RECHARGE = statement<{ id: string }>(
  "wallet_write_recharge",
  `with changed as (
     update wallet set balance = $2, version = $3, updated_at = $4
      where user_id = $1 and version = $5
     returning user_id, balance, version
   )
   insert into ledger_entry (id, user_id, kind, amount, balance_after, wallet_version, payment_id, created_at)
   select $6, changed.user_id, $9, $7, changed.balance, changed.version, null, $8
     from changed
   returning id`,
);

const FIND_ENTRY = statement<LedgerRow>(
  "wallet_find_entry",
  `select id, user_id, kind, amount, balance_after, wallet_version, payment_id, refunded_payment_id,
          ${ms("created_at")}
     from ledger_entry where id = $1`,
);

/** A wallet entity from its locked row. */
export function walletFromRow(userId: string, row: WalletRow): Wallet {
  const wallet = new Wallet(userId, new Date(row.created_at_ms), new Date(row.updated_at_ms));
  wallet.balance = BigInt(row.balance);
  wallet.version = row.version;
  return wallet;
}

/**
 * Throws unless `entry` records exactly the change that left `wallet` as it
 * is now: a programming error, caught before anything is written.
 */
export function assertEntryOf(wallet: Wallet, entry: LedgerEntry, kind: LedgerEntryKind): void {
  if (
    entry.kind !== kind ||
    entry.userId !== wallet.userId ||
    entry.balanceAfter !== wallet.balance ||
    entry.walletVersion !== wallet.version
  ) {
    throw new Error(
      `ledger entry ${entry.id} does not record the change of wallet ${wallet.userId}`,
    );
  }
}

/**
 * Wallet and ledger queries. Method names say which lock they take. The
 * static methods are the write paths (recharges and payments): they run
 * inside a transaction, on its connection, as prepared statements (one round
 * trip each). The instance methods are the ORM reads of the cold paths.
 */
export class WalletRepository {
  constructor(private readonly em: EntityManager) {}

  /** Locks a wallet with `FOR UPDATE`; null when the user has none. */
  static async lockWallet(tx: TxConnection, userId: string): Promise<Wallet | null> {
    const row = await tx.one(LOCK, [userId]);
    return row === undefined ? null : walletFromRow(userId, row);
  }

  /**
   * Creates the wallet if it is missing, then locks it with `FOR UPDATE`. One
   * round trip; two when another transaction created the same wallet at the
   * same moment (see {@link LOCK_OR_CREATE}).
   */
  static async lockOrCreateWallet(tx: TxConnection, userId: string, now: Date): Promise<Wallet> {
    const row = (await tx.one(LOCK_OR_CREATE, [userId, now])) ?? (await tx.one(LOCK, [userId]));
    if (row === undefined) throw new Error(`wallet ${userId} vanished after its creation`);
    return walletFromRow(userId, row);
  }

  /**
   * Claims a recharge's request id and, when the claim is new, creates the
   * wallet if it is missing and locks it: one round trip, as {@link
   * claimRequestId} followed by {@link lockOrCreateWallet} would take two.
   * On a replay, nothing is locked.
   */
  static async claimAndLockOrCreate(
    tx: TxConnection,
    request: IdempotentRequest,
    resultId: string,
    now: Date,
  ): Promise<ClaimAndLock<Wallet>> {
    const userId = request.userId;
    const claim = await claimAndLock(
      tx,
      CLAIM_AND_LOCK_OR_CREATE,
      request,
      resultId,
      now,
      [userId, now],
      (row) => (row !== undefined && row.balance !== null ? (row as WalletRow) : undefined),
    );
    if (claim.kind === "replay") return claim;
    // No wallet row: another transaction created it after the statement
    // began (see LOCK_OR_CREATE); a new statement sees and locks it.
    const locked = claim.locked ?? (await tx.one(LOCK, [userId]));
    if (locked === undefined) throw new Error(`wallet ${userId} vanished after its creation`);
    return { kind: "claimed", locked: walletFromRow(userId, locked) };
  }

  /**
   * Writes a recharge or an operator's credit of a locked wallet (changed by
   * `wallet.credit`) and its RECHARGE or CREDIT ledger entry, in one
   * statement. `lockedVersion` is the version the wallet had when it was
   * locked.
   */
  static async writeRecharge(
    tx: TxConnection,
    wallet: Wallet,
    lockedVersion: number,
    entry: LedgerEntry,
  ): Promise<void> {
    assertEntryOf(wallet, entry, entry.kind === "CREDIT" ? "CREDIT" : "RECHARGE");
    const written = await tx.one(WRITE_RECHARGE, [
      wallet.userId,
      wallet.balance,
      wallet.version,
      wallet.updatedAt,
      lockedVersion,
      entry.id,
      entry.amount,
      entry.createdAt,
      entry.kind,
    ]);
    if (written === undefined)
      throw new Error(`wallet ${wallet.userId} changed under its row lock`);
  }

  /** Reads one ledger entry inside a transaction (a replayed recharge's first result). */
  static async findEntry(tx: TxConnection, entryId: string): Promise<LedgerEntry | null> {
    const row = await tx.one(FIND_ENTRY, [entryId]);
    if (row === undefined) return null;
    return new LedgerEntry(
      row.id,
      row.user_id,
      row.kind,
      BigInt(row.amount),
      BigInt(row.balance_after),
      row.wallet_version,
      row.payment_id,
      new Date(row.created_at_ms),
      row.refunded_payment_id,
    );
  }

  /** Reads a wallet without locking it. */
  findWallet(userId: string): Promise<Wallet | null> {
    return this.em.findOne(Wallet, { userId });
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
