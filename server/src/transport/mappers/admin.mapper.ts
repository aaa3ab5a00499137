import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type CreditWalletResponseSchema,
  type ImportSeatMapResponseSchema,
  type RefundTicketResponseSchema,
  type SaleStatsSchema,
  SeatMapFormat,
} from "@stagedoor/sdk";
import type {
  CreditResult,
  RefundResult,
  SaleStats,
  SeatMapImport,
} from "../../modules/admin/index.js";
import type { SeatMapFormat as DomainSeatMapFormat } from "../../modules/catalog/index.js";
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

/** The seat-map format of a request; undefined for UNSPECIFIED or an unknown value. */
export function fromSeatMapFormat(format: SeatMapFormat): DomainSeatMapFormat | undefined {
  switch (format) {
    case SeatMapFormat.CSV:
      return "csv";
    case SeatMapFormat.JSON:
      return "json";
    default:
      return undefined;
  }
}

/** Maps a seat-map import to its API response. */
export function toImportSeatMapResponse(
  result: SeatMapImport,
): MessageInitShape<typeof ImportSeatMapResponseSchema> {
  return {
    problems: result.problems.map((p) => ({
      line: p.line,
      field: p.field,
      description: p.description,
    })),
    seatCount: result.seatCount,
    applied: result.applied,
  };
}

/** Maps a concert's sale figures to their API message. */
export function toSaleStats(stats: SaleStats): MessageInitShape<typeof SaleStatsSchema> {
  return {
    totalSeats: stats.totalSeats,
    availableSeats: stats.availableSeats,
    heldSeats: stats.heldSeats,
    soldSeats: stats.soldSeats,
    revenue: stats.revenue,
    refundedTickets: stats.refundedTickets,
    refundedAmount: stats.refundedAmount,
    soldLastFiveMinutes: stats.soldInWindow,
    salesPerMinute: stats.salesPerMinute,
    estimatedTimeToSellOut:
      stats.timeToSellOutMs === null ? undefined : durationFromMs(stats.timeToSellOutMs),
    readTime: timestampFromDate(stats.readAt),
    waitingCount: stats.waiting,
    admittedCount: stats.admitted,
    admissionsPerMinute: stats.admissionsPerMinute,
  };
}
