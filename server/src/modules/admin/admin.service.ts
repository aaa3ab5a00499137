import { type Database, transaction } from "../../persistence/database.js";
import { TxConnection } from "../../persistence/sql.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError, invalidField } from "../../shared/domain-error.js";
import { newId } from "../../shared/ids.js";
import { IGNORED_SALE_EVENTS, type SaleEvents } from "../../shared/sale-events.js";
import { requireRequestId, requireUserId, requireUuid } from "../../shared/validation.js";
import { SeatRepository } from "../catalog/index.js";
import { claimRequestId } from "../idempotency/index.js";
import type { AdminActor } from "../identity/index.js";
import { type Payment, PaymentRepository } from "../payments/index.js";
import type { SeatGateWriter } from "../queue/index.js";
import {
  type Reservation,
  ReservationRepository,
  type ReservationView,
} from "../reservations/index.js";
import { LedgerEntry, WalletRepository, type WalletView, walletAfter } from "../wallet/index.js";
import { AuditTrail } from "./audit.js";
import { claimOwner } from "./claims.js";

/** The longest note an operator may attach to a change. */
export const MAX_NOTE_LENGTH = 500;

/** What a refund changed (or, for a replay, what the first refund changed). */
export interface RefundResult {
  readonly reservation: ReservationView;
  readonly payment: Payment;
  readonly wallet: WalletView;
  readonly entry: LedgerEntry;
}

/** What a credit changed (or, for a replay, what the first credit changed). */
export interface CreditResult {
  readonly wallet: WalletView;
  readonly entry: LedgerEntry;
}

/** The gate writes a refund makes: forget the seat before, record it free after. */
export type RefundGate = Pick<SeatGateWriter, "invalidate" | "record">;

function reservationNotFound(reservationId: string): DomainError {
  return new DomainError("not_found", "RESERVATION_NOT_FOUND", "no reservation has that id", {
    metadata: { reservation_id: reservationId },
  });
}

/** Checks an operator's free-text note: well-formed, at most 500 characters, may be empty. */
function checkNote(value: string): string {
  if (!value.isWellFormed()) throw invalidField("note", "must be valid Unicode");
  if ([...value].length > MAX_NOTE_LENGTH) {
    throw invalidField("note", `must be at most ${MAX_NOTE_LENGTH} characters`);
  }
  return value;
}

/**
 * The operator's changes to money and tickets. Each one is a single
 * transaction that claims the request id (in the operator's own namespace),
 * takes row locks in the order every transaction uses (request-id claim,
 * reservation, seat, wallet; a payment is only ever changed under its
 * reservation's lock), writes the change, and appends its audit record, so a
 * change and its record commit together or not at all.
 */
export class AdminService {
  constructor(
    private readonly db: Database,
    private readonly gate: RefundGate,
    private readonly clock: Clock,
    private readonly maxBalance: bigint,
    private readonly events: SaleEvents = IGNORED_SALE_EVENTS,
  ) {}

  /**
   * Refunds a confirmed ticket: payment REFUNDED, reservation REFUNDED, the
   * seat AVAILABLE again, and the amount back in the buyer's wallet with a
   * REFUND ledger entry. The seat gate forgets the seat before the
   * transaction (so it can never keep refusing a seat that is free again) and
   * learns it is free after the commit, before the answer, which is also
   * what brings it back into every listing. A retry with the same request
   * id replays; a ticket refunded before (under any request id) is refused
   * with `ALREADY_REFUNDED`, so no refund is ever paid twice. Round trips:
   * one read of the reservation, the gate, then BEGIN, claim, lock
   * reservation, lock payment, lock seat, lock wallet, one write of all five
   * rows and the `ticket.refunded` outbox event, the audit record, COMMIT,
   * then the gate.
   */
  async refundTicket(
    actor: AdminActor,
    input: { reservationId: string; requestId: string; note: string },
  ): Promise<RefundResult> {
    const reservationId = requireUuid(input.reservationId, "reservation_id");
    const requestId = requireRequestId(input.requestId);
    const note = checkNote(input.note);
    const target = await new ReservationRepository(this.db.fork()).findReservation(reservationId);
    if (!target) throw reservationNotFound(reservationId);
    await this.gate.invalidate(
      { concertId: target.concertId, dateId: target.concertDateId },
      target.seatId,
      0,
    );
    const now = this.clock.now();
    const entryId = newId();

    const outcome = await transaction(this.db, async (em) => {
      const tx = await TxConnection.of(em);
      const claim = await claimRequestId(
        tx,
        { userId: claimOwner(actor), requestId, operation: "refund", params: [reservationId] },
        entryId,
        now,
      );
      if (claim.kind === "replay") return { ...(await replayedRefund(tx, claim.resultId)) };

      const reservation = await ReservationRepository.lockReservation(tx, reservationId);
      if (!reservation) throw reservationNotFound(reservationId);
      const reservationBefore = reservation.status;
      reservation.refund();
      const payment = await PaymentRepository.lockOfReservation(tx, reservation.id);
      if (!payment) throw new Error(`confirmed reservation ${reservation.id} has no payment`);
      payment.refund(now);
      const seat = await SeatRepository.lockSeat(tx, reservation.seatId);
      if (!seat) throw new Error(`seat ${reservation.seatId} of a reservation is missing`);
      const wallet = await WalletRepository.lockWallet(tx, payment.userId);
      if (!wallet) throw new Error(`wallet ${payment.userId} of a payment is missing`);

      const seatVersion = seat.version;
      const walletVersion = wallet.version;
      const walletBalance = wallet.balance;
      seat.returnToSale(reservation.id);
      wallet.payBack(payment.amount, now);
      const entry = new LedgerEntry(
        entryId,
        wallet.userId,
        "REFUND",
        payment.amount,
        wallet.balance,
        wallet.version,
        null,
        now,
        payment.id,
      );
      await PaymentRepository.writeRefund(tx, {
        wallet,
        walletVersion,
        seat,
        seatVersion,
        reservation,
        payment,
        entry,
      });
      await AuditTrail.append(tx, {
        actor,
        action: "RefundTicket",
        target: `reservation/${reservation.id}`,
        before: {
          reservation: { status: reservationBefore },
          payment: { id: payment.id, status: "COMPLETED", amount: String(payment.amount) },
          seat: { id: seat.id, status: "SOLD", version: seatVersion },
          wallet: {
            user_id: wallet.userId,
            balance: String(walletBalance),
            version: walletVersion,
          },
        },
        after: {
          reservation: { status: reservation.status },
          payment: { id: payment.id, status: payment.status, amount: String(payment.amount) },
          seat: { id: seat.id, status: seat.status, version: seat.version },
          wallet: {
            user_id: wallet.userId,
            balance: String(wallet.balance),
            version: wallet.version,
          },
          ledger_entry_id: entry.id,
          note,
        },
        requestId,
        at: now,
      });
      return { entry, payment, reservation, freedSeatVersion: seat.version };
    });

    if (outcome.freedSeatVersion !== undefined) {
      await this.gate.record(
        { concertId: target.concertId, dateId: target.concertDateId },
        {
          seatId: target.seatId,
          seatVersion: outcome.freedSeatVersion,
          state: "free",
          heldUntil: 0,
          owner: "",
        },
      );
      this.events.refunded(outcome.payment.amount);
    }
    const { reservation } = outcome;
    return {
      reservation: { reservation, state: reservation.stateAt(this.clock.now()) },
      payment: outcome.payment,
      wallet: walletAfter(outcome.entry),
      entry: outcome.entry,
    };
  }

