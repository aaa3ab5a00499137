import { randomUUID } from "node:crypto";
import pg from "pg";

/** A seat's grade and price in minor units. */
export interface Grade {
  readonly grade: string;
  readonly price: number;
}

/** The demo catalog's grades (see server/src/modules/catalog/demo-catalog.ts), by seat number. */
export function demoGrade(number: number): Grade {
  if (number <= 10) return { grade: "VIP", price: 150_000 };
  if (number <= 30) return { grade: "R", price: 110_000 };
  return { grade: "S", price: 80_000 };
}

/** One seeded seat. */
export interface BenchSeat {
  readonly id: string;
  readonly number: number;
  readonly price: number;
}

/** One seeded date and its seats, in seat-number order. */
export interface BenchDate {
  readonly id: string;
  /** YYYY-MM-DD. */
  readonly date: string;
  readonly seats: readonly BenchSeat[];
}

/** What {@link seedCatalog} created. */
export interface BenchCatalog {
  readonly concertId: string;
  /** The dates the rush is measured on. */
  readonly dates: readonly BenchDate[];
  /** A date of the same concert, a year ahead, for the unmeasured warm-up (if asked for). */
  readonly warmUp?: BenchDate;
}

/**
 * Seeds one concert with `dates` upcoming dates (a week apart, from 30 days
 * ahead) of `seatsPerDate` seats each, straight in SQL against the schema the
 * server migrated. A database with no other concert makes this one the
 * default concert of the REST routes (the first created).
 */
export async function seedCatalog(
  url: string,
  options: {
    dates: number;
    seatsPerDate: number;
    gradeOf: (number: number) => Grade;
    /** Seats of an extra warm-up date; none when 0 or unset. */
    warmUpSeats?: number;
  },
): Promise<BenchCatalog> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const concertId = randomUUID();
    await client.query(
      "insert into concert (id, title, venue, created_at) values ($1, 'Bench', 'Bench Hall', now())",
      [concertId],
    );
    const addDate = async (daysAhead: number, seatCount: number): Promise<BenchDate> => {
      const numbers = Array.from({ length: seatCount }, (_, i) => i + 1);
      const grades = numbers.map(options.gradeOf);
      const { rows } = await client.query<{ id: string; date: string }>(
        `insert into concert_date (id, concert_id, date, starts_at, total_seats)
         values ($1, $2, current_date + $3::int, (current_date + $3::int) + time '19:00', $4)
         returning id, to_char(date, 'YYYY-MM-DD') as date`,
        [randomUUID(), concertId, daysAhead, seatCount],
      );
      const row = rows[0];
      if (!row) throw new Error("the concert date was not inserted");
      const seats = await client.query<{ id: string; number: number; price: string }>(
        `insert into seat (id, concert_date_id, number, grade, price, status, version)
         select gen_random_uuid(), $1, n, g, p, 'AVAILABLE', 1
           from unnest($2::int[], $3::text[], $4::bigint[]) as s(n, g, p)
         returning id, number, price`,
        [row.id, numbers, grades.map((g) => g.grade), grades.map((g) => g.price)],
      );
      return {
        id: row.id,
        date: row.date,
        seats: seats.rows
          .map((seat) => ({ id: seat.id, number: seat.number, price: Number(seat.price) }))
          .sort((a, b) => a.number - b.number),
      };
    };
    const dates: BenchDate[] = [];
    for (let d = 0; d < options.dates; d++)
      dates.push(await addDate(30 + 7 * d, options.seatsPerDate));
    const warmUp = options.warmUpSeats ? await addDate(365, options.warmUpSeats) : undefined;
    await client.query("analyze");
    return warmUp ? { concertId, dates, warmUp } : { concertId, dates };
  } finally {
    await client.end();
  }
}
