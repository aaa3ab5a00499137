import type { EntityManager } from "@mikro-orm/postgresql";
import { statement, type TxConnection } from "../../persistence/sql.js";
import { SEAT_COLUMNS, type Seat, type SeatLockRow, seatFromRow } from "../catalog/index.js";
import { eventIdAndPayload, outboxAppendCte } from "../events/index.js";
import {
  CLAIMED,
  type ClaimAndLock,
  claimAndLock,
  claimAndLockStatement,
  type IdempotentRequest,
} from "../idempotency/index.js";
import {
  RESERVATION_COLUMNS,
  type Reservation,
  type ReservationRow,
  reservationFromRow,
} from "../reservations/index.js";
import {
  assertEntryOf,
  type LedgerEntry,
  WALLET_COLUMNS,
  type Wallet,
  type WalletRow,
  walletFromRow,
} from "../wallet/index.js";
import { Payment, type PaymentStatus } from "./payment.entity.js";

/** A payment row as {@link FIND} selects it. */
interface PaymentRow {
  readonly id: string;
  readonly user_id: string;
  readonly reservation_id: string;
  readonly amount: string;
  readonly status: PaymentStatus;
  readonly created_at_ms: number;
  readonly refunded_at_ms: number | null;
}

const PAYMENT_COLUMNS = `id, user_id, reservation_id, amount, status,
  (extract(epoch from created_at) * 1000)::float8 as created_at_ms,
  (extract(epoch from refunded_at) * 1000)::float8 as refunded_at_ms`;

const FIND = statement<PaymentRow>(
  "payment_find",
  `select ${PAYMENT_COLUMNS} from payment where id = $1`,
);

// A reservation has at most one payment (reservation_id is unique).
const LOCK_OF_RESERVATION = statement<PaymentRow>(
  "payment_lock_of_reservation",
  `select ${PAYMENT_COLUMNS} from payment where reservation_id = $1 for update`,
);

/**
 * Claims a payment's request id and locks what the payment changes, in one
 * round trip and in the one lock order (claim, reservation, seat, wallet):
 * the caller's reservation ($8, only if it is theirs, $7), then, only if it
 * is still HELD, its seat and the caller's wallet. On a replay nothing is
 * locked. Each locked row comes back as JSON (the three share column names);
 * the money columns are text inside it, so they stay exact.
 */
const CLAIM_AND_LOCK = claimAndLockStatement<{
  reservation: ReservationRow | null;
  seat: SeatLockRow | null;
  wallet: WalletRow | null;
}>(
  "payment_claim_and_lock",
  `held as materialized (
     select ${RESERVATION_COLUMNS} from reservation
      where id = $8 and user_id = $7 and ${CLAIMED}
      for update
   ), sold as materialized (
     select ${SEAT_COLUMNS} from seat
      where id = (select seat_id from held where status = 'HELD')
      for update
   ), payer as materialized (
     select ${WALLET_COLUMNS} from wallet
      where user_id = $7 and exists (select 1 from held where status = 'HELD')
      for update
   )`,
  `(select to_json(held) from held) as reservation,
          (select to_json(sold) from sold) as seat,
          (select to_json(payer) from payer) as wallet`,
);

/** The rows a payment locked: its reservation (null if it is not the caller's), and, when that is HELD, its seat and the caller's wallet (null when they have none). */
export interface PaymentLocks {
  readonly reservation: Reservation | null;
  readonly seat: Seat | null;
  readonly wallet: Wallet | null;
}

/**
 * Writes a refund in one statement, the mirror of {@link WRITE_SALE}: the
 * credited wallet, the seat back on sale and the refunded reservation (all
 * three locked by the caller), the refunded payment, and the REFUND ledger
 * entry. The wallet and seat UPDATEs are guarded by the versions the rows
 * were locked at, and the reservation and payment UPDATEs by the states they
 * leave; the entry is inserted only if all four hit their row, from the
 * wallet's new balance and version, so one returned row means every write
 * happened and agrees. The entry's `refunded_payment_id` is unique: a
 * payment is paid back at most once, whatever the code does. Its
 * `ticket.refunded` event is appended by the same statement, under the same
 * condition (no round trip of its own).
 */
const WRITE_REFUND = statement<{ id: string }>(
  "payment_write_refund",
  `with credited as (
     update wallet set balance = $2, version = $3, updated_at = $4
      where user_id = $1 and version = $5
     returning user_id, balance, version
   ), freed as (
     update seat set status = $7, held_until = $8, reservation_id = $9, version = $10
      where id = $6 and version = $11 and status = 'SOLD' and reservation_id = $12
     returning id
   ), cancelled as (
     update reservation set status = $13
      where id = $12 and status = 'CONFIRMED'
     returning id
   ), paid_back as (
     update payment set status = $15, refunded_at = $16
      where id = $14 and reservation_id = $12 and status = 'COMPLETED'
     returning id
   ), ${outboxAppendCte(
     "refunded_event",
     `select $20::uuid, $21::uuid, 'ticket.refunded', $22::jsonb, $16
        from credited, freed, cancelled, paid_back`,
   )}
   insert into ledger_entry (id, user_id, kind, amount, balance_after, wallet_version, payment_id,
                             refunded_payment_id, created_at)
   select $17, credited.user_id, 'REFUND', $18, credited.balance, credited.version, null,
          paid_back.id, $19
     from credited, freed, cancelled, paid_back
   returning id`,
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
 * statement, when every row it writes exists. Its `ticket.sold` event is
 * appended by the same statement from the inserted payment (no round trip of
 * its own).
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
   ), ${outboxAppendCte(
     "sold_event",
     "select $24::uuid, $25::uuid, 'ticket.sold', $26::jsonb, $20 from paid",
   )}
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

