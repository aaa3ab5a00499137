import type { EntityManager } from "@mikro-orm/postgresql";
import { statement, type TxConnection } from "../../persistence/sql.js";

/** Where a ticket stands, as the database says. */
export type TicketStatus = "CONFIRMED" | "REFUNDED";

/** One ticket as read: the reservation with its concert, performance, seat, payment and use. */
export interface TicketRecord {
  readonly id: string;
  readonly userId: string;
  readonly concertId: string;
  readonly concertTitle: string;
  readonly venue: string;
  readonly timeZone: string;
  readonly concertDateId: string;
  readonly startsAt: Date;
  readonly seatId: string;
  readonly section: string;
  readonly row: string;
  readonly seatNumber: number;
  readonly grade: string;
  readonly price: bigint;
  readonly paymentId: string;
  readonly paidAt: Date;
  readonly status: TicketStatus;
  readonly usedAt: Date | null;
  /** The reservation's creation, the listing's sort key. */
  readonly createdAt: Date;
}

interface TicketRow {
  readonly id: string;
  readonly user_id: string;
  readonly concert_id: string;
  readonly title: string;
  readonly venue: string;
  readonly time_zone: string;
  readonly concert_date_id: string;
  readonly starts_at_ms: number;
  readonly seat_id: string;
  readonly section: string;
  readonly row_label: string;
  readonly seat_number: number;
  readonly grade: string;
  readonly price: string;
  readonly payment_id: string;
  readonly paid_at_ms: number;
  readonly status: TicketStatus;
  readonly used_at_ms: number | null;
  readonly created_at_ms: number;
}

const ms = (column: string, as: string) =>
  `(extract(epoch from ${column}) * 1000)::float8 as ${as}`;

// A ticket is a paid reservation (refunded ones included): it has a payment.
const TICKETS = `select r.id, r.user_id, r.concert_id, c.title, c.venue, c.time_zone, r.concert_date_id,
    ${ms("d.starts_at", "starts_at_ms")}, r.seat_id, s.section, s.row_label, r.seat_number, s.grade,
    r.price::text as price, p.id as payment_id, ${ms("p.created_at", "paid_at_ms")}, r.status,
    ${ms("u.used_at", "used_at_ms")}, ${ms("r.created_at", "created_at_ms")}
  from reservation r
  join payment p on p.reservation_id = r.id
  join concert c on c.id = r.concert_id
  join concert_date d on d.id = r.concert_date_id
  join seat s on s.id = r.seat_id
  left join ticket_use u on u.reservation_id = r.id
 where r.status in ('CONFIRMED', 'REFUNDED')`;

const FIND_IN_TX = statement<TicketRow>("ticket_find", `${TICKETS} and r.id = $1`);

const FIND_USE = statement<{ used_at_ms: number }>(
  "ticket_use_find",
  `select ${ms("used_at", "used_at_ms")} from ticket_use where reservation_id = $1`,
);

const INSERT_USE = statement<never>(
  "ticket_use_insert",
  "insert into ticket_use (reservation_id, used_at, actor) values ($1, $2, $3)",
);

function ticketFromRow(row: TicketRow): TicketRecord {
  return {
    id: row.id,
    userId: row.user_id,
    concertId: row.concert_id,
    concertTitle: row.title,
    venue: row.venue,
    timeZone: row.time_zone,
    concertDateId: row.concert_date_id,
    startsAt: new Date(row.starts_at_ms),
    seatId: row.seat_id,
    section: row.section,
    row: row.row_label,
    seatNumber: row.seat_number,
    grade: row.grade,
    price: BigInt(row.price),
    paymentId: row.payment_id,
    paidAt: new Date(row.paid_at_ms),
    status: row.status,
    usedAt: row.used_at_ms === null ? null : new Date(row.used_at_ms),
    createdAt: new Date(row.created_at_ms),
  };
}

/**
 * Ticket reads and the record of entry codes used at the door. The static
 * methods run inside a transaction (prepared statements, one round trip
 * each); the instance methods are reads of their own.
 */
export class TicketRepository {
  constructor(private readonly em: EntityManager) {}

  /** One ticket of a user, or null (no such ticket, or another user's). */
  async findOfUser(userId: string, ticketId: string): Promise<TicketRecord | null> {
    const [row] = await this.em.execute<TicketRow[]>(`${TICKETS} and r.id = ? and r.user_id = ?`, [
      ticketId,
      userId,
    ]);
    return row === undefined ? null : ticketFromRow(row);
  }

  /** One page of a user's tickets, newest reservation first (the reservation index's order). */
  async listOfUser(
    userId: string,
    after: { t: number; id: string } | undefined,
    limit: number,
  ): Promise<TicketRecord[]> {
    const rows = after
      ? await this.em.execute<TicketRow[]>(
          `${TICKETS} and r.user_id = ? and (r.created_at < ? or (r.created_at = ? and r.id < ?))
           order by r.created_at desc, r.id desc limit ?`,
          [userId, new Date(after.t), new Date(after.t), after.id, limit],
        )
      : await this.em.execute<TicketRow[]>(
          `${TICKETS} and r.user_id = ? order by r.created_at desc, r.id desc limit ?`,
          [userId, limit],
        );
    return rows.map(ticketFromRow);
  }

  /** One ticket, inside a transaction (after its reservation is locked). */
  static async find(tx: TxConnection, ticketId: string): Promise<TicketRecord | null> {
    const row = await tx.one(FIND_IN_TX, [ticketId]);
    return row === undefined ? null : ticketFromRow(row);
  }

  /** When a ticket's code was first used, or null. Call under the reservation's row lock. */
  static async findUse(tx: TxConnection, ticketId: string): Promise<Date | null> {
    const row = await tx.one(FIND_USE, [ticketId]);
    return row === undefined ? null : new Date(row.used_at_ms);
  }

  /** Records the first use of a ticket's code. Call under the reservation's row lock. */
  static async insertUse(
    tx: TxConnection,
    ticketId: string,
    at: Date,
    actor: string,
  ): Promise<void> {
    await tx.all(INSERT_USE, [ticketId, at, actor]);
  }
}
