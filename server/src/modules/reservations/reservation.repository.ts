import { LockMode } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import { Reservation } from "./reservation.entity.js";

/**
 * Reservation queries. Method names say which lock they take. Lock order,
 * everywhere: request-id claim, then reservation rows, then the seat row, then
 * the wallet row.
 */
export class ReservationRepository {
  constructor(private readonly em: EntityManager) {}

  /** Locks a reservation with `FOR UPDATE`. */
  lockReservation(reservationId: string): Promise<Reservation | null> {
    return this.em.findOne(
      Reservation,
      { id: reservationId },
      { lockMode: LockMode.PESSIMISTIC_WRITE },
    );
  }

  /** Reads a reservation without locking it. */
  findReservation(reservationId: string): Promise<Reservation | null> {
    return this.em.findOne(Reservation, { id: reservationId });
  }

  /**
   * Marks the user's own holds that have passed their expiry as EXPIRED and
   * frees their seats, in one statement, so the one-hold-per-user index lets
   * them hold a new seat. Both updates are compare-and-set on status and time;
   * a seat someone else has taken since keeps its new hold. Locks reservation
   * rows before seat rows, like every other transaction. Returns how many
   * holds it expired.
   */
  async expireOwnStaleHolds(userId: string, now: Date): Promise<number> {
    const [row] = await this.em.execute<{ count: number }[]>(
      `with stale as (
         update reservation set status = 'EXPIRED', ended_at = held_until
          where user_id = ? and status = 'HELD' and held_until <= ?
         returning id, seat_id
       ), freed as (
         update seat s set status = 'AVAILABLE', held_until = null, reservation_id = null,
                version = s.version + 1
           from stale
          where s.id = stale.seat_id and s.reservation_id = stale.id
            and s.status = 'HELD' and s.held_until <= ?
       )
       select count(*)::int as count from stale`,
      [userId, now, now],
    );
    return row?.count ?? 0;
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
   * rows another transaction has locked (a payment in flight). Both updates
   * are compare-and-set, so a hold that was paid, released or re-held in the
   * meantime is never touched. Returns how many holds were expired.
   */
  async expireStaleHolds(now: Date, batchSize: number): Promise<number> {
    const rows = await this.em.execute<{ id: string; seat_id: string }[]>(
      `with stale as (
         select id from reservation
          where status = 'HELD' and held_until <= ?
          order by held_until
          limit ?
          for update skip locked
       )
       update reservation r set status = 'EXPIRED', ended_at = r.held_until
         from stale
        where r.id = stale.id and r.status = 'HELD' and r.held_until <= ?
       returning r.id, r.seat_id`,
      [now, batchSize, now],
    );
    if (rows.length === 0) return 0;
    // By primary key, and only where the seat still belongs to the expired hold.
    await this.em.execute(
      `update seat set status = 'AVAILABLE', held_until = null, reservation_id = null, version = version + 1
        where id in (?) and reservation_id in (?) and status = 'HELD' and held_until <= ?`,
      [rows.map((row) => row.seat_id), rows.map((row) => row.id), now],
    );
    return rows.length;
  }
}
