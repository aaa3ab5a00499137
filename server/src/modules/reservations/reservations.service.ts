import { UniqueConstraintViolationException } from "@mikro-orm/core";
import { type Database, transaction } from "../../persistence/database.js";
import { TxConnection } from "../../persistence/sql.js";
import { WriteBatcher } from "../../persistence/write-batcher.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError } from "../../shared/domain-error.js";
import { newId } from "../../shared/ids.js";
import { decodePageToken, pageOf } from "../../shared/page-token.js";
import { IGNORED_SALE_EVENTS, type SaleEvents } from "../../shared/sale-events.js";
import { pageSize, requireRequestId, requireUuid } from "../../shared/validation.js";
import type { CatalogService, Seat } from "../catalog/index.js";
import { SeatRepository } from "../catalog/index.js";
import {
  claimRequestId,
  claimTakeBack,
  type IdempotentRequest,
  releaseClaim,
} from "../idempotency/index.js";
import { assertAdmitted, type Principal, type Reader } from "../identity/index.js";
import {
  type GateDate,
  gateRefuses,
  type SeatChange,
  type SeatGate,
  type SeatGateEntry,
  type SeatGateWriter,
} from "../queue/index.js";
import { Reservation } from "./reservation.entity.js";
import { ReservationRepository } from "./reservation.repository.js";

/** A reservation as callers see it, with its state at the time of the read. */
export interface ReservationView {
  readonly reservation: Reservation;
  readonly state: ReturnType<Reservation["stateAt"]>;
}

