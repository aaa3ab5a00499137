import { ConcertSchema } from "./catalog/concert.entity.js";
import { ConcertDateSchema } from "./catalog/concert-date.entity.js";
import { SeatSchema } from "./catalog/seat.entity.js";
import { IdempotencyKeySchema } from "./idempotency/idempotency-key.entity.js";
import { PaymentSchema } from "./payments/payment.entity.js";
import { ReservationSchema } from "./reservations/reservation.entity.js";
import { LedgerEntrySchema } from "./wallet/ledger-entry.entity.js";
import { WalletSchema } from "./wallet/wallet.entity.js";

/**
 * Every entity the ORM maps, listed explicitly: no folder discovery at start-up,
 * and one place to see the whole model.
 */
export const entities = [
  ConcertSchema,
  ConcertDateSchema,
  SeatSchema,
  ReservationSchema,
  WalletSchema,
  LedgerEntrySchema,
  PaymentSchema,
  IdempotencyKeySchema,
];
