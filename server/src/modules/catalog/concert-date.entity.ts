import { defineEntity, p } from "@mikro-orm/core";

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
