import type { Logger } from "../../logger.js";
import type { Database } from "../../persistence/database.js";
import type { TxConnection } from "../../persistence/sql.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError, invalidField } from "../../shared/domain-error.js";
import { decodePageToken, pageOf } from "../../shared/page-token.js";
import { SingleFlight } from "../../shared/single-flight.js";
import { pageSize, requireCalendarDate, requireUuid } from "../../shared/validation.js";
import type { SeatGate } from "../queue/index.js";
import { Concert } from "./concert.entity.js";
import { ConcertDate, ConcertDateRepository } from "./concert-date.entity.js";
import type { Availability } from "./date-listing.js";
import { DateSeats, type SeatFacts } from "./date-seats.js";
import type { SeatState } from "./seat.entity.js";
import { SeatRepository } from "./seat.repository.js";
import { SeatListings } from "./seat-listings.js";

/** A concert date with how many seats can be booked right now. */
export interface DateAvailability {
  readonly date: ConcertDate;
  readonly availableSeats: number;
}

/** One seat with its state at the time of the read. */
export interface SeatView extends SeatFacts {
  readonly state: SeatState;
}

/** The most seats one listing call returns. */
export const MAX_SEAT_PAGE = 5000;

/** How long a concert's list of dates is reused before it is read again (ms). */
const DATE_LIST_TTL_MS = 1000;

/** Nothing is bookable: what a date whose performance has started lists. */
const NOTHING_BOOKABLE: Availability = Object.freeze({ count: 0, blocks: Object.freeze([]) });

function seatNotFound(seatId: string): DomainError {
  return new DomainError("not_found", "SEAT_NOT_FOUND", "no seat has that id", {
    metadata: { seat_id: seatId },
  });
}

/**
 * What is on sale. Reads only.
 *
 * Catalog facts never change once created (a concert, its dates, a seat's
 * date, number, grade and price: nothing in the server edits or deletes them),
 * so they are cached in-process after their first read and the hot paths
 * (issuing tokens, holding seats, the REST routes) never ask the database for
 * them. Only positive answers are cached, so a concert or date created later
 * is found on its first use. A concert's list of dates is re-read at most
 * once a second, so a date added to a running sale appears within that time.
 * A fact not cached yet, or an expired date list, is read once however many
 * requests ask for it meanwhile: they share the one read in flight, so the
 * opening second of a sale, when every cache is cold and thousands of fans
 * ask at once, costs one query per fact, not one per request.
 *
 * Seat states come from {@link SeatListings}: built once per date and kept
 * fresh from the seat gate, so a listing costs no query however many fans ask.
 *
 * Two databases: `reads` (a read replica when DATABASE_READ_URL is set, else
 * the primary) serves the immutable facts and the concert and date lists,
 * which a replica's lag can only make briefly unknown (only positive answers
 * are cached, so the next call asks again). The seat-state snapshots the
 * listings are built from stay on the primary, `db`: a lagging snapshot could
 * list as free a seat someone was already told is held, which the listings
 * promise never happens. Nothing under a lock, no hold, payment, wallet or
 * request id ever reads from `reads` (they are not in this service).
 */
export class CatalogService {
  private readonly dates = new Map<string, ConcertDate>();
  private readonly datesByCalendar = new Map<string, ConcertDate>();
  private readonly concertDates = new Map<string, { at: number; dates: ConcertDate[] }>();
  private readonly knownConcerts = new Set<string>();
  private firstConcert: Concert | undefined;
  /** Every loaded date's seats, and each seat's date. */
  private readonly dateSeats = new Map<string, Promise<DateSeats>>();
  private readonly seatDates = new Map<string, DateSeats>();
  private readonly listings: SeatListings;
  /** The reads of facts not cached yet (or of an expired date list), one per key at a time. */
  private readonly loads = new SingleFlight<string, unknown>();

  constructor(
    private readonly db: Database,
    private readonly reads: Database,
    private readonly clock: Clock,
    gate: SeatGate,
    logger: Logger,
  ) {
    this.listings = new SeatListings(
      gate,
      {
        seats: (dateId) => this.seatsOf(dateId),
        states: (dateId) => new SeatRepository(this.db.fork()).seatStates(dateId),
      },
      clock,
      logger,
    );
  }

