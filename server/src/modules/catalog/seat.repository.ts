import { LockMode } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import { Seat, type SeatStatus } from "./seat.entity.js";

/** A bookable seat as listings show it: just what a seat map needs. */
export interface SeatListing {
  readonly id: string;
  readonly number: number;
  readonly grade: string;
  readonly price: bigint;
}

/** A seat row as a seat map needs it; its state follows from status and hold expiry. */
export interface SeatRow extends SeatListing {
  readonly status: SeatStatus;
  readonly heldUntil: Date | null;
}

/**
 * Seat queries. Method names say which lock they take, because the lock is
 * the whole point: the seat row is where "who gets this seat" is decided.
 */
export class SeatRepository {
  constructor(private readonly em: EntityManager) {}

  /**
   * Locks a seat with `FOR UPDATE SKIP LOCKED`. Returns null when the seat does
   * not exist or another transaction holds its row lock right now: in a rush,
   * losers fail at once instead of queueing behind the winner's lock.
   */
  lockSeatSkipLocked(seatId: string): Promise<Seat | null> {
    return this.em.findOne(Seat, { id: seatId }, { lockMode: LockMode.PESSIMISTIC_PARTIAL_WRITE });
  }

  /** Locks a seat with `FOR UPDATE`, waiting for any other holder of the row lock. */
  lockSeat(seatId: string): Promise<Seat | null> {
    return this.em.findOne(Seat, { id: seatId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  }

  /** Reads a seat without locking it. */
  findSeat(seatId: string): Promise<Seat | null> {
    return this.em.findOne(Seat, { id: seatId });
  }

  /** Finds a seat of a date by its number. */
  findSeatByNumber(concertDateId: string, number: number): Promise<Seat | null> {
    return this.em.findOne(Seat, { concertDateId, number });
  }

  /**
   * Lists every seat of a date in number order, after `afterNumber`, with
   * what decides its state: one ordered scan of `(concert_date_id, number)`.
   */
  async listAll(concertDateId: string, afterNumber: number, limit: number): Promise<SeatRow[]> {
    const rows = await this.em.execute<
      {
        id: string;
        number: number;
        grade: string;
        price: string;
        status: SeatStatus;
        held_until: Date | null;
      }[]
    >(
      `select id, number, grade, price::text as price, status, held_until
         from seat
        where concert_date_id = ? and number > ?
        order by number
        limit ?`,
      [concertDateId, afterNumber, limit],
    );
    return rows.map((row) => ({
      id: row.id,
      number: row.number,
      grade: row.grade,
      price: BigInt(row.price),
      status: row.status,
      heldUntil: row.held_until === null ? null : new Date(row.held_until),
    }));
  }

  /**
   * Lists a date's bookable seats in number order, after `afterNumber`: one
   * ordered scan of the `(concert_date_id, number)` index, filtering sold
   * seats and unexpired holds on the way, with no sort.
   */
  async listBookable(
    concertDateId: string,
    now: Date,
    afterNumber: number,
    limit: number,
  ): Promise<SeatListing[]> {
    const rows = await this.em.execute<
      { id: string; number: number; grade: string; price: string }[]
    >(
      `select id, number, grade, price::text as price
         from seat
        where concert_date_id = ?
          and (status = 'AVAILABLE' or (status = 'HELD' and held_until <= ?))
          and number > ?
        order by number
        limit ?`,
      [concertDateId, now, afterNumber, limit],
    );
    return rows.map((row) => ({
      id: row.id,
      number: row.number,
      grade: row.grade,
      price: BigInt(row.price),
    }));
  }
}
