import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { LedgerEntryKind, type LedgerEntrySchema, type WalletSchema } from "@stagedoor/sdk";
import type {
  LedgerEntryKind as DomainKind,
  LedgerEntry,
  WalletView,
} from "../../modules/wallet/index.js";

const KINDS: Record<DomainKind, LedgerEntryKind> = {
  RECHARGE: LedgerEntryKind.RECHARGE,
  PAYMENT: LedgerEntryKind.PAYMENT,
  REFUND: LedgerEntryKind.REFUND,
  CREDIT: LedgerEntryKind.CREDIT,
};

/** Maps a wallet to its API message. */
export function toWallet(wallet: WalletView): MessageInitShape<typeof WalletSchema> {
  return {
    userId: wallet.userId,
    balance: wallet.balance,
    version: BigInt(wallet.version),
    ...(wallet.updatedAt ? { updateTime: timestampFromDate(wallet.updatedAt) } : {}),
  };
}

/** Maps a ledger entry to its API message. */
export function toLedgerEntry(entry: LedgerEntry): MessageInitShape<typeof LedgerEntrySchema> {
  return {
    id: entry.id,
    amount: entry.amount,
    balanceAfter: entry.balanceAfter,
    kind: KINDS[entry.kind],
    paymentId: entry.paymentId ?? entry.refundedPaymentId ?? "",
    createTime: timestampFromDate(entry.createdAt),
  };
}
