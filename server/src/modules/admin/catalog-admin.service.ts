import { type Database, transaction } from "../../persistence/database.js";
import { TxConnection } from "../../persistence/sql.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError, invalidField } from "../../shared/domain-error.js";
import { newId } from "../../shared/ids.js";
import {
  calendarDateIn,
  requireRequestId,
  requireTimeZone,
  requireUuid,
} from "../../shared/validation.js";
import {
  CatalogWrites,
  Concert,
  ConcertDate,
  parseSeatMap,
  type SeatMapFormat,
  type SeatMapProblem,
} from "../catalog/index.js";
import { claimRequestId, type IdempotentOperation } from "../idempotency/index.js";
import type { AdminActor } from "../identity/index.js";
import { AuditTrail } from "./audit.js";
import { claimOwner } from "./claims.js";

/** What a seat-map import found and did. */
export interface SeatMapImport {
  readonly problems: readonly SeatMapProblem[];
  readonly seatCount: number;
  readonly applied: boolean;
}

/** What the catalog's caches must hear of an import in this process. */
export interface CatalogCaches {
  forgetDate(concertDateId: string): void;
}

/** Checks a concert's title or venue: 1 to 200 printable characters. */
function checkLabel(value: string, field: string): string {
  const trimmed = value.trim();
  const length = [...trimmed].length;
  if (length === 0) throw invalidField(field, "must not be empty");
  if (length > 200) throw invalidField(field, "must be at most 200 characters");
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point
  if (!trimmed.isWellFormed() || /[\u0000-\u001f\u007f-\u009f]/.test(trimmed)) {
    throw invalidField(field, "must be printable text");
  }
  return trimmed;
}

function concertNotFound(concertId: string): DomainError {
  return new DomainError("not_found", "CONCERT_NOT_FOUND", "no concert has that id", {
    metadata: { concert_id: concertId },
  });
}

function dateNotFound(dateId: string): DomainError {
  return new DomainError("not_found", "CONCERT_DATE_NOT_FOUND", "no concert date has that id", {
    metadata: { concert_date_id: dateId },
  });
}

const concertJson = (concert: Concert) => ({
  title: concert.title,
  venue: concert.venue,
  time_zone: concert.timeZone,
});

/**
 * The operator's changes to the catalog: concerts, performances, seat maps.
 * Each is one transaction that claims the request id first, locks the row it
 * changes, writes, and appends its audit record.
 *
 * Catalog facts are cached by every instance (see CatalogService), which is
 * why a performance's seat map is written once and never changed: a date
 * without seats is never cached, so a new seat map shows up everywhere on
 * the next read, while changing a seat's price under instances that cache
 * it would not.
 */
export class CatalogAdminService {
  constructor(
    private readonly db: Database,
    private readonly caches: CatalogCaches,
    private readonly clock: Clock,
  ) {}

  /** Creates a concert; a retry with the same request id returns it. */
  async createConcert(
    actor: AdminActor,
    input: { title: string; venue: string; timeZone: string; requestId: string },
  ): Promise<Concert> {
    const title = checkLabel(input.title, "title");
    const venue = checkLabel(input.venue, "venue");
    const timeZone = requireTimeZone(input.timeZone);
    const requestId = requireRequestId(input.requestId);
    const now = this.clock.now();
    const concert = new Concert(newId(), title, venue, now, timeZone);
    return transaction(this.db, async (em) => {
      const tx = await TxConnection.of(em);
      const replay = await this.claim(
        tx,
        actor,
        requestId,
        "create_concert",
        [title, venue, timeZone],
        concert.id,
        now,
      );
      if (replay !== undefined) {
        const first = await CatalogWrites.lockConcert(tx, replay);
        if (!first) throw concertNotFound(replay);
        return first;
      }
      await CatalogWrites.insertConcert(tx, concert);
      await AuditTrail.append(tx, {
        actor,
        action: "CreateConcert",
        target: `concert/${concert.id}`,
        before: null,
        after: concertJson(concert),
        requestId,
        at: now,
      });
      return concert;
    });
  }