  /** Lists concerts in creation order, one page at a time. */
  async listConcerts(
    size: number,
    token: string,
  ): Promise<{ concerts: Concert[]; nextPageToken: string }> {
    const limit = pageSize(size, 50, 200);
    const after = decodePageToken(token, { t: "number", id: "string" });
    const em = this.reads.fork();
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

  /** The concert the seed's REST routes use: the first one created (cached once found). */
  async defaultConcert(): Promise<Concert> {
    if (this.firstConcert !== undefined) return this.firstConcert;
    const [concert] = await this.load("first-concert", () =>
      this.reads.fork().find(Concert, {}, { orderBy: { createdAt: "asc", id: "asc" }, limit: 1 }),
    );
    if (!concert) {
      throw new DomainError("not_found", "CONCERT_NOT_FOUND", "no concert is on sale");
    }
    this.firstConcert = concert;
    return concert;
  }

  /** Whether a concert exists; positive answers are cached (concerts are never deleted). */
  async concertExists(concertId: string): Promise<boolean> {
    if (this.knownConcerts.has(concertId)) return true;
    const found = await this.load(
      `concert:${concertId}`,
      async () => (await this.reads.fork().count(Concert, { id: concertId })) > 0,
    );
    if (found) this.knownConcerts.add(concertId);
    return found;
  }

  /**
   * Whether a concert's sale has ended: its last date has started. A concert
   * without dates has not (a date may still be added). Reads the dates list
   * cached for a second, like the listings.
   */
  async saleEnded(concertId: string): Promise<boolean> {
    const now = this.clock.now();
    const dates = await this.datesOf(concertId);
    return dates.length > 0 && dates.every((date) => date.salesEnded(now));
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
    const upcoming = (await this.datesOf(concertId)).filter((date) => !date.salesEnded(now));
    const listings = await this.listings.get(upcoming);
    const nowMs = now.getTime();
    return upcoming
      .map((date, i) => ({
        date,
        availableSeats: listings[i]?.availability(nowMs).count ?? 0,
      }))
      .filter((item) => item.availableSeats > 0);
  }

  /** Finds a concert's date by its calendar date (YYYY-MM-DD). */
  async findDate(concertId: string, calendarDate: string): Promise<ConcertDate> {
    requireCalendarDate(calendarDate);
    const key = `${concertId}/${calendarDate}`;
    const cached = this.datesByCalendar.get(key);
    if (cached) return cached;
    const date = await this.load(`calendar:${key}`, () =>
      this.reads.fork().findOne(ConcertDate, { concertId, date: calendarDate }),
    );
    if (!date) {
      throw new DomainError("not_found", "CONCERT_DATE_NOT_FOUND", "no concert on that date", {
        metadata: { date: calendarDate },
      });
    }
    this.dates.set(date.id, date);
    this.datesByCalendar.set(key, date);
    return date;
  }

  /** Throws `SALE_CLOSED` once a date's sales have closed (at its start, or earlier if set). */
  assertOnSale(date: ConcertDate, now: Date): void {
    if (date.salesEnded(now)) {
      throw new DomainError(
        "failed_precondition",
        "SALE_CLOSED",
        "sales for this performance have closed; its seats are no longer sold",
        { metadata: { concert_date_id: date.id } },
      );
    }
  }

  /**
   * A date's immutable facts, cached after the first read. Inside a
   * transaction, pass its connection: a miss is then read on that connection
   * (one round trip) rather than on a second pooled one, which, with every
   * connection held by a transaction waiting for one more, would stall the
   * pool until its acquire timeout.
   */
  async dateFacts(concertDateId: string, tx?: TxConnection): Promise<ConcertDate> {
    const cached = this.dates.get(concertDateId);
    if (cached) return cached;
    const date =
      tx === undefined
        ? await this.load(`date:${concertDateId}`, () =>
            this.reads.fork().findOne(ConcertDate, { id: concertDateId }),
          )
        : await ConcertDateRepository.find(tx, concertDateId);
    if (!date) {
      throw new DomainError("not_found", "CONCERT_DATE_NOT_FOUND", "no concert date has that id", {
        metadata: { concert_date_id: concertDateId },
      });
    }
    this.dates.set(date.id, date);
    return date;
  }

  /** A seat's immutable facts; throws `SEAT_NOT_FOUND`. Loads the seat's whole date once. */
  async seatFacts(seatId: string): Promise<SeatFacts> {
    const known = this.cachedSeat(seatId);
    if (known) return known;
    const dateId = await this.load(`seat:${seatId}`, () =>
      new SeatRepository(this.reads.fork()).dateOfSeat(seatId),
    );
    if (dateId === null) throw seatNotFound(seatId);
    const seats = await this.seatsOf(dateId);
    const index = seats.indexOfId(seatId);
    if (index < 0) throw seatNotFound(seatId);
    return seats.at(index);
  }

  /** A seat's facts if they are already in memory (never touches the database). */
  cachedSeat(seatId: string): SeatFacts | undefined {
    const seats = this.seatDates.get(seatId);
    return seats?.at(seats.indexOfId(seatId));
  }

  /** Finds a seat of a date by number, as the seed's REST routes address seats. */
  async findSeat(concertDateId: string, seatNumber: number): Promise<SeatFacts> {
    if (!Number.isSafeInteger(seatNumber) || seatNumber < 1) {
      throw invalidField("seatNumber", "must be a positive whole number");
    }
    const seats = await this.seatsOf(concertDateId);
    const index = seats.indexOfNumber(seatNumber);
    if (index < 0) throw invalidField("seatNumber", "is not a seat of that date");
    return seats.at(index);
  }

  /** Lists one page of a date's bookable seats in seat-number order. */
  async listBookableSeats(
    concertDateId: string,
    size: number,
    token: string,
  ): Promise<{ seats: SeatFacts[]; nextPageToken: string }> {
    requireUuid(concertDateId, "concert_date_id");
    const limit = pageSize(size, 500, MAX_SEAT_PAGE);
    const after = decodePageToken(token, { n: "number" });
    const date = await this.dateFacts(concertDateId);
    const now = this.clock.now();
    // Nothing is bookable once the date's sales have closed.
    if (date.salesEnded(now)) return { seats: [], nextPageToken: "" };
    const [listing] = await this.listings.get([date]);
    const rows = listing?.bookableAfter(after?.n ?? 0, limit + 1, now.getTime()) ?? [];
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
    const date = await this.dateFacts(concertDateId);
    const [listing] = await this.listings.get([date]);
    const rows = listing?.seatsAfter(after?.n ?? 0, limit + 1, this.clock.now().getTime()) ?? [];
    const page = pageOf(rows, limit, (last) => ({ n: last.seat.number }));
    return {
      seats: page.items.map(({ seat, state }) => ({ ...seat, state })),
      nextPageToken: page.nextPageToken,
    };
  }

  /**
   * Every bookable seat of a date right now (the seed's REST listing). The
   * result is reused, and so are its blocks, until a seat changes or a hold
   * ends, so callers may memoise what they render from it by identity.
   */
  async availability(concertDateId: string): Promise<Availability> {
    const date = await this.dateFacts(concertDateId);
    const now = this.clock.now();
    if (date.salesEnded(now)) return NOTHING_BOOKABLE;
    const [listing] = await this.listings.get([date]);
    return listing?.availability(now.getTime()) ?? NOTHING_BOOKABLE;
  }

  /** One seat with its current state. */
  async getSeat(seatId: string): Promise<SeatView> {
    requireUuid(seatId, "seat_id");
    const seat = await this.seatFacts(seatId);
    const [listing] = await this.listings.get([await this.dateFacts(seat.concertDateId)]);
    const index = listing?.seats.indexOfId(seatId) ?? -1;
    if (listing === undefined || index < 0) throw seatNotFound(seatId);
    return { ...seat, state: listing.stateAt(index, this.clock.now().getTime()) };
  }

  /**
   * Forgets what this process knows of a date's seats and listing, after its
   * seat map was imported here. Other instances have nothing to forget: a
   * date without seats is never kept (see {@link seatsOf}), and their
   * listings of it are rebuilt, with the seats, within the listings'
   * rebuild period.
   */
  forgetDate(concertDateId: string): void {
    this.dateSeats.delete(concertDateId);
    this.listings.forget(concertDateId);
    this.concertDates.clear();
  }

  /** The seats of a date (loaded once it has any, then shared). */
  private seatsOf(concertDateId: string): Promise<DateSeats> {
    let loading = this.dateSeats.get(concertDateId);
    if (loading === undefined) {
      loading = (async () => {
        const rows = await new SeatRepository(this.reads.fork()).seatFacts(concertDateId);
        const seats = new DateSeats(concertDateId, rows);
        for (const id of seats.ids) this.seatDates.set(id, seats);
        // A date without seats is waiting for its seat map (ImportSeatMap,
        // possibly on another instance): read it again next time. Once it
        // has seats they never change, so they are kept.
        if (rows.length === 0) this.dateSeats.delete(concertDateId);
        return seats;
      })();
      // A failed load is not kept, so the next call tries again.
      loading.catch(() => this.dateSeats.delete(concertDateId));
      this.dateSeats.set(concertDateId, loading);
    }
    return loading;
  }

  /** A concert's dates in date order, re-read at most once per {@link DATE_LIST_TTL_MS}. */
  private async datesOf(concertId: string): Promise<ConcertDate[]> {
    const now = this.clock.now().getTime();
    const cached = this.concertDates.get(concertId);
    if (cached !== undefined && now - cached.at < DATE_LIST_TTL_MS) return cached.dates;
    // Read once for everyone who finds the list missing or expired meanwhile.
    return this.load(`dates:${concertId}`, async () => {
      const dates = await this.reads
        .fork()
        .find(ConcertDate, { concertId }, { orderBy: { date: "asc" } });
      for (const date of dates) this.dates.set(date.id, date);
      this.concertDates.set(concertId, { at: now, dates });
      return dates;
    });
  }

  /**
   * Reads a fact not cached yet through {@link loads}: every caller asking
   * for the same key while the read runs shares it, so a cold cache at the
   * opening of a sale costs one query per fact, not one per request.
   */
  private load<T>(key: string, read: () => Promise<T>): Promise<T> {
    return this.loads.run(key, read) as Promise<T>;
  }
}
