import type { Database } from "../../persistence/database.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError } from "../../shared/domain-error.js";
import { requireUuid } from "../../shared/validation.js";

/** The window the sales rate is measured over. */
export const SALES_RATE_WINDOW_MS = 5 * 60_000;

/**
 * The waiting room's figures of a concert's line, as the stats need them
 * (the queue module's QueueService provides them).
 */
export interface WaitingRoomFigures {
  lineFigures(concertId: string): Promise<{
    readonly waiting: number;
    readonly admitted: number;
    readonly admissionsPerMinute: number;
  }>;
}

/** How a concert's sale is going, as read from the database and the waiting room at `readAt`. */
export interface SaleStats {
  readonly totalSeats: number;
  readonly availableSeats: number;
  readonly heldSeats: number;
  readonly soldSeats: number;
  readonly revenue: bigint;
  readonly refundedTickets: number;
  readonly refundedAmount: bigint;
  readonly soldInWindow: number;
  /** Tickets per minute over the window. */
  readonly salesPerMinute: number;
  /** At that rate, how long the available seats last; null when the rate is 0 or none are left. */
  readonly timeToSellOutMs: number | null;
  readonly readAt: Date;
  /** Users waiting in the concert's line. */
  readonly waiting: number;
  /** Users admitted to it now. */
  readonly admitted: number;
  /** Admissions per minute over the last minute. */
  readonly admissionsPerMinute: number;
}

interface SeatCounts {
  total: number;
  available: number;
  held: number;
  sold: number;
}

interface MoneyCounts {
  revenue: string;
  refunded_tickets: number;
  refunded_amount: string;
  sold_in_window: number;
}

/**
 * A concert's sale figures. Two scans, each over one concert's rows: its
 * seats by state (a hold past its time counts as available, as everywhere),
 * and its payments by state and time; and the line's figures from the
 * waiting room.
 */
export class SaleStatsReader {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly waitingRoom: WaitingRoomFigures,
  ) {}

  async read(concertIdInput: string): Promise<SaleStats> {
    const concertId = requireUuid(concertIdInput, "concert_id");
    const em = this.db.fork();
    const now = this.clock.now();
    const [exists] = await em.execute<{ found: number }[]>(
      "select 1 as found from concert where id = ?",
      [concertId],
    );
    if (exists === undefined) {
      throw new DomainError("not_found", "CONCERT_NOT_FOUND", "no concert has that id", {
        metadata: { concert_id: concertId },
      });
    }
    const [seats] = await em.execute<SeatCounts[]>(
      `select count(*)::int as total,
              count(*) filter (where s.status = 'AVAILABLE'
                                  or (s.status = 'HELD' and s.held_until <= ?))::int as available,
              count(*) filter (where s.status = 'HELD' and s.held_until > ?)::int as held,
              count(*) filter (where s.status = 'SOLD')::int as sold
         from seat s join concert_date d on d.id = s.concert_date_id
        where d.concert_id = ?`,
      [now, now, concertId],
    );
    const [money] = await em.execute<MoneyCounts[]>(
      `select coalesce(sum(p.amount) filter (where p.status = 'COMPLETED'), 0)::text as revenue,
              count(*) filter (where p.status = 'REFUNDED')::int as refunded_tickets,
              coalesce(sum(p.amount) filter (where p.status = 'REFUNDED'), 0)::text as refunded_amount,
              count(*) filter (where p.status = 'COMPLETED' and p.created_at > ?)::int as sold_in_window
         from payment p join reservation r on r.id = p.reservation_id
        where r.concert_id = ?`,
      [new Date(now.getTime() - SALES_RATE_WINDOW_MS), concertId],
    );
    const line = await this.waitingRoom.lineFigures(concertId);
    const counts = seats ?? { total: 0, available: 0, held: 0, sold: 0 };
    const soldInWindow = money?.sold_in_window ?? 0;
    const salesPerMinute = soldInWindow / (SALES_RATE_WINDOW_MS / 60_000);
    const left = counts.available + counts.held;
    return {
      totalSeats: counts.total,
      availableSeats: counts.available,
      heldSeats: counts.held,
      soldSeats: counts.sold,
      revenue: BigInt(money?.revenue ?? "0"),
      refundedTickets: money?.refunded_tickets ?? 0,
      refundedAmount: BigInt(money?.refunded_amount ?? "0"),
      soldInWindow,
      salesPerMinute,
      timeToSellOutMs:
        salesPerMinute > 0 && left > 0 ? Math.round((left / salesPerMinute) * 60_000) : null,
      readAt: now,
      waiting: line.waiting,
      admitted: line.admitted,
      admissionsPerMinute: line.admissionsPerMinute,
    };
  }
}