  /**
   * Changes a concert's title, venue or time zone (empty keeps each). The
   * time zone is fixed once the concert has a performance.
   */
  async updateConcert(
    actor: AdminActor,
    input: { concertId: string; title: string; venue: string; timeZone: string; requestId: string },
  ): Promise<Concert> {
    const concertId = requireUuid(input.concertId, "concert_id");
    const title = input.title === "" ? undefined : checkLabel(input.title, "title");
    const venue = input.venue === "" ? undefined : checkLabel(input.venue, "venue");
    const timeZone = input.timeZone === "" ? undefined : requireTimeZone(input.timeZone);
    const requestId = requireRequestId(input.requestId);
    const now = this.clock.now();
    return transaction(this.db, async (em) => {
      const tx = await TxConnection.of(em);
      const replay = await this.claim(
        tx,
        actor,
        requestId,
        "update_concert",
        [concertId, title ?? "", venue ?? "", timeZone ?? ""],
        concertId,
        now,
      );
      const concert = await CatalogWrites.lockConcert(tx, concertId);
      if (!concert) throw concertNotFound(concertId);
      if (replay !== undefined) return concert;
      const before = concertJson(concert);
      if (timeZone !== undefined && timeZone !== concert.timeZone) {
        if (await CatalogWrites.hasDates(tx, concertId)) {
          throw invalidField(
            "time_zone",
            "cannot change once the concert has a performance (it fixes their calendar dates)",
          );
        }
        concert.timeZone = timeZone;
      }
      if (title !== undefined) concert.title = title;
      if (venue !== undefined) concert.venue = venue;
      await CatalogWrites.updateConcert(tx, concert);
      await AuditTrail.append(tx, {
        actor,
        action: "UpdateConcert",
        target: `concert/${concert.id}`,
        before,
        after: concertJson(concert),
        requestId,
        at: now,
      });
      return concert;
    });
  }

  /**
   * Adds a performance without seats: a start in the future, and an
   * optional earlier close of sales (not in the past). Its calendar date is
   * the start's in the concert's time zone, and must be free.
   */
  async createPerformance(
    actor: AdminActor,
    input: {
      concertId: string;
      startsAt: Date | undefined;
      salesCloseAt: Date | undefined;
      requestId: string;
    },
  ): Promise<ConcertDate> {
    const concertId = requireUuid(input.concertId, "concert_id");
    const now = this.clock.now();
    const startsAt = input.startsAt;
    if (startsAt === undefined || Number.isNaN(startsAt.getTime())) {
      throw invalidField("start_time", "is required");
    }
    if (startsAt <= now) throw invalidField("start_time", "must be in the future");
    const salesCloseAt = input.salesCloseAt ?? null;
    if (salesCloseAt !== null) {
      if (Number.isNaN(salesCloseAt.getTime()) || salesCloseAt > startsAt) {
        throw invalidField("sales_close_time", "must not be after start_time");
      }
      if (salesCloseAt <= now) throw invalidField("sales_close_time", "must be in the future");
    }
    const requestId = requireRequestId(input.requestId);
    const dateId = newId();
    return transaction(this.db, async (em) => {
      const tx = await TxConnection.of(em);
      const replay = await this.claim(
        tx,
        actor,
        requestId,
        "create_performance",
        [concertId, startsAt.getTime(), salesCloseAt?.getTime() ?? 0],
        dateId,
        now,
      );
      if (replay !== undefined) {
        const first = await CatalogWrites.findDate(tx, replay);
        if (!first) throw dateNotFound(replay);
        return first;
      }
      const concert = await CatalogWrites.lockConcert(tx, concertId);
      if (!concert) throw concertNotFound(concertId);
      const calendarDate = calendarDateIn(startsAt, concert.timeZone);
      const date = new ConcertDate(dateId, concertId, calendarDate, startsAt, 0, salesCloseAt);
      if (!(await CatalogWrites.insertDate(tx, date))) {
        throw new DomainError(
          "already_exists",
          "CONCERT_DATE_EXISTS",
          `the concert already has a performance on ${calendarDate} (${concert.timeZone})`,
          { metadata: { concert_id: concertId, date: calendarDate } },
        );
      }
      await AuditTrail.append(tx, {
        actor,
        action: "CreatePerformance",
        target: `concert_date/${date.id}`,
        before: null,
        after: {
          concert_id: concertId,
          date: calendarDate,
          starts_at: startsAt.toISOString(),
          sales_close_at: salesCloseAt?.toISOString() ?? null,
        },
        requestId,
        at: now,
      });
      return date;
    });
  }

