import { statement, type TxConnection } from "../../persistence/sql.js";
import { Concert } from "./concert.entity.js";
import { ConcertDate } from "./concert-date.entity.js";
import type { SeatMapRow } from "./seat-map.js";

interface ConcertRow {
  readonly id: string;
  readonly title: string;
  readonly venue: string;
  readonly time_zone: string;
  readonly created_at_ms: number;
}

interface DateRow {
  readonly id: string;
  readonly concert_id: string;
  readonly date: string;
  readonly starts_at_ms: number;
  readonly total_seats: number;
  readonly sales_close_at_ms: number | null;
}

const CONCERT_COLUMNS = `id, title, venue, time_zone,
  (extract(epoch from created_at) * 1000)::float8 as created_at_ms`;

const DATE_COLUMNS = `id, concert_id, to_char(date, 'YYYY-MM-DD') as date,
  (extract(epoch from starts_at) * 1000)::float8 as starts_at_ms, total_seats,
  (extract(epoch from sales_close_at) * 1000)::float8 as sales_close_at_ms`;

const INSERT_CONCERT = statement<never>(
  "catalog_insert_concert",
  "insert into concert (id, title, venue, time_zone, created_at) values ($1, $2, $3, $4, $5)",
);

const LOCK_CONCERT = statement<ConcertRow>(
  "catalog_lock_concert",
  `select ${CONCERT_COLUMNS} from concert where id = $1 for update`,
);

const UPDATE_CONCERT = statement<never>(
  "catalog_update_concert",
  "update concert set title = $2, venue = $3, time_zone = $4 where id = $1",
);

const HAS_DATES = statement<{ found: number }>(
  "catalog_concert_has_dates",
  "select 1 as found from concert_date where concert_id = $1 limit 1",
);

// A concert plays at most once per calendar date (the table's unique key).
const INSERT_DATE = statement<{ id: string }>(
  "catalog_insert_date",
  `insert into concert_date (id, concert_id, date, starts_at, total_seats, sales_close_at)
   values ($1, $2, $3::date, $4, 0, $5)
   on conflict (concert_id, date) do nothing
   returning id`,
);

const FIND_DATE = statement<DateRow>(
  "catalog_admin_find_date",
  `select ${DATE_COLUMNS} from concert_date where id = $1`,
);

const LOCK_DATE = statement<DateRow>(
  "catalog_lock_date",
  `select ${DATE_COLUMNS} from concert_date where id = $1 for update`,
);

const COUNT_SEATS = statement<{ count: number }>(
  "catalog_count_seats",
  "select count(*)::int as count from seat where concert_date_id = $1",
);

// Every seat of a seat map in one statement, and the date's seat count.
const INSERT_SEATS = statement<{ count: number }>(
  "catalog_insert_seats",
  `with added as (
     insert into seat (id, concert_date_id, number, grade, price, status, version, section, row_label)
     select gen_random_uuid(), $1, m.number, m.grade, m.price, 'AVAILABLE', 1, m.section, m.row_label
       from unnest($2::int[], $3::text[], $4::bigint[], $5::text[], $6::text[])
            as m(number, grade, price, section, row_label)
     returning 1
   ), counted as (
     select count(*)::int as count from added
   ), total as (
     update concert_date set total_seats = (select count from counted) where id = $1
   )
   select count from counted`,
);

function concertFromRow(row: ConcertRow): Concert {
  return new Concert(row.id, row.title, row.venue, new Date(row.created_at_ms), row.time_zone);
}

function dateFromRow(row: DateRow): ConcertDate {
  return new ConcertDate(
    row.id,
    row.concert_id,
    row.date,
    new Date(row.starts_at_ms),
    row.total_seats,
    row.sales_close_at_ms === null ? null : new Date(row.sales_close_at_ms),
  );
}

/**
 * The operator's writes to the catalog, inside the caller's transaction (one
 * round trip each). Method names say which lock they take; a concert's or a
 * date's row lock serialises the operator changes to it.
 */
export const CatalogWrites = {
  async insertConcert(tx: TxConnection, concert: Concert): Promise<void> {
    await tx.all(INSERT_CONCERT, [
      concert.id,
      concert.title,
      concert.venue,
      concert.timeZone,
      concert.createdAt,
    ]);
  },

  async lockConcert(tx: TxConnection, concertId: string): Promise<Concert | null> {
    const row = await tx.one(LOCK_CONCERT, [concertId]);
    return row === undefined ? null : concertFromRow(row);
  },

  async updateConcert(tx: TxConnection, concert: Concert): Promise<void> {
    await tx.all(UPDATE_CONCERT, [concert.id, concert.title, concert.venue, concert.timeZone]);
  },

  async hasDates(tx: TxConnection, concertId: string): Promise<boolean> {
    return (await tx.one(HAS_DATES, [concertId])) !== undefined;
  },

  /** Inserts a date without seats; false when the concert already plays that day. */
  async insertDate(tx: TxConnection, date: ConcertDate): Promise<boolean> {
    const row = await tx.one(INSERT_DATE, [
      date.id,
      date.concertId,
      date.date,
      date.startsAt,
      date.salesCloseAt,
    ]);
    return row !== undefined;
  },

  async findDate(tx: TxConnection, dateId: string): Promise<ConcertDate | null> {
    const row = await tx.one(FIND_DATE, [dateId]);
    return row === undefined ? null : dateFromRow(row);
  },

  async lockDate(tx: TxConnection, dateId: string): Promise<ConcertDate | null> {
    const row = await tx.one(LOCK_DATE, [dateId]);
    return row === undefined ? null : dateFromRow(row);
  },

  async countSeats(tx: TxConnection, dateId: string): Promise<number> {
    return (await tx.one(COUNT_SEATS, [dateId]))?.count ?? 0;
  },

  /** Inserts a checked seat map into a date without seats (locked by the caller); returns the count. */
  async insertSeats(
    tx: TxConnection,
    dateId: string,
    rows: readonly SeatMapRow[],
  ): Promise<number> {
    const result = await tx.one(INSERT_SEATS, [
      dateId,
      rows.map((r) => r.number),
      rows.map((r) => r.grade),
      rows.map((r) => String(r.price)),
      rows.map((r) => r.section),
      rows.map((r) => r.row),
    ]);
    return result?.count ?? 0;
  },
};
