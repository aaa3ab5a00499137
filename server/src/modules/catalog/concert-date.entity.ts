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
  ) {}
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
  },
});

const FIND_DATE = statement<{
  id: string;
  concert_id: string;
  date: string;
  starts_at_ms: number;
  total_seats: number;
}>(
  "concert_date_find",
  `select id, concert_id, to_char(date, 'YYYY-MM-DD') as date,
          (extract(epoch from starts_at) * 1000)::float8 as starts_at_ms, total_seats
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
    );
  },
};
