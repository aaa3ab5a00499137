import type { EntityManager } from "@mikro-orm/postgresql";
import { statement, type TxConnection } from "../../persistence/sql.js";
import {
  type LockedSeat,
  SEAT_COLUMNS,
  type Seat,
  type SeatLockRow,
  SeatRepository,
  seatFromRow,
} from "../catalog/index.js";
import { eventIdAndPayload, outboxAppendCte } from "../events/index.js";
import {
  CLAIMED,
  type ClaimAndLock,
  claimAndLock,
  claimAndLockStatement,
  type IdempotentRequest,
} from "../idempotency/index.js";
import { Reservation, type ReservationStatus } from "./reservation.entity.js";

/** A reservation row as the statements below select it ({@link RESERVATION_COLUMNS}). */
export interface ReservationRow {
  readonly id: string;
  readonly user_id: string;
  readonly concert_id: string;
  readonly concert_date_id: string;
  readonly date: string;
  readonly seat_id: string;
  readonly seat_number: number;
  readonly price: string;
  readonly status: ReservationStatus;
  readonly held_until_ms: number;
  readonly created_at_ms: number;
  readonly confirmed_at_ms: number | null;
  readonly ended_at_ms: number | null;
}

const ms = (column: string) => `(extract(epoch from ${column}) * 1000)::float8 as ${column}_ms`;

/** The columns of a {@link ReservationRow}. */
export const RESERVATION_COLUMNS = `id, user_id, concert_id, concert_date_id, to_char(date, 'YYYY-MM-DD') as date,
  seat_id, seat_number, price::text as price, status, ${ms("held_until")}, ${ms("created_at")},
  ${ms("confirmed_at")}, ${ms("ended_at")}`;

const FIND = statement<ReservationRow>(
  "reservation_find",
  `select ${RESERVATION_COLUMNS} from reservation where id = $1`,
);

const LOCK = statement<ReservationRow>(
  "reservation_lock",
  `select ${RESERVATION_COLUMNS} from reservation where id = $1 for update`,
);

// At most one row: the one-hold-per-user index allows one HELD reservation.
const LOCK_HELD_BY = statement<ReservationRow>(
  "reservation_lock_held_by",
  `select ${RESERVATION_COLUMNS} from reservation where user_id = $1 and status = 'HELD' for update`,
);

/**
 * Claims a hold's request id and takes the hold's locks, in one round trip
 * and in the one lock order (claim, reservation, seat): the caller's HELD
 * reservation ($7), expired or not, then, only if there is none, the wanted
 * seat ($8) with `FOR UPDATE SKIP LOCKED` and the user whose reservation is
 * on it. So a fan who already holds a seat never takes a seat's row lock,
 * and on a replay nothing is locked. The rows come back as JSON (they share
 * column names).
 */
const CLAIM_AND_LOCK_FOR_HOLD = claimAndLockStatement<{
  own: ReservationRow | null;
  seat: (SeatLockRow & { holder: string | null }) | null;
}>(
  "reservation_claim_and_lock_for_hold",
  `own as materialized (
     select ${RESERVATION_COLUMNS} from reservation
      where user_id = $7 and status = 'HELD' and ${CLAIMED}
      for update
   ), wanted as materialized (
     select ${SEAT_COLUMNS},
            (select user_id from reservation r where r.id = seat.reservation_id) as holder
       from seat
      where id = $8 and ${CLAIMED} and (select count(*) from own) = 0
      for update of seat skip locked
   )`,
  `(select to_json(own) from own) as own,
          (select to_json(wanted) from wanted) as seat`,
);

/**
 * What a hold's claim-and-lock statement locked: the caller's HELD
 * reservation, if any; otherwise the wanted seat, null when another
 * transaction holds its row lock (or it does not exist).
 */
export type HoldLocks =
  | { readonly own: Reservation; readonly seat: null }
  | { readonly own: null; readonly seat: LockedSeat | null };

/**
 * The one SQL statement of "a hold has ended by time": the row (a reservation
 * or a seat, by alias) is HELD and its `held_until` is at or before `at`, the
 * time of the request (one read of the server's clock, passed in; see
 * Reservation.stateAt and seatStateAtMs for the same rule in TypeScript).
 */
function holdEnded(alias: string, at: string): string {
  return `${alias}.status = 'HELD' and ${alias}.held_until <= ${at}`;
}

