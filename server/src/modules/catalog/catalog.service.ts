import type { Database } from "../../persistence/database.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError, invalidField } from "../../shared/domain-error.js";
import { decodePageToken, pageOf } from "../../shared/page-token.js";
import { pageSize, requireCalendarDate, requireUuid } from "../../shared/validation.js";
import { Concert } from "./concert.entity.js";
import { ConcertDate } from "./concert-date.entity.js";
import { type SeatState, seatStateAt } from "./seat.entity.js";
import { type SeatListing, SeatRepository } from "./seat.repository.js";

/** A concert date with how many seats can be booked right now. */
export interface DateAvailability {
  readonly date: ConcertDate;
  readonly availableSeats: number;
}

/** One seat with its state at the time of the read. */
export interface SeatView {
  readonly id: string;
  readonly concertDateId: string;
  readonly number: number;
  readonly grade: string;
  readonly price: bigint;
  readonly state: SeatState;
}

/** The most seats one listing call returns (the REST listing of a whole date included). */
export const MAX_SEAT_PAGE = 5000;

/**
 * What is on sale. Reads only; every read is one query. Concert dates never
 * change once created, so their facts are cached for the hot paths.
 */
export class CatalogService {
  private readonly dateCache = new Map<string, ConcertDate>();
  private readonly knownConcerts = new Set<string>();

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /** Lists concerts in creation order, one page at a time. */
  async listConcerts(
    size: number,
    token: string,
  ): Promise<{ concerts: Concert[]; nextPageToken: string }> {
    const limit = pageSize(size, 50, 200);
    const after = decodePageToken(token, { t: "number", id: "string" });
    const em = this.db.fork();
    const concerts = await em.find(
      Concert,
      after
        ? {
            $or: [
              { createdAt: { $gt: new Date(after.t) } },
              { createdAt: new Date(after.t), id: { $gt: after.id } },
            ],
          }
        : {},
      { orderBy: { createdAt: "asc", id: "asc" }, limit: limit + 1 },
    );
    const page = pageOf(concerts, limit, (last) => ({ t: last.createdAt.getTime(), id: last.id }));
    return { concerts: page.items, nextPageToken: page.nextPageToken };
  }

  /** The concert the seed's REST routes use: the first one created. */
  async defaultConcert(): Promise<Concert> {
    const em = this.db.fork();
    const [concert] = await em.find(
      Concert,
      {},
      { orderBy: { createdAt: "asc", id: "asc" }, limit: 1 },
    );
    if (!concert) {
      throw new DomainError("not_found", "CONCERT_NOT_FOUND", "no concert is on sale");
    }
    return concert;
  }

  /** Whether a concert exists; positive answers are cached (concerts are never deleted). */
  async concertExists(concertId: string): Promise<boolean> {
    if (this.knownConcerts.has(concertId)) return true;
    const found = (await this.db.fork().count(Concert, { id: concertId })) > 0;
    if (found) this.knownConcerts.add(concertId);
    return found;
  }

  /**
   * Lists a concert's upcoming dates that still have at least one bookable
   * seat, in date order, each with its bookable-seat count.
   */
  async listBookableDates(concertId: string): Promise<DateAvailability[]> {
    requireUuid(concertId, "concert_id");
    if (!(await this.concertExists(concertId))) {
      throw new DomainError("not_found", "CONCERT_NOT_FOUND", "no concert has that id", {
        metadata: { concert_id: concertId },
      });
    }
    const now = this.clock.now();
    const rows = await this.db.fork().execute<
      {
        id: string;
        concert_id: string;
        date: string;
        starts_at: Date;
        total_seats: number;
        available: number;
      }[]
    >(
      `select d.id, d.concert_id, to_char(d.date, 'YYYY-MM-DD') as date, d.starts_at, d.total_seats,
              (select count(*)::int from seat s
                where s.concert_date_id = d.id
                  and (s.status = 'AVAILABLE' or (s.status = 'HELD' and s.held_until <= ?))) as available
         from concert_date d
        where d.concert_id = ? and d.starts_at > ?
        order by d.date`,
      [now, concertId, now],
    );
    return rows
      .filter((row) => row.available > 0)
      .map((row) => ({
        date: new ConcertDate(
          row.id,
          row.concert_id,
          row.date,
          new Date(row.starts_at),
          row.total_seats,
        ),
        availableSeats: row.available,
      }));
  }

  /** Finds a concert's date by its calendar date (YYYY-MM-DD). */
  async findDate(concertId: string, calendarDate: string): Promise<ConcertDate> {
    requireCalendarDate(calendarDate);
    const date = await this.db.fork().findOne(ConcertDate, { concertId, date: calendarDate });
    if (!date) {
      throw new DomainError("not_found", "CONCERT_DATE_NOT_FOUND", "no concert on that date", {
        metadata: { date: calendarDate },
      });
    }
    this.dateCache.set(date.id, date);
    return date;
  }

