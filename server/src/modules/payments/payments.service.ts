import type { Logger } from "../../logger.js";
import type { Database } from "../../persistence/database.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError, invalidField } from "../../shared/domain-error.js";
import { newId } from "../../shared/ids.js";
import { requireRequestId, requireUuid } from "../../shared/validation.js";
import type { CatalogService } from "../catalog/index.js";
import { SeatRepository } from "../catalog/index.js";
import { claimRequestId } from "../idempotency/index.js";
import { assertAdmitted, type Principal } from "../identity/index.js";
import type { ReservationView } from "../reservations/index.js";
import { ReservationRepository } from "../reservations/index.js";
import { LedgerEntry, WalletRepository } from "../wallet/index.js";
import { Payment } from "./payment.entity.js";

/** Ends a caller's admission once they have paid, freeing the slot for the next in line. */
export interface AdmissionEnder {
  endAdmission(principal: Principal): Promise<void>;
}

/** A payment together with the reservation it confirmed. */
export interface PaymentResult {
  readonly payment: Payment;
  readonly reservation: ReservationView;
}

function reservationNotFound(reservationId: string): DomainError {
  return new DomainError(
    "not_found",
    "RESERVATION_NOT_FOUND",
    "no reservation of yours has that id",
    {
      metadata: { reservation_id: reservationId },
    },
  );
}

/**
 * Pays for held seats from the prepaid balance. One transaction claims the
 * request id, then locks the reservation, the seat and the wallet in that
 * order (the order every transaction uses), checks everything, and writes the
 * payment, the ledger entry, the confirmed reservation and the sold seat.
 * Only after it commits does the admission end: no network call happens while
 * a row is locked.
 */
export class PaymentsService {
  constructor(
    private readonly db: Database,
    private readonly catalog: CatalogService,
    private readonly admissions: AdmissionEnder,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Pays for one of the caller's held reservations; a retry with the same request id replays. */
  async pay(
    principal: Principal,
    input: { reservationId: string; amount: bigint; requestId: string },
  ): Promise<PaymentResult> {
    const reservationId = requireUuid(input.reservationId, "reservation_id");
    const requestId = requireRequestId(input.requestId);
    if (input.amount <= 0n) throw invalidField("amount", "must be positive");
    const amount = input.amount;
    const now = this.clock.now();
    const paymentId = newId();

    const outcome = await this.db.fork().transactional(async (em) => {
      const reservations = new ReservationRepository(em);
      const claim = await claimRequestId(
        em,
        { userId: principal.userId, requestId, operation: "pay", params: [reservationId, amount] },
        paymentId,
        now,
      );
      if (claim.kind === "replay") {
        const payment = await em.findOne(Payment, { id: claim.resultId });
        const reservation = await reservations.findReservation(reservationId);
        if (!payment || !reservation) throw reservationNotFound(reservationId);
        return { payment, reservation, replayed: true };
      }

      const reservation = await reservations.lockReservation(reservationId);
      if (!reservation || reservation.userId !== principal.userId) {
        throw reservationNotFound(reservationId);
      }
      reservation.assertHeld(now);
      assertAdmitted(principal, now, reservation.concertId);
      this.catalog.assertOnSale(await this.catalog.dateFacts(reservation.concertDateId), now);
      if (amount !== reservation.price) {
        throw new DomainError(
          "invalid_argument",
          "AMOUNT_MISMATCH",
          `amount must equal the seat's price of ${reservation.price}`,
          {
            violations: [
              {
                field: "amount",
                description: `must equal the seat's price of ${reservation.price}`,
              },
            ],
            metadata: { price: String(reservation.price) },
          },
        );
      }
      const seat = await new SeatRepository(em).lockSeat(reservation.seatId);
      if (!seat) throw new Error(`seat ${reservation.seatId} of a reservation is missing`);
      const wallet = await new WalletRepository(em).lockWallet(principal.userId);
      if (!wallet) {
        throw new DomainError(
          "failed_precondition",
          "INSUFFICIENT_BALANCE",
          "the balance is too low for this payment",
          { metadata: { balance: "0", amount: String(amount) } },
        );
      }

      wallet.debit(amount, now);
      seat.sell(reservation.id, now);
      reservation.confirm(now);
      const payment = new Payment(paymentId, principal.userId, reservation.id, amount, now);
      const entry = new LedgerEntry(
        newId(),
        wallet.userId,
        "PAYMENT",
        -amount,
        wallet.balance,
        wallet.version,
        payment.id,
        now,
      );
      em.persist(payment);
      em.persist(entry);
      return { payment, reservation, replayed: false };
    });

    if (!outcome.replayed) {
      try {
        await this.admissions.endAdmission(principal);
      } catch (error) {
        // The payment stands; the admission still ends at its expiry.
        this.logger.warn(
          { err: error, userId: principal.userId },
          "could not end admission after payment",
        );
      }
    }
    const { reservation } = outcome;
    return {
      payment: outcome.payment,
      reservation: { reservation, state: reservation.stateAt(now) },
    };
  }

  /** One of the caller's payments. */
  async get(principal: Principal, paymentId: string): Promise<Payment> {
    requireUuid(paymentId, "payment_id");
    const payment = await this.db.fork().findOne(Payment, { id: paymentId });
    if (!payment || payment.userId !== principal.userId) {
      throw new DomainError("not_found", "PAYMENT_NOT_FOUND", "no payment of yours has that id", {
        metadata: { payment_id: paymentId },
      });
    }
    return payment;
  }
}
