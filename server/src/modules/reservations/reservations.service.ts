import { UniqueConstraintViolationException } from "@mikro-orm/core";
import type { Database } from "../../persistence/database.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError } from "../../shared/domain-error.js";
import { newId } from "../../shared/ids.js";
import { decodePageToken, pageOf } from "../../shared/page-token.js";
import { pageSize, requireRequestId, requireUuid } from "../../shared/validation.js";
import type { CatalogService } from "../catalog/index.js";
import { SeatRepository } from "../catalog/index.js";
import { claimRequestId } from "../idempotency/index.js";
import { assertAdmitted, type Principal } from "../identity/index.js";
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
 * up afterwards.
 */
export class ReservationsService {
  constructor(
    private readonly db: Database,
    private readonly catalog: CatalogService,
    private readonly clock: Clock,
    private readonly holdTtlMs: number,
  ) {}

  /**
   * Holds a seat for an admitted caller, at most one per user; retrying with
   * the same request id replays the first result.
   */
  async hold(
    principal: Principal,
    input: { seatId: string; requestId: string },
  ): Promise<ReservationView> {
    const seatId = requireUuid(input.seatId, "seat_id");
    const requestId = requireRequestId(input.requestId);
    const now = this.clock.now();
    try {
      return await this.tryHold(principal, seatId, requestId, now);
    } catch (error) {
      if (!isOneHoldPerUserViolation(error)) throw error;
      // The caller already has a HELD row. If it is merely stale (expired by
      // time, not yet swept), tidy it and try once more; checking only here
      // keeps that statement off every other hold.
      const expired = await this.db
        .fork()
        .transactional((em) =>
          new ReservationRepository(em).expireOwnStaleHolds(principal.userId, now),
        );
      if (expired > 0) {
        try {
          return await this.tryHold(principal, seatId, requestId, now);
        } catch (retryError) {
          if (!isOneHoldPerUserViolation(retryError)) throw retryError;
        }
      }
      throw new DomainError(
        "failed_precondition",
        "HOLD_LIMIT_REACHED",
        "you already hold a seat; pay for it or release it first",
      );
    }
  }

  /**
   * One attempt at a hold, in one transaction: claim the request id, lock the
   * seat with SKIP LOCKED (so rush losers fail at once), check it is free, and
   * record the hold and the reservation. The hold never outlives the caller's
   * admission. The one-hold-per-user index decides at commit.
   */
  private async tryHold(
    principal: Principal,
    seatId: string,
    requestId: string,
    now: Date,
  ): Promise<ReservationView> {
    const reservationId = newId();
    const reservation = await this.db.fork().transactional(async (em) => {
      const claim = await claimRequestId(
        em,
        { userId: principal.userId, requestId, operation: "hold", params: [seatId] },
        reservationId,
        now,
      );
      if (claim.kind === "replay") {
        const first = await new ReservationRepository(em).findReservation(claim.resultId);
        if (!first) throw notFound(claim.resultId);
        return first;
      }
      assertAdmitted(principal, now);
      const seats = new SeatRepository(em);
      const seat = await seats.lockSeatSkipLocked(seatId);
      if (!seat) {
        // Either there is no such seat, or someone else is taking it this
        // very moment; an unlocked read tells which.
        if (await seats.findSeat(seatId)) throw seatUnavailable(seatId);
        throw new DomainError("not_found", "SEAT_NOT_FOUND", "no seat has that id", {
          metadata: { seat_id: seatId },
        });
      }
      const date = await this.catalog.dateFacts(seat.concertDateId);
      assertAdmitted(principal, now, date.concertId);
      this.catalog.assertOnSale(date, now);
      const admissionEnd = principal.admissionExpiresAt?.getTime() ?? now.getTime();
      const heldUntil = new Date(Math.min(now.getTime() + this.holdTtlMs, admissionEnd));
      seat.hold(reservationId, heldUntil, now);
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
      em.persist(created);
      return created;
    });
    return { reservation, state: reservation.stateAt(this.clock.now()) };
  }

  /** Gives up one of the caller's unexpired holds and frees the seat at once. */
  async release(
    principal: Principal,
    input: { reservationId: string; requestId: string },
  ): Promise<ReservationView> {
    const reservationId = requireUuid(input.reservationId, "reservation_id");
    const requestId = requireRequestId(input.requestId);
    const now = this.clock.now();
    const reservation = await this.db.fork().transactional(async (em) => {
      const reservations = new ReservationRepository(em);
      const claim = await claimRequestId(
        em,
        { userId: principal.userId, requestId, operation: "release", params: [reservationId] },
        reservationId,
        now,
      );
      if (claim.kind === "replay") {
        const first = await reservations.findReservation(claim.resultId);
        if (!first) throw notFound(claim.resultId);
        return first;
      }
      const locked = await reservations.lockReservation(reservationId);
      if (!locked || locked.userId !== principal.userId) throw notFound(reservationId);
      locked.release(now);
      const seat = await new SeatRepository(em).lockSeat(locked.seatId);
      seat?.release(locked.id);
      return locked;
    });
    return { reservation, state: reservation.stateAt(this.clock.now()) };
  }

  /** One of the caller's reservations. */
  async get(principal: Principal, reservationId: string): Promise<ReservationView> {
    requireUuid(reservationId, "reservation_id");
    const reservation = await new ReservationRepository(this.db.fork()).findReservation(
      reservationId,
    );
    if (!reservation || reservation.userId !== principal.userId) throw notFound(reservationId);
    return { reservation, state: reservation.stateAt(this.clock.now()) };
  }

  /** The caller's reservations, newest first, one page at a time. */
  async list(
    principal: Principal,
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

  /**
   * Marks holds past their expiry as EXPIRED and frees their seats, one batch
   * per call, in a fork and transaction of its own. Listing and holding never
   * wait for this: expired holds already count as free.
   */
  async expireStaleHolds(batchSize = 500): Promise<number> {
    return this.db
      .fork()
      .transactional((em) =>
        new ReservationRepository(em).expireStaleHolds(this.clock.now(), batchSize),
      );
  }
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