  /** Throws `SALE_CLOSED` once a date's performance has started. */
  assertOnSale(date: ConcertDate, now: Date): void {
    if (date.startsAt <= now) {
      throw new DomainError(
        "failed_precondition",
        "SALE_CLOSED",
        "the performance has started; its seats are no longer sold",
        { metadata: { concert_date_id: date.id } },
      );
    }
  }

  /** A date's immutable facts, cached after the first read. */
  async dateFacts(concertDateId: string): Promise<ConcertDate> {
    const cached = this.dateCache.get(concertDateId);
    if (cached) return cached;
    const date = await this.db.fork().findOne(ConcertDate, { id: concertDateId });
    if (!date) {
      throw new DomainError("not_found", "CONCERT_DATE_NOT_FOUND", "no concert date has that id", {
        metadata: { concert_date_id: concertDateId },
      });
    }
    this.dateCache.set(date.id, date);
    return date;
  }

  /** Lists one page of a date's bookable seats in seat-number order. */
  async listBookableSeats(
    concertDateId: string,
    size: number,
    token: string,
  ): Promise<{ seats: SeatListing[]; nextPageToken: string }> {
    requireUuid(concertDateId, "concert_date_id");
    const limit = pageSize(size, 500, MAX_SEAT_PAGE);
    const after = decodePageToken(token, { n: "number" });
    const em = this.db.fork();
    const date = await this.dateFacts(concertDateId);
    const now = this.clock.now();
    // Nothing is bookable once the performance has started.
    if (date.startsAt <= now) return { seats: [], nextPageToken: "" };
    const rows = await new SeatRepository(em).listBookable(
      concertDateId,
      now,
      after?.n ?? 0,
      limit + 1,
    );
    const page = pageOf(rows, limit, (last) => ({ n: last.number }));
    return { seats: page.items, nextPageToken: page.nextPageToken };
  }

  /** Lists one page of every seat of a date, with its state now, in seat-number order. */
  async listSeats(
    concertDateId: string,
    size: number,
    token: string,
  ): Promise<{ seats: SeatView[]; nextPageToken: string }> {
    requireUuid(concertDateId, "concert_date_id");
    const limit = pageSize(size, 500, MAX_SEAT_PAGE);
    const after = decodePageToken(token, { n: "number" });
    const em = this.db.fork();
    await this.dateFacts(concertDateId);
    const now = this.clock.now();
    const rows = await new SeatRepository(em).listAll(concertDateId, after?.n ?? 0, limit + 1);
    const page = pageOf(rows, limit, (last) => ({ n: last.number }));
    return {
      seats: page.items.map(
        (row): SeatView => ({
          id: row.id,
          concertDateId,
          number: row.number,
          grade: row.grade,
          price: row.price,
          state: seatStateAt(row.status, row.heldUntil, now),
        }),
      ),
      nextPageToken: page.nextPageToken,
    };
  }

  /** Lists every bookable seat number of a date (the seed's REST listing). */
  async listAllBookableSeats(concertDateId: string): Promise<SeatListing[]> {
    const em = this.db.fork();
    const date = await this.dateFacts(concertDateId);
    if (date.startsAt <= this.clock.now()) return [];
    return new SeatRepository(em).listBookable(
      concertDateId,
      this.clock.now(),
      0,
      Math.max(date.totalSeats, 1),
    );
  }

  /** One seat with its current state. */
  async getSeat(seatId: string): Promise<SeatView> {
    requireUuid(seatId, "seat_id");
    const seat = await new SeatRepository(this.db.fork()).findSeat(seatId);
    if (!seat) {
      throw new DomainError("not_found", "SEAT_NOT_FOUND", "no seat has that id", {
        metadata: { seat_id: seatId },
      });
    }
    return {
      id: seat.id,
      concertDateId: seat.concertDateId,
      number: seat.number,
      grade: seat.grade,
      price: seat.price,
      state: seat.stateAt(this.clock.now()),
    };
  }

  /** Finds a seat of a date by number, as the seed's REST routes address seats. */
  async findSeatId(concertDateId: string, seatNumber: number): Promise<string> {
    if (!Number.isSafeInteger(seatNumber) || seatNumber < 1) {
      throw invalidField("seatNumber", "must be a positive whole number");
    }
    const seat = await new SeatRepository(this.db.fork()).findSeatByNumber(
      concertDateId,
      seatNumber,
    );
    if (!seat) throw invalidField("seatNumber", "is not a seat of that date");
    return seat.id;
  }
}
