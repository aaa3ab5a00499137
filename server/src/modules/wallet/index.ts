/** Prepaid balances and their ledger. */
export { LedgerEntry, type LedgerEntryKind, LedgerEntrySchema } from "./ledger-entry.entity.js";
export { Wallet, WalletSchema } from "./wallet.entity.js";
export {
  assertEntryOf,
  WALLET_COLUMNS,
  WalletRepository,
  type WalletRow,
  walletFromRow,
} from "./wallet.repository.js";
export {
  emptyWallet,
  type WalletLimits,
  WalletService,
  type WalletView,
  walletAfter,
} from "./wallet.service.js";
