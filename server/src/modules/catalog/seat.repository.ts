import type { EntityManager } from "@mikro-orm/postgresql";
import { statement, type TxConnection } from "../../persistence/sql.js";
import type { SeatStateRow } from "./date-listing.js";
import type { SeatFactsRow } from "./date-seats.js";
import { Seat, type SeatStatus } from "./seat.entity.js";

/** A seat row as the lock statements return it ({@link SEAT_COLUMNS}). */
export interface SeatLockRow {
  readonly id: string;
  readonly concert_date_id: string;
  readonly number: number;
  readonly grade: string;
  readonly price: string;
  readonly status: SeatStatus;
  readonly held_until_ms: number | null;
  readonly reservation_id: string | null;
  readonly version: number;
}

/** A locked seat and the user whose reservation holds or bought it, if any. */
export interface LockedSeat {
  readonly seat: Seat;
  readonly holder: string | null;
}

/** The columns of a {@link SeatLockRow}. */
export const SEAT_COLUMNS = `id, concert_date_id, number, grade, price::text as price, status,
  (extract(epoch from held_until) * 1000)::float8 as held_until_ms, reservation_id, version`;

const LOCK_SEAT = statement<SeatLockRow>(
  "seat_lock",
  `select ${SEAT_COLUMNS} from seat where id = $1 for update`,
);

const LOCK_SEAT_SKIP_LOCKED = statement<SeatLockRow & { holder: string | null }>(
  "seat_lock_skip_locked",
  `select ${SEAT_COLUMNS},
          (select user_id from reservation r where r.id = seat.reservation_id) as holder
     from seat where id = $1 for update of seat skip locked`,
);

/** A seat entity from its locked row. */
export function seatFromRow(row: SeatLockRow): Seat {
  const seat = new Seat(row.id, row.concert_date_id, row.number, row.grade, BigInt(row.price));
  seat.status = row.status;
  seat.heldUntil = row.held_until_ms === null ? null : new Date(row.held_until_ms);
  seat.reservationId = row.reservation_id;
  seat.version = row.version;
  return seat;
}

/**
 * Seat queries. Method names say which lock they take, because the lock is
 * the whole point: the seat row is where "who gets this seat" is decided.
 */
export class SeatRepository {
  constructor(private readonly em: EntityManager) {}

  /**
   * Locks a seat with `FOR UPDATE SKIP LOCKED` (one round trip), with the user
   * whose reservation is on it. Returns null when the seat does not exist or
   * another transaction holds its row lock right now: in a rush, losers fail
   * at once instead of queueing behind the winner's lock.
   */
  static async lockSeatSkipLocked(tx: TxConnection, seatId: string): Promise<LockedSeat | null> {
    const row = await tx.one(LOCK_SEAT_SKIP_LOCKED, [seatId]);
    if (row === undefined || !SeatRepository.firstToLock(tx, seatId)) return null;
    return { seat: seatFromRow(row), holder: row.holder };
  }

  /**
   * Whether the write that just locked a seat with `SKIP LOCKED` is the
   * first of its transaction to do so. Holds that share a group-commit
   * transaction would otherwise both get the seat (PostgreSQL skips only
   * other transactions' locks); the second gets null, as if another
   * transaction held the lock, which is what it would have met alone.
   */
  static firstToLock(tx: TxConnection, seatId: string): boolean {
    return tx.firstToLock(`seat:${seatId}`);
  }

  /** Locks a seat with `FOR UPDATE`, waiting for any other holder of the row lock (one round trip). */
  static async lockSeat(tx: TxConnection, seatId: string): Promise<Seat | null> {
    const row = await tx.one(LOCK_SEAT, [seatId]);
    return row === undefined ? null : seatFromRow(row);
  }

  /** Reads a seat without locking it. */
  findSeat(seatId: string): Promise<Seat | null> {
    return this.em.findOne(Seat, { id: seatId });
  }

  /** Finds a seat of a date by its number. */
  findSeatByNumber(concertDateId: string, number: number): Promise<Seat | null> {
    return this.em.findOne(Seat, { concertDateId, number });
  }

  /** The fixed facts of every seat of a date, in number order (one query). */
  seatFacts(concertDateId: string): Promise<SeatFactsRow[]> {
    return this.em.execute<SeatFactsRow[]>(
      `select id, number, grade, price::text as price
         from seat
        where concert_date_id = ?
        order by number`,
      [concertDateId],
    );
  }

  /** The date a seat belongs to, or null when there is no such seat. */
  async dateOfSeat(seatId: string): Promise<string | null> {
    const [row] = await this.em.execute<{ concert_date_id: string }[]>(
      "select concert_date_id from seat where id = ?",
      [seatId],
    );
    return row?.concert_date_id ?? null;
  }

  /**
   * What decides the state of every seat of a date (one scan of the date's
   * rows), with hold expiry in epoch milliseconds.
   */
  seatStates(concertDateId: string): Promise<SeatStateRow[]> {
    return this.em.execute<SeatStateRow[]>(
      `select id, status, version,
              (extract(epoch from held_until) * 1000)::float8 as held_until_ms
         from seat
        where concert_date_id = ?`,
      [concertDateId],
    );
  }
}