/** What a refund changed, as its domain methods left it, for {@link PaymentRepository.writeRefund}. */
export interface Refund {
  /** Credited by `wallet.payBack`, locked at `walletVersion`. */
  readonly wallet: Wallet;
  readonly walletVersion: number;
  /** Back on sale by `seat.returnToSale`, locked at `seatVersion`. */
  readonly seat: Seat;
  readonly seatVersion: number;
  /** Refunded by `reservation.refund`. */
  readonly reservation: Reservation;
  /** Refunded by `payment.refund`. */
  readonly payment: Payment;
  /** The REFUND ledger entry of the credit. */
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

  /**
   * Claims a payment's request id and, when the claim is new, locks the
   * caller's reservation and, if it is held, its seat and the caller's
   * wallet: one round trip for what {@link claimRequestId} and three lock
   * statements would take four (see {@link CLAIM_AND_LOCK}).
   */
  static async claimAndLock(
    tx: TxConnection,
    request: IdempotentRequest,
    paymentId: string,
    now: Date,
    reservationId: string,
  ): Promise<ClaimAndLock<PaymentLocks>> {
    return claimAndLock(
      tx,
      CLAIM_AND_LOCK,
      request,
      paymentId,
      now,
      [request.userId, reservationId],
      (row) => ({
        reservation: row?.reservation ? reservationFromRow(row.reservation) : null,
        seat: row?.seat ? seatFromRow(row.seat) : null,
        wallet: row?.wallet ? walletFromRow(request.userId, row.wallet) : null,
      }),
    );
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
      ...ticketEventParams(reservation, payment),
    ]);
    if (written === undefined) {
      throw new Error(`a row of payment ${payment.id} changed under its row lock`);
    }
  }

  /** Writes a whole refund in one statement (see {@link WRITE_REFUND}); nothing is locked here. */
  static async writeRefund(tx: TxConnection, refund: Refund): Promise<void> {
    const { wallet, seat, reservation, payment, entry } = refund;
    assertEntryOf(wallet, entry, "REFUND");
    if (
      entry.refundedPaymentId !== payment.id ||
      entry.amount !== payment.amount ||
      payment.userId !== wallet.userId ||
      payment.reservationId !== reservation.id ||
      payment.refundedAt === null ||
      reservation.seatId !== seat.id
    ) {
      throw new Error(`refund of payment ${payment.id} does not match the rows it changes`);
    }
    const written = await tx.one(WRITE_REFUND, [
      wallet.userId,
      wallet.balance,
      wallet.version,
      wallet.updatedAt,
      refund.walletVersion,
      seat.id,
      seat.status,
      seat.heldUntil,
      seat.reservationId,
      seat.version,
      refund.seatVersion,
      reservation.id,
      reservation.status,
      payment.id,
      payment.status,
      payment.refundedAt,
      entry.id,
      entry.amount,
      entry.createdAt,
      ...ticketEventParams(reservation, payment),
    ]);
    if (written === undefined) {
      throw new Error(`a row of the refund of payment ${payment.id} changed under its row lock`);
    }
  }

  /** Reads a payment inside a transaction (a replayed payment's first result). */
  static async find(tx: TxConnection, paymentId: string): Promise<Payment | null> {
    const row = await tx.one(FIND, [paymentId]);
    return row === undefined ? null : paymentFromRow(row);
  }

  /**
   * Locks the payment of a reservation with `FOR UPDATE`; null when it was
   * never paid. Take the reservation's row lock first: every change of a
   * payment happens under it.
   */
  static async lockOfReservation(tx: TxConnection, reservationId: string): Promise<Payment | null> {
    const row = await tx.one(LOCK_OF_RESERVATION, [reservationId]);
    return row === undefined ? null : paymentFromRow(row);
  }
}

/** The event id, concert id and payload of a `ticket.sold` or `ticket.refunded` event. */
function ticketEventParams(reservation: Reservation, payment: Payment): [string, string, string] {
  const [id, payload] = eventIdAndPayload({
    reservation_id: reservation.id,
    payment_id: payment.id,
    user_id: payment.userId,
    seat_id: reservation.seatId,
    seat_number: reservation.seatNumber,
    concert_date_id: reservation.concertDateId,
    amount: String(payment.amount),
  });
  return [id, reservation.concertId, payload];
}

/** A payment entity from its row. */
function paymentFromRow(row: PaymentRow): Payment {
  const payment = new Payment(
    row.id,
    row.user_id,
    row.reservation_id,
    BigInt(row.amount),
    new Date(row.created_at_ms),
  );
  payment.status = row.status;
  payment.refundedAt = row.refunded_at_ms === null ? null : new Date(row.refunded_at_ms);
  return payment;
}