  /**
   * Checks a seat map and, unless `validateOnly` or a row is bad, writes it
   * to a performance that has no seats yet, all rows or none.
   */
  async importSeatMap(
    actor: AdminActor,
    input: {
      concertDateId: string;
      format: SeatMapFormat | undefined;
      text: string;
      validateOnly: boolean;
      requestId: string;
    },
  ): Promise<SeatMapImport> {
    const dateId = requireUuid(input.concertDateId, "concert_date_id");
    if (input.format === undefined) throw invalidField("format", "must be CSV or JSON");
    const requestId = input.validateOnly ? input.requestId : requireRequestId(input.requestId);
    const parsed = parseSeatMap(input.format, input.text);
    if (input.validateOnly) {
      return { problems: parsed.problems, seatCount: parsed.rows.length, applied: false };
    }
    if (parsed.problems.length > 0) {
      const violations = parsed.problems.map((problem) => ({
        field: "text",
        description: `line ${problem.line}${problem.field ? ` (${problem.field})` : ""}: ${problem.description}`,
      }));
      throw new DomainError(
        "invalid_argument",
        "INVALID_ARGUMENT",
        `text: ${parsed.problems.length} bad row(s); nothing was imported`,
        { violations, metadata: { field: "text" } },
      );
    }
    const now = this.clock.now();
    const count = await transaction(this.db, async (em) => {
      const tx = await TxConnection.of(em);
      const replay = await this.claim(
        tx,
        actor,
        requestId,
        "import_seat_map",
        [dateId, input.format ?? "", input.text],
        dateId,
        now,
      );
      const date = await CatalogWrites.lockDate(tx, dateId);
      if (!date) throw dateNotFound(dateId);
      const existing = await CatalogWrites.countSeats(tx, dateId);
      if (replay !== undefined) return existing;
      if (existing > 0) {
        throw new DomainError(
          "failed_precondition",
          "SEAT_MAP_EXISTS",
          "the performance already has its seat map; create a new performance to change it",
          { metadata: { concert_date_id: dateId, seat_count: String(existing) } },
        );
      }
      const inserted = await CatalogWrites.insertSeats(tx, dateId, parsed.rows);
      const grades: Record<string, number> = {};
      for (const row of parsed.rows) grades[row.grade] = (grades[row.grade] ?? 0) + 1;
      await AuditTrail.append(tx, {
        actor,
        action: "ImportSeatMap",
        target: `concert_date/${dateId}`,
        before: { seat_count: 0 },
        after: { seat_count: inserted, seats_by_grade: grades },
        requestId,
        at: now,
      });
      return inserted;
    });
    this.caches.forgetDate(dateId);
    return { problems: [], seatCount: count, applied: true };
  }

  /** Claims a request id for the operator; on a replay, the first call's result id. */
  private async claim(
    tx: TxConnection,
    actor: AdminActor,
    requestId: string,
    operation: IdempotentOperation,
    params: readonly (string | number | bigint)[],
    resultId: string,
    now: Date,
  ): Promise<string | undefined> {
    const claim = await claimRequestId(
      tx,
      { userId: claimOwner(actor), requestId, operation, params },
      resultId,
      now,
    );
    return claim.kind === "replay" ? claim.resultId : undefined;
  }
}
