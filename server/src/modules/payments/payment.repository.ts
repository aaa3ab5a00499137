import type { EntityManager } from "@mikro-orm/postgresql";
import { statement, type TxConnection } from "../../persistence/sql.js";
import type { Seat } from "../catalog/index.js";
import type { Reservation } from "../reservations/index.js";
import { assertEntryOf, type LedgerEntry, type Wallet } from "../wallet/index.js";
import { Payment } from "./payment.entity.js";

/** A payment row as {@link FIND} selects it. */
interface PaymentRow {
  readonly id: string;
  readonly user_id: string;
  readonly reservation_id: string;
  readonly amount: string;
  readonly created_at_ms: number;
}

const FIND = statement<PaymentRow>(
  "payment_find",
  `select id, user_id, reservation_id, amount, (extract(epoch from created_at) * 1000)::float8 as created_at_ms
     from payment where id = $1`,
);

/**
 * Writes a sale in one statement: the debited wallet, the sold seat and the
 * confirmed reservation (all three locked by the caller), the payment, and
 * its ledger entry. The wallet and seat UPDATEs are guarded by the versions
 * the rows were locked at; the payment is inserted only if all three UPDATEs
 * hit their row, and the ledger entry only from the inserted payment and the
 * wallet's new balance and version, so one returned row means all five
 * writes happened and agree. The ledger entry's foreign key to the payment is
 * deferred (checked at COMMIT); the others are checked at the end of this
 * statement, when every row it writes exists.
 */
const WRITE_SALE = statement<{ id: string }>(
  "payment_write_sale",
  `with debited as (
     update wallet set balance = $2, version = $3, updated_at = $4
      where user_id = $1 and version = $5
     returning user_id, balance, version
   ), sold as (
     update seat set status = $7, held_until = $8, reservation_id = $9, version = $10
      where id = $6 and version = $11
     returning id
   ), confirmed as (
     update reservation set status = $13, held_until = $14, confirmed_at = $15, ended_at = $16
      where id = $12
     returning id
   ), paid as (
     insert into payment (id, user_id, reservation_id, amount, status, created_at)
     select $17, debited.user_id, confirmed.id, $18, $19, $20
       from debited, sold, confirmed
     returning id
   )
   insert into ledger_entry (id, user_id, kind, amount, balance_after, wallet_version, payment_id, created_at)
   select $21, debited.user_id, 'PAYMENT', $22, debited.balance, debited.version, paid.id, $23
     from paid, debited
   returning id`,
);

/** What a payment changed, as its domain methods left it, for {@link PaymentRepository.writeSale}. */
export interface Sale {
  /** Debited by `wallet.debit`, locked at `walletVersion`. */
  readonly wallet: Wallet;
  readonly walletVersion: number;
  /** Sold by `seat.sell`, locked at `seatVersion`. */
  readonly seat: Seat;
  readonly seatVersion: number;
  /** Confirmed by `reservation.confirm`. */
  readonly reservation: Reservation;
  readonly payment: Payment;
  /** The PAYMENT ledger entry of the debit. */
  readonly entry: LedgerEntry;
}

/**
 * Payment queries. The static methods are the write path: they run inside a
 * transaction, on its connection, as prepared statements (one round trip
 * each). The instance method is the ORM read of GetPayment, a cold path.
 */
export class PaymentRepository {
  constructor(private readonly em: EntityManager) {}

  /** Reads a payment without locking it. */
  findPayment(paymentId: string): Promise<Payment | null> {
    return this.em.findOne(Payment, { id: paymentId });
  }

  /** Writes a whole sale in one statement (see {@link WRITE_SALE}); nothing is locked here. */
  static async writeSale(tx: TxConnection, sale: Sale): Promise<void> {
    const { wallet, seat, reservation, payment, entry } = sale;
    assertEntryOf(wallet, entry, "PAYMENT");
    if (
      entry.paymentId !== payment.id ||
      entry.amount !== -payment.amount ||
      payment.userId !== wallet.userId ||
      payment.reservationId !== reservation.id ||
      reservation.seatId !== seat.id
    ) {
      throw new Error(`payment ${payment.id} does not match the rows it changes`);
    }
    const written = await tx.one(WRITE_SALE, [
      wallet.userId,
      wallet.balance,
      wallet.version,
      wallet.updatedAt,
      sale.walletVersion,
      seat.id,
      seat.status,
      seat.heldUntil,
      seat.reservationId,
      seat.version,
      sale.seatVersion,
      reservation.id,
      reservation.status,
      reservation.heldUntil,
      reservation.confirmedAt,
      reservation.endedAt,
      payment.id,
      payment.amount,
      payment.status,
      payment.createdAt,
      entry.id,
      entry.amount,
      entry.createdAt,
    ]);
    if (written === undefined) {
      throw new Error(`a row of payment ${payment.id} changed under its row lock`);
    }
  }

  /** Reads a payment inside a transaction (a replayed payment's first result). */
  static async find(tx: TxConnection, paymentId: string): Promise<Payment | null> {
    const row = await tx.one(FIND, [paymentId]);
    if (row === undefined) return null;
    return new Payment(
      row.id,
      row.user_id,
      row.reservation_id,
      BigInt(row.amount),
      new Date(row.created_at_ms),
    );
  }
}