// Expires the given holds ($1) whose time has passed ($2) and frees each seat
// still under its hold; both updates are compare-and-set on status and time,
// so a hold paid, released or re-held meanwhile is never touched. Reservation
// rows are updated (locked) before seat rows, as everywhere.
// Each expired hold appends a `hold.expired` event in the same statement
// (no round trip of its own), dated at the hold's end.
const EXPIRE = statement<{ id: string }>(
  "reservation_expire",
  `with stale as (
     update reservation r set status = 'EXPIRED', ended_at = r.held_until
      where r.id = any($1::uuid[]) and ${holdEnded("r", "$2")}
     returning r.id, r.seat_id, r.user_id, r.concert_id, r.concert_date_id, r.seat_number,
               r.held_until
   ), freed as (
     update seat s set status = 'AVAILABLE', held_until = null, reservation_id = null,
            version = s.version + 1
       from stale
      where s.id = stale.seat_id and s.reservation_id = stale.id and ${holdEnded("s", "$2")}
   ), ${outboxAppendCte(
     "expired_event",
     `select gen_random_uuid(), stale.concert_id, 'hold.expired',
             jsonb_build_object('reservation_id', stale.id, 'user_id', stale.user_id,
               'seat_id', stale.seat_id, 'concert_date_id', stale.concert_date_id,
               'seat_number', stale.seat_number,
               'held_until', to_char(stale.held_until at time zone 'UTC',
                                     'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
             stale.held_until
        from stale`,
   )}
   select id from stale`,
);

// The oldest holds whose time has passed, locked; rows another transaction
// holds (a payment or a hold in flight) are skipped, not waited for.
const LOCK_ENDED = statement<{ id: string }>(
  "reservation_lock_ended",
  `select r.id from reservation r
    where ${holdEnded("r", "$1")}
    order by r.held_until
    limit $2
    for update skip locked`,
);

// Writes a new hold: the held seat (already locked), its reservation and its
// `seat.held` event ($12, $13), in one statement.
const INSERT_HOLD = statement<{ id: string }>(
  "reservation_insert_hold",
  `with held as (
     update seat set status = 'HELD', held_until = $9, reservation_id = $1, version = $11
      where id = $6
     returning id
   ), ${outboxAppendCte("held_event", "select $12::uuid, $3, 'seat.held', $13::jsonb, $10 from held")}
   insert into reservation (id, user_id, concert_id, concert_date_id, date, seat_id, seat_number,
                            price, status, held_until, created_at)
   select $1, $2, $3, $4, $5::date, held.id, $7, $8, 'HELD', $9, $10 from held
   returning id`,
);

// Writes a released hold, its `seat.released` event ($10, $11) and, when the
// hold was still on the seat ($9), the freed seat.
const WRITE_RELEASE = statement<never>(
  "reservation_write_release",
  `with released as (
     update reservation set status = $2, ended_at = $3 where id = $1 returning id, concert_id
   ), ${outboxAppendCte(
     "released_event",
     "select $10::uuid, released.concert_id, 'seat.released', $11::jsonb, $3 from released",
   )}
   update seat set status = $5, held_until = $6, reservation_id = $7, version = $8
    where id = $4 and $9::boolean and exists (select 1 from released)`,
);

/** A reservation entity from its row. */
export function reservationFromRow(row: ReservationRow): Reservation {
  const reservation = new Reservation(
    row.id,
    row.user_id,
    row.concert_id,
    row.concert_date_id,
    row.date,
    row.seat_id,
    row.seat_number,
    BigInt(row.price),
    new Date(row.held_until_ms),
    new Date(row.created_at_ms),
  );
  reservation.status = row.status;
  reservation.confirmedAt = row.confirmed_at_ms === null ? null : new Date(row.confirmed_at_ms);
  reservation.endedAt = row.ended_at_ms === null ? null : new Date(row.ended_at_ms);
  return reservation;
}

/**
 * Reservation queries. Method names say which lock they take. Lock order,
 * everywhere: request-id claim, then reservation rows, then the seat row, then
 * the wallet row. The static methods run inside a transaction, on its
 * connection, as prepared statements (one round trip each); the instance
 * methods are the ORM reads of the cold paths.
 */
export class ReservationRepository {
  constructor(private readonly em: EntityManager) {}

  /** Reads a reservation inside a transaction, without locking it. */
  static async find(tx: TxConnection, reservationId: string): Promise<Reservation | null> {
    const row = await tx.one(FIND, [reservationId]);
    return row === undefined ? null : reservationFromRow(row);
  }

  /** Locks a reservation with `FOR UPDATE`. */
  static async lockReservation(
    tx: TxConnection,
    reservationId: string,
  ): Promise<Reservation | null> {
    const row = await tx.one(LOCK, [reservationId]);
    return row === undefined ? null : reservationFromRow(row);
  }

  /**
   * Claims a hold's request id and, when the claim is new, locks the caller's
   * HELD reservation or, if they have none, the wanted seat (`SKIP LOCKED`):
   * one round trip for what {@link claimRequestId}, {@link lockHeldBy} and
   * {@link SeatRepository.lockSeatSkipLocked} would take three (see
   * {@link CLAIM_AND_LOCK_FOR_HOLD}). A seat another hold of the same
   * group-commit transaction locked first comes back null, as one locked by
   * another transaction does (see {@link SeatRepository.firstToLock}).
   */
  static async claimAndLockForHold(
    tx: TxConnection,
    request: IdempotentRequest,
    reservationId: string,
    now: Date,
    seatId: string,
  ): Promise<ClaimAndLock<HoldLocks>> {
    return claimAndLock(
      tx,
      CLAIM_AND_LOCK_FOR_HOLD,
      request,
      reservationId,
      now,
      [request.userId, seatId],
      (row): HoldLocks => {
        if (row?.own) return { own: reservationFromRow(row.own), seat: null };
        // A hold of the same group-commit batch locked it first: as if skipped.
        const seat =
          row?.seat && SeatRepository.firstToLock(tx, seatId)
            ? { seat: seatFromRow(row.seat), holder: row.seat.holder }
            : null;
        return { own: null, seat };
      },
    );
  }

  /** Locks the user's HELD reservation (expired or not) with `FOR UPDATE`, if there is one. */
  static async lockHeldBy(tx: TxConnection, userId: string): Promise<Reservation | null> {
    const row = await tx.one(LOCK_HELD_BY, [userId]);
    return row === undefined ? null : reservationFromRow(row);
  }

  /**
   * Marks a locked hold whose time has passed as EXPIRED and frees its seat
   * (if the seat is still under it), so the one-hold-per-user index lets the
   * user hold another seat. Takes the seat's row lock after the reservation's.
   */
  static async expireHold(tx: TxConnection, hold: Reservation, now: Date): Promise<void> {
    await tx.all(EXPIRE, [[hold.id], now]);
  }

  /** Writes a new hold: the seat (locked and changed by `seat.hold`) and its reservation. */
  static async insertHold(tx: TxConnection, reservation: Reservation, seat: Seat): Promise<void> {
    const inserted = await tx.one(INSERT_HOLD, [
      reservation.id,
      reservation.userId,
      reservation.concertId,
      reservation.concertDateId,
      reservation.date,
      seat.id,
      seat.number,
      String(reservation.price),
      reservation.heldUntil,
      reservation.createdAt,
      seat.version,
      ...eventIdAndPayload({
        reservation_id: reservation.id,
        user_id: reservation.userId,
        seat_id: seat.id,
        seat_number: seat.number,
        concert_date_id: reservation.concertDateId,
        date: reservation.date,
        price: String(reservation.price),
        held_until: reservation.heldUntil.toISOString(),
      }),
    ]);
    if (inserted === undefined) throw new Error(`seat ${seat.id} vanished under its row lock`);
  }

  /**
   * Writes a released hold (changed by `reservation.release`) and, when
   * `seatFreed`, its seat (changed by `seat.release`), in one statement.
   */
  static async writeRelease(
    tx: TxConnection,
    reservation: Reservation,
    seat: Seat,
    seatFreed: boolean,
  ): Promise<void> {
    await tx.all(WRITE_RELEASE, [
      reservation.id,
      reservation.status,
      reservation.endedAt,
      seat.id,
      seat.status,
      seat.heldUntil,
      seat.reservationId,
      seat.version,
      seatFreed,
      ...eventIdAndPayload({
        reservation_id: reservation.id,
        user_id: reservation.userId,
        seat_id: seat.id,
        seat_number: reservation.seatNumber,
        concert_date_id: reservation.concertDateId,
      }),
    ]);
  }

  /** Reads a reservation without locking it. */
  findReservation(reservationId: string): Promise<Reservation | null> {
    return this.em.findOne(Reservation, { id: reservationId });
  }

  /** One page of a user's reservations, newest first. */
  listForUser(
    userId: string,
    after: { t: number; id: string } | undefined,
    limit: number,
  ): Promise<Reservation[]> {
    return this.em.find(
      Reservation,
      after
        ? {
            userId,
            $or: [
              { createdAt: { $lt: new Date(after.t) } },
              { createdAt: new Date(after.t), id: { $lt: after.id } },
            ],
          }
        : { userId },
      { orderBy: { createdAt: "desc", id: "desc" }, limit },
    );
  }

  /**
   * Expires a batch of holds past their expiry and frees their seats, skipping
   * rows another transaction has locked (a payment in flight), in two round
   * trips: lock the batch, expire it. Returns how many holds were expired.
   */
  static async expireEndedHolds(tx: TxConnection, now: Date, batchSize: number): Promise<number> {
    const ended = await tx.all(LOCK_ENDED, [now, batchSize]);
    if (ended.length === 0) return 0;
    const expired = await tx.all(EXPIRE, [ended.map((row) => row.id), now]);
    return expired.length;
  }
}
