import { defineEntity, p } from "@mikro-orm/core";
import { statement, type TxConnection } from "../../persistence/sql.js";

/**
 * One performance of a concert. Its concert and calendar date never change
 * after creation, which is what lets services cache them.
 */
export class ConcertDate {
  constructor(
    readonly id: string,
    readonly concertId: string,
    /** The calendar date as YYYY-MM-DD in the venue's time zone. */
    readonly date: string,
    readonly startsAt: Date,
    readonly totalSeats: number,
    /** When sales close, if the operator set a time before the start. */
    readonly salesCloseAt: Date | null = null,
  ) {}

  /** When sales end: the early close if there is one, else the start. */
  get salesEndAt(): Date {
    return this.salesCloseAt ?? this.startsAt;
  }

  /** Whether seats of this date can no longer be sold at `now`. */
  salesEnded(now: Date): boolean {
    return this.salesEndAt.getTime() <= now.getTime();
  }
}

/** The table mapping of {@link ConcertDate}. */
export const ConcertDateSchema = defineEntity({
  class: ConcertDate,
  tableName: "concert_date",
  properties: {
    id: p.uuid().primary(),
    concertId: p.uuid(),
    date: p.date(),
    startsAt: p.datetime(),
    totalSeats: p.integer(),
    salesCloseAt: p.datetime().nullable(),
  },
});

const FIND_DATE = statement<{
  id: string;
  concert_id: string;
  date: string;
  starts_at_ms: number;
  total_seats: number;
  sales_close_at_ms: number | null;
}>(
  "concert_date_find",
  `select id, concert_id, to_char(date, 'YYYY-MM-DD') as date,
          (extract(epoch from starts_at) * 1000)::float8 as starts_at_ms, total_seats,
          (extract(epoch from sales_close_at) * 1000)::float8 as sales_close_at_ms
     from concert_date where id = $1`,
);

/** Reads of concert dates inside a transaction, on its connection. */
export const ConcertDateRepository = {
  /** One date by id (one round trip), or null. */
  async find(tx: TxConnection, concertDateId: string): Promise<ConcertDate | null> {
    const row = await tx.one(FIND_DATE, [concertDateId]);
    if (row === undefined) return null;
    return new ConcertDate(
      row.id,
      row.concert_id,
      row.date,
      new Date(row.starts_at_ms),
      row.total_seats,
      row.sales_close_at_ms === null ? null : new Date(row.sales_close_at_ms),
    );
  },
};