  /**
   * Credits a user's wallet (a support gesture), creating it if the user has
   * none, with a CREDIT ledger entry; the balance limit applies as for a
   * recharge. A retry with the same request id replays. Round trips: BEGIN,
   * claim, create-and-lock the wallet, one write of wallet and entry, the
   * audit record, COMMIT.
   */
  async creditWallet(
    actor: AdminActor,
    input: { userId: string; amount: bigint; requestId: string; note: string },
  ): Promise<CreditResult> {
    const userId = requireUserId(input.userId);
    if (input.amount <= 0n) throw invalidField("amount", "must be positive");
    if (input.amount > this.maxBalance) {
      throw invalidField("amount", `must be at most ${this.maxBalance}`);
    }
    const amount = input.amount;
    const requestId = requireRequestId(input.requestId);
    const note = checkNote(input.note);
    const now = this.clock.now();
    const entryId = newId();

    const entry = await transaction(this.db, async (em) => {
      const tx = await TxConnection.of(em);
      const claim = await claimRequestId(
        tx,
        { userId: claimOwner(actor), requestId, operation: "credit", params: [userId, amount] },
        entryId,
        now,
      );
      if (claim.kind === "replay") {
        const first = await WalletRepository.findEntry(tx, claim.resultId);
        if (!first)
          throw new Error(`ledger entry ${claim.resultId} of a claimed credit is missing`);
        return first;
      }
      const wallet = await WalletRepository.lockOrCreateWallet(tx, userId, now);
      const lockedVersion = wallet.version;
      const balanceBefore = wallet.balance;
      wallet.credit(amount, this.maxBalance, now);
      const created = new LedgerEntry(
        entryId,
        userId,
        "CREDIT",
        amount,
        wallet.balance,
        wallet.version,
        null,
        now,
      );
      await WalletRepository.writeRecharge(tx, wallet, lockedVersion, created);
      await AuditTrail.append(tx, {
        actor,
        action: "CreditWallet",
        target: `wallet/${userId}`,
        before: { balance: String(balanceBefore), version: lockedVersion },
        after: {
          balance: String(wallet.balance),
          version: wallet.version,
          amount: String(amount),
          ledger_entry_id: created.id,
          note,
        },
        requestId,
        at: now,
      });
      return created;
    });
    return { wallet: walletAfter(entry), entry };
  }
}

/** What the first refund under a claimed request id changed, read back. */
async function replayedRefund(
  tx: TxConnection,
  entryId: string,
): Promise<{ entry: LedgerEntry; payment: Payment; reservation: Reservation }> {
  const entry = await WalletRepository.findEntry(tx, entryId);
  const paymentId = entry?.refundedPaymentId;
  const payment = paymentId ? await PaymentRepository.find(tx, paymentId) : null;
  const reservation = payment && (await ReservationRepository.find(tx, payment.reservationId));
  if (!entry || !payment || !reservation) {
    throw new Error(`the refund of a claimed request (entry ${entryId}) is missing`);
  }
  return { entry, payment, reservation };
}
