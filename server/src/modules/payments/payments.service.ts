import type { Logger } from "../../logger.js";
import type { Database } from "../../persistence/database.js";
import { TxConnection } from "../../persistence/sql.js";
import type { WriteBatcher } from "../../persistence/write-batcher.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError, invalidField } from "../../shared/domain-error.js";
import { newId } from "../../shared/ids.js";
import { IGNORED_SALE_EVENTS, type SaleEvents } from "../../shared/sale-events.js";
import { requireRequestId, requireUuid } from "../../shared/validation.js";
import type { CatalogService, Seat } from "../catalog/index.js";
import { claimTakeBack } from "../idempotency/index.js";
import { assertAdmitted, type Principal, type Reader } from "../identity/index.js";
import type { SeatGateWriter } from "../queue/index.js";
import {
  type Reservation,
  ReservationRepository,
  type ReservationView,
} from "../reservations/index.js";
import { LedgerEntry } from "../wallet/index.js";
import { Payment } from "./payment.entity.js";
import { PaymentRepository } from "./payment.repository.js";

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

/** What the gate is told after a sale (a `SeatGateWriter`; its `record` never throws). */
export type SaleRecorder = Pick<SeatGateWriter, "record">;

/**
 * Pays for held seats from the prepaid balance. One transaction claims the
 * request id, then locks the reservation, the seat and the wallet in that
 * order (the order every transaction uses), checks everything, and writes the
 * payment, the ledger entry, the confirmed reservation and the sold seat.
 * Under load that transaction carries other payments and recharges too, each
 * with its own locks and outcome (group commit, see `WriteBatcher`).
 * Only after it commits does the admission end and the seat gate learn of
 * the sale: no network call happens while a row is locked.
 *
 * The transaction is MikroORM's; its statements are prepared statements on
 * its connection, and the domain rules stay in the entities, hydrated from
 * the locked rows (`confirm`, `sell`, `debit`), whose resulting state is
 * written by one statement instead of the unit of work's flush.
 */
export class PaymentsService {
  constructor(
    private readonly db: Database,
    private readonly writes: WriteBatcher,
    private readonly catalog: CatalogService,
    private readonly admissions: AdmissionEnder,
    private readonly seats: SaleRecorder,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly events: SaleEvents = IGNORED_SALE_EVENTS,
  ) {}

  /**
   * Pays for one of the caller's held reservations; a retry with the same
   * request id replays. Four round trips: BEGIN, the request-id claim with
   * the locks of the reservation, the seat and the wallet (one statement),
   * one write of all five rows and the `ticket.sold` outbox event, COMMIT;
   * then, concurrently, ending the admission and recording the sale in the
   * seat gate. A replay: BEGIN, claim, read the claim, read the payment, read
   * the reservation, COMMIT, and nothing after. The first
   * payment for a date in this process reads the date's facts too, on the
   * same connection (one more round trip). Under load the transaction is
   * shared with other payments and recharges (see `WriteBatcher`): BEGIN and
   * COMMIT are then paid once per batch, and the claim and the write each
   * share a round trip with the other writes' statements of the same step.
   */
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

    const outcome = await this.transact({
      principal,
      reservationId,
      amount,
      requestId,
      now,
      paymentId,
    });

    if (outcome.sold !== null) {
      await Promise.all([
        this.endAdmission(principal),
        this.recordSale(principal, outcome.reservation, outcome.sold),
      ]);
      this.events.sold(outcome.payment.amount);
    }
    const { reservation } = outcome;
    return {
      payment: outcome.payment,
      reservation: { reservation, state: reservation.stateAt(now) },
    };
  }

  /** The payment's transaction (see {@link pay}). */
  private transact(attempt: Attempt): Promise<Outcome> {
    const { principal, reservationId, amount, requestId, now, paymentId } = attempt;
    const request = {
      userId: principal.userId,
      requestId,
      operation: "pay",
      params: [reservationId, amount],
    } as const;
    // Every refusal below comes before writeSale: the claim is all it wrote.
    const takeBack = claimTakeBack(request, paymentId);
    return this.writes.run(
      principal.userId,
      async (em): Promise<Outcome> => {
        const tx = await TxConnection.of(em);
        const claim = await PaymentRepository.claimAndLock(
          tx,
          request,
          paymentId,
          now,
          reservationId,
        );
        if (claim.kind === "replay") {
          const payment = await PaymentRepository.find(tx, claim.resultId);
          const reservation =
            payment && (await ReservationRepository.find(tx, payment.reservationId));
          if (!payment || !reservation) throw reservationNotFound(reservationId);
          return { payment, reservation, sold: null };
        }

        const { reservation, seat, wallet } = claim.locked;
        if (!reservation || reservation.userId !== principal.userId) {
          throw reservationNotFound(reservationId);
        }
        reservation.assertHeld(now);
        assertAdmitted(principal, now, reservation.concertId);
        this.catalog.assertOnSale(await this.catalog.dateFacts(reservation.concertDateId, tx), now);
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
        if (!seat) throw new Error(`seat ${reservation.seatId} of a reservation is missing`);
        if (!wallet) {
          throw new DomainError(
            "failed_precondition",
            "INSUFFICIENT_BALANCE",
            "the balance is too low for this payment",
            { metadata: { balance: "0", amount: String(amount) } },
          );
        }

        const walletVersion = wallet.version;
        const seatVersion = seat.version;
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
        await PaymentRepository.writeSale(tx, {
          wallet,
          walletVersion,
          seat,
          seatVersion,
          reservation,
          payment,
          entry,
        });
        return { payment, reservation, sold: seat };
      },
      takeBack,
    );
  }

  /** One of the caller's payments. */
  async get(principal: Reader, paymentId: string): Promise<Payment> {
    requireUuid(paymentId, "payment_id");
    const payment = await new PaymentRepository(this.db.fork()).findPayment(paymentId);
    if (!payment || payment.userId !== principal.userId) {
      throw new DomainError("not_found", "PAYMENT_NOT_FOUND", "no payment of yours has that id", {
        metadata: { payment_id: paymentId },
      });
    }
    return payment;
  }

  /** Frees the payer's queue slot; a failure is logged, the payment stands. */
  private async endAdmission(principal: Principal): Promise<void> {
    try {
      await this.admissions.endAdmission(principal);
    } catch (error) {
      // The admission still ends at its expiry.
      this.logger.warn(
        { err: error, userId: principal.userId },
        "could not end admission after payment",
      );
    }
  }

  /** Tells the seat gate the seat is sold, at the row version the sale left it. */
  private async recordSale(
    principal: Principal,
    reservation: Reservation,
    seat: Seat,
  ): Promise<void> {
    try {
      const date = { concertId: reservation.concertId, dateId: reservation.concertDateId };
      await this.seats.record(date, {
        seatId: seat.id,
        seatVersion: seat.version,
        state: "sold",
        heldUntil: 0,
        owner: principal.userId,
      });
    } catch (error) {
      // A SeatGateWriter never throws; a gate that misses a sale only sends
      // more attempts on that seat to the database, which refuses them.
      this.logger.warn({ err: error, seatId: seat.id }, "could not record a sale in the seat gate");
    }
  }
}

/** One payment request, as the transaction needs it. */
interface Attempt {
  readonly principal: Principal;
  readonly reservationId: string;
  readonly amount: bigint;
  readonly requestId: string;
  readonly now: Date;
  readonly paymentId: string;
}

/** What the payment transaction returns: `sold` is null for a replay. */
interface Outcome {
  readonly payment: Payment;
  readonly reservation: Reservation;
  readonly sold: Seat | null;
}
