import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CreditWalletResponseSchema, RefundTicketResponseSchema } from "@stagedoor/sdk";
import type { CreditResult, RefundResult } from "../../modules/admin/index.js";
import { toPayment } from "./payment.mapper.js";
import { toReservation } from "./reservation.mapper.js";
import { toLedgerEntry, toWallet } from "./wallet.mapper.js";

/** Maps a refund to its API response. */
export function toRefundTicketResponse(
  result: RefundResult,
): MessageInitShape<typeof RefundTicketResponseSchema> {
  return {
    reservation: toReservation(result.reservation),
    payment: toPayment(result.payment),
    wallet: toWallet(result.wallet),
    entry: toLedgerEntry(result.entry),
  };
}

/** Maps a credit to its API response. */
export function toCreditWalletResponse(
  result: CreditResult,
): MessageInitShape<typeof CreditWalletResponseSchema> {
  return { wallet: toWallet(result.wallet), entry: toLedgerEntry(result.entry) };
}