function notFound(reservationId: string): DomainError {
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
 * Seat holds. A hold is decided on the seat's row lock, recorded with an
 * explicit `held_until`, and expires by time alone; the sweeper only tidies
 * up afterwards. Attempts the seat gate knows cannot win are refused before
 * any transaction, and every committed change is written to the gate before
 * the caller hears of it.
 */
export class ReservationsService {
  constructor(
    private readonly db: Database,
    private readonly catalog: CatalogService,
    private readonly gate: SeatGate,
    private readonly gateWriter: SeatGateWriter,
    private readonly clock: Clock,
    private readonly holdTtlMs: number,
    private readonly events: SaleEvents = IGNORED_SALE_EVENTS,
    private readonly holds: WriteBatcher = WriteBatcher.alone(db),
  ) {}

  /**
   * Holds a seat for an admitted caller, at most one per user; retrying with
   * the same request id replays the first result, and asking again for the
   * seat one already holds returns that hold (whatever the request id).
   *
   * `peeked` is the seat's gate entry if the caller's authentication already
   * read it (the transport does, in the same round trip); otherwise the gate
   * is read here. A seat the gate knows is sold, or held by someone else until
   * a time still ahead, is refused at once with no transaction. Anything else
   * goes to the database, which alone decides a win: one transaction of four
   * round trips (BEGIN; one statement that claims the request id, locks the
   * caller's own hold and, only if there is none, the seat with SKIP LOCKED;
   * one write of the seat, the reservation and its `seat.held` outbox event;
   * COMMIT), with every check that needs no lock (admission, concert, sale
   * window, one hold per user) made before the seat's row lock is taken, so
   * only a likely winner ever holds it. An unswept expired hold of the caller
   * costs two more (expire it, then lock the seat); one asked again for the
   * seat the caller holds, one more (its claim is taken back).
   *
   * Under load the transaction is shared with other holds (group commit, see
   * `WriteBatcher`; lanes of their own, so holds never wait behind payments):
   * BEGIN and COMMIT are paid once per batch, every hold's claim and locks go
   * in one round trip and every write in the next. Each hold keeps its own
   * locks and outcome, at most one per user per batch; of two holds of one
   * batch that lock the same seat, the second is refused as if the lock were
   * another transaction's (see `SeatRepository.firstToLock`), and a refused
   * hold takes back its claim so the batch commits the others.
   */
  async hold(
    principal: Principal,
    input: { seatId: string; requestId: string },
    peeked?: SeatGateEntry | null,
  ): Promise<ReservationView> {
    try {
      const { view, created } = await this.decideHold(principal, input, peeked);
      this.events.hold(created ? "held" : "repeated");
      return view;
    } catch (error) {
      if (error instanceof DomainError && error.reason === "SEAT_UNAVAILABLE") {
        this.events.hold("refused");
      }
      throw error;
    }
  }

  /** {@link hold}'s decision, and whether it made a new hold. */
  private async decideHold(
    principal: Principal,
    input: { seatId: string; requestId: string },
    peeked: SeatGateEntry | null | undefined,
  ): Promise<{ view: ReservationView; created: boolean }> {
    const seatId = requireUuid(input.seatId, "seat_id");
    const requestId = requireRequestId(input.requestId);
    const seat = await this.catalog.seatFacts(seatId);
    const now = this.clock.now();
    const date = await this.catalog.dateFacts(seat.concertDateId);
    const gateDate = { concertId: date.concertId, dateId: date.id };
    const entry = peeked !== undefined ? peeked : await this.peek(gateDate, seat.id);
    if (gateRefuses(entry, principal.userId, now.getTime())) throw seatUnavailable(seatId);
    const reservationId = newId();
    // The checks that need no row, made before any lock is taken; a refused
    // caller still gets the replay of a hold they made earlier.
    const refusal = refusalOf(() => {
      assertAdmitted(principal, now, date.concertId);
      this.catalog.assertOnSale(date, now);
    });
    // What the locked seat row said when it was not free, for the gate.
    let observed: SeatChange | undefined;
    let outcome: HoldOutcome;
    const request = {
      userId: principal.userId,
      requestId,
      operation: "hold",
      params: [seatId],
    } as const;
    // Every refusal below comes before any write but an expiry that was due
    // anyway (an unswept hold of the caller): the claim is all it takes back.
    const takeBack = claimTakeBack(request, reservationId);
    try {
      outcome = await this.holds.run(
        principal.userId,
        async (em): Promise<HoldOutcome> => {
          const tx = await TxConnection.of(em);
          if (refusal !== undefined) {
            const first = await replayOf(tx, request, reservationId, now);
            if (first) return { reservation: first };
            throw refusal;
          }
          const claim = await ReservationRepository.claimAndLockForHold(
            tx,
            request,
            reservationId,
            now,
            seatId,
          );
          if (claim.kind === "replay")
            return { reservation: await firstResult(tx, claim.resultId) };
          const { own } = claim.locked;
          let locked = claim.locked.seat;
          if (own !== null) {
            // Asking again for the seat one holds is answered with that hold
            // (idempotent by state: a retry after a lost answer, whatever its
            // request id). Nothing was written, so nothing is kept.
            if (own.stateAt(now) === "HELD" && own.seatId === seatId) {
              // Nothing is written, and the request id stays free.
              await releaseClaim(tx, request, reservationId);
              return { reservation: own, already: true };
            }
            if (own.stateAt(now) === "HELD") throw holdLimitReached(own.id);
            // Expired by time but not swept yet: tidy it so the user may hold again.
            await ReservationRepository.expireHold(tx, own, now);
            locked = await SeatRepository.lockSeatSkipLocked(tx, seatId);
          }
          // Someone else's attempt holds the row lock right now.
          if (locked === null) throw seatUnavailable(seatId);
          if (locked.seat.stateAt(now) !== "AVAILABLE") {
            observed = gateChangeOf(locked.seat, locked.holder);
            throw seatUnavailable(seatId);
          }
          const admissionEnd = principal.admissionExpiresAt?.getTime() ?? now.getTime();
          // The concert's own hold length (its sale settings, read with the token) or the server's.
          const holdTtlMs = principal.holdMs || this.holdTtlMs;
          const heldUntil = new Date(Math.min(now.getTime() + holdTtlMs, admissionEnd));
          locked.seat.hold(reservationId, heldUntil, now);
          const created = new Reservation(
            reservationId,
            principal.userId,
            date.concertId,
            date.id,
            date.date,
            seat.id,
            seat.number,
            seat.price,
            heldUntil,
            now,
          );
          await ReservationRepository.insertHold(tx, created, locked.seat);
          return { reservation: created, seatVersion: locked.seat.version };
        },
        takeBack,
      );
    } catch (error) {
      if (observed !== undefined) await this.gateWriter.record(gateDate, observed);
      // Two holds of one user racing on different seats: the index decides.
      if (isOneHoldPerUserViolation(error)) throw holdLimitReached();
      throw error;
    }
    const { reservation, seatVersion } = outcome;
    if (outcome.already)
      return { view: { reservation, state: reservation.stateAt(now) }, created: false };
    if (seatVersion !== undefined) {
      await this.gateWriter.record(gateDate, {
        seatId,
        seatVersion,
        state: "held",
        heldUntil: reservation.heldUntil.getTime(),
        owner: principal.userId,
      });
    }
    const view = { reservation, state: reservation.stateAt(this.clock.now()) };
    return { view, created: seatVersion !== undefined };
  }

  /**
   * Gives up one of the caller's unexpired holds and frees the seat at once.
   * The gate forgets the seat first (so a crash after the commit can never
   * leave it refusing a free seat), then one transaction of six round trips
   * (BEGIN, claim, reservation locked, seat locked, one write with the
   * `seat.released` outbox event, COMMIT), then
   * the gate learns the seat is free.
   */
  async release(
    principal: Principal,
    input: { reservationId: string; requestId: string },
  ): Promise<ReservationView> {
    const reservationId = requireUuid(input.reservationId, "reservation_id");
    const requestId = requireRequestId(input.requestId);
    const target = await new ReservationRepository(this.db.fork()).findReservation(reservationId);
    if (!target || target.userId !== principal.userId) throw notFound(reservationId);
    const gateDate = { concertId: target.concertId, dateId: target.concertDateId };
    await this.gateWriter.invalidate(gateDate, target.seatId, 0);
    const now = this.clock.now();
    const outcome = await transaction(this.db, async (em) => {
      const tx = await TxConnection.of(em);
      const request = {
        userId: principal.userId,
        requestId,
        operation: "release",
        params: [reservationId],
      } as const;
      const first = await replayOf(tx, request, reservationId, now);
      if (first) return { reservation: first };
      const locked = await ReservationRepository.lockReservation(tx, reservationId);
      if (!locked || locked.userId !== principal.userId) throw notFound(reservationId);
      locked.release(now);
      const seat = await SeatRepository.lockSeat(tx, locked.seatId);
      if (!seat) throw new Error(`seat ${locked.seatId} of a reservation is missing`);
      const freed = seat.release(locked.id);
      await ReservationRepository.writeRelease(tx, locked, seat, freed);
      return { reservation: locked, freedVersion: freed ? seat.version : undefined };
    });
    if (outcome.freedVersion !== undefined) {
      await this.gateWriter.record(gateDate, {
        seatId: target.seatId,
        seatVersion: outcome.freedVersion,
        state: "free",
        heldUntil: 0,
        owner: "",
      });
    }
    return {
      reservation: outcome.reservation,
      state: outcome.reservation.stateAt(this.clock.now()),
    };
  }

  /** One of the caller's reservations. */
  async get(principal: Reader, reservationId: string): Promise<ReservationView> {
    requireUuid(reservationId, "reservation_id");
    const reservation = await new ReservationRepository(this.db.fork()).findReservation(
      reservationId,
    );
    if (!reservation || reservation.userId !== principal.userId) throw notFound(reservationId);
    return { reservation, state: reservation.stateAt(this.clock.now()) };
  }

  /** The caller's reservations, newest first, one page at a time. */
  async list(
    principal: Reader,
    size: number,
    token: string,
  ): Promise<{ reservations: ReservationView[]; nextPageToken: string }> {
    const limit = pageSize(size, 20, 100);
    const after = decodePageToken(token, { t: "number", id: "string" });
    const rows = await new ReservationRepository(this.db.fork()).listForUser(
      principal.userId,
      after,
      limit + 1,
    );
    const now = this.clock.now();
    const page = pageOf(rows, limit, (last) => ({ t: last.createdAt.getTime(), id: last.id }));
    return {
      reservations: page.items.map((reservation) => ({
        reservation,
        state: reservation.stateAt(now),
      })),
      nextPageToken: page.nextPageToken,
    };
  }

  /** The seat's gate entry, or null when the gate cannot be read (the database decides then). */
  private async peek(date: GateDate, seatId: string): Promise<SeatGateEntry | null> {
    try {
      return await this.gate.peek(date, seatId);
    } catch {
      return null;
    }
  }

  /**
   * Marks holds past their expiry as EXPIRED and frees their seats, one batch
   * per call, in a fork and transaction of its own. Listing and holding never
   * wait for this: expired holds already count as free.
   */
  async expireStaleHolds(batchSize = 500): Promise<number> {
    const now = this.clock.now();
    return transaction(this.db, async (em) =>
      ReservationRepository.expireEndedHolds(await TxConnection.of(em), now, batchSize),
    );
  }
}

/**
 * Claims a request id inside the transaction (the first lock it takes); on a
 * replay, the reservation the first request left, else undefined.
 */
async function replayOf(
  tx: TxConnection,
  request: IdempotentRequest,
  resultId: string,
  now: Date,
): Promise<Reservation | undefined> {
  const claim = await claimRequestId(tx, request, resultId, now);
  if (claim.kind === "claimed") return undefined;
  return firstResult(tx, claim.resultId);
}

/** The reservation a replayed request's first run left. */
async function firstResult(tx: TxConnection, reservationId: string): Promise<Reservation> {
  const first = await ReservationRepository.find(tx, reservationId);
  if (!first) throw notFound(reservationId);
  return first;
}

/** The domain error `check` throws, if any. */
function refusalOf(check: () => void): DomainError | undefined {
  try {
    check();
    return undefined;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
}

/**
 * What a hold's transaction came to: a new hold (with the seat's version
 * after it), a replay, or the hold the caller already had on that seat.
 */
interface HoldOutcome {
  readonly reservation: Reservation;
  readonly seatVersion?: number;
  readonly already?: true;
}

/** The gate's entry for a seat row that is not free. */
function gateChangeOf(seat: Seat, holder: string | null): SeatChange {
  return {
    seatId: seat.id,
    seatVersion: seat.version,
    state: seat.status === "SOLD" ? "sold" : seat.status === "HELD" ? "held" : "free",
    heldUntil: seat.heldUntil?.getTime() ?? 0,
    owner: holder ?? "",
  };
}

function holdLimitReached(reservationId?: string): DomainError {
  return new DomainError(
    "failed_precondition",
    "HOLD_LIMIT_REACHED",
    "you already hold a seat; pay for it or release it first",
    reservationId === undefined ? {} : { metadata: { reservation_id: reservationId } },
  );
}

function isOneHoldPerUserViolation(error: unknown): boolean {
  return (
    error instanceof UniqueConstraintViolationException &&
    String((error as { constraint?: unknown }).constraint) === "reservation_one_hold_per_user"
  );
}

function seatUnavailable(seatId: string): DomainError {
  return new DomainError("failed_precondition", "SEAT_UNAVAILABLE", "the seat is not available", {
    metadata: { seat_id: seatId },
  });
}
