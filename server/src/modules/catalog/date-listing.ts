import type { SeatChange } from "../queue/index.js";
import type { DateSeats, SeatFacts } from "./date-seats.js";
import { type SeatState, type SeatStatus, seatStateAtMs } from "./seat.entity.js";

/** The bookable seat numbers of one block of a date, in number order. Immutable. */
export interface AvailabilityBlock {
  readonly numbers: readonly number[];
}

/**
 * A date's bookable seats at one moment, in blocks of consecutive seats. The
 * object (and each block) is replaced, never changed, when a seat changes or
 * a hold expires, so callers may memoise what they render from it by identity.
 */
export interface Availability {
  readonly count: number;
  readonly blocks: readonly AvailabilityBlock[];
}

/** One seat's row as a listing snapshot reads it. */
export interface SeatStateRow {
  readonly id: string;
  readonly status: SeatStatus;
  readonly version: number;
  /** Epoch milliseconds, or null when not held. */
  readonly held_until_ms: number | null;
}

/** Seats per block: a change re-renders one block, not the whole date. */
const BLOCK = 256;

const STATUS_CODES: Record<SeatStatus, number> = { AVAILABLE: 0, HELD: 1, SOLD: 2 };
const STATUSES: readonly SeatStatus[] = ["AVAILABLE", "HELD", "SOLD"];
const CHANGE_STATUS = { free: 0, held: 1, sold: 2 } as const;

/**
 * The state of every seat of one date, built from one query and then kept
 * current from the seat gate's change log (see SeatListings), so listing a
 * date costs no query. Expiry needs no event: a hold whose time has passed is
 * bookable by the same rule as everywhere else ({@link seatStateAtMs}).
 *
 * Each seat keeps the version of its row, and a change only applies when it
 * is newer, so replaying changes the snapshot already includes is harmless.
 */
export class DateListing {
  private readonly status: Uint8Array;
  private readonly heldUntil: Float64Array;
  private readonly rowVersion: Float64Array;
  private readonly blocks: AvailabilityBlock[];
  /** Per block: when its next unexpired hold ends (it must be recomputed then). */
  private readonly nextExpiry: Float64Array;
  private readonly stale: Uint8Array;
  private current: Availability | undefined;
  private currentUntil = 0;

  constructor(
    readonly seats: DateSeats,
    /** The gate's epoch and change version this listing has caught up to. */
    readonly epoch: string,
    public version: number,
    /** When the snapshot was taken (ms). */
    readonly builtAt: number,
    rows: readonly SeatStateRow[],
  ) {
    const size = seats.size;
    this.status = new Uint8Array(size).fill(STATUS_CODES.SOLD);
    this.heldUntil = new Float64Array(size);
    this.rowVersion = new Float64Array(size);
    for (const row of rows) {
      const index = seats.indexOfId(row.id);
      if (index < 0) continue;
      this.status[index] = STATUS_CODES[row.status];
      this.heldUntil[index] = row.held_until_ms ?? 0;
      this.rowVersion[index] = row.version;
    }
    const blockCount = Math.ceil(size / BLOCK);
    this.blocks = Array.from({ length: blockCount }, () => ({ numbers: [] }));
    this.nextExpiry = new Float64Array(blockCount);
    this.stale = new Uint8Array(blockCount).fill(1);
  }

  /** Applies one committed change if it is newer than what the listing has. */
  apply(change: SeatChange): void {
    const index = this.seats.indexOfId(change.seatId);
    if (index < 0 || change.seatVersion <= (this.rowVersion[index] ?? 0)) return;
    this.rowVersion[index] = change.seatVersion;
    this.status[index] = CHANGE_STATUS[change.state];
    this.heldUntil[index] = change.heldUntil;
    this.stale[Math.floor(index / BLOCK)] = 1;
    this.current = undefined;
  }

  /** The state of the seat at a position at `now` (ms). */
  stateAt(index: number, now: number): SeatState {
    return seatStateAtMs(
      STATUSES[this.status[index] ?? 2] ?? "SOLD",
      this.heldUntil[index] ?? 0,
      now,
    );
  }

  /** The bookable seats at `now` (ms). Cheap when nothing changed since the last call. */
  availability(now: number): Availability {
    if (this.current !== undefined && now < this.currentUntil) return this.current;
    let count = 0;
    let until = Number.POSITIVE_INFINITY;
    for (let block = 0; block < this.blocks.length; block++) {
      if (this.stale[block] === 1 || (this.nextExpiry[block] ?? 0) <= now) {
        this.recompute(block, now);
      }
      count += this.blocks[block]?.numbers.length ?? 0;
      until = Math.min(until, this.nextExpiry[block] ?? Number.POSITIVE_INFINITY);
    }
    this.current = { count, blocks: [...this.blocks] };
    this.currentUntil = until;
    return this.current;
  }

  /** Up to `limit` bookable seats at `now` numbered above `afterNumber`. */
  bookableAfter(afterNumber: number, limit: number, now: number): SeatFacts[] {
    const found: SeatFacts[] = [];
    for (let i = this.seats.firstAfter(afterNumber); i < this.seats.size; i++) {
      if (found.length >= limit) break;
      if (this.stateAt(i, now) === "AVAILABLE") found.push(this.seats.at(i));
    }
    return found;
  }

  /** Up to `limit` seats numbered above `afterNumber`, each with its state at `now`. */
  seatsAfter(
    afterNumber: number,
    limit: number,
    now: number,
  ): { readonly seat: SeatFacts; readonly state: SeatState }[] {
    const found: { seat: SeatFacts; state: SeatState }[] = [];
    const end = Math.min(this.seats.size, this.seats.firstAfter(afterNumber) + limit);
    for (let i = this.seats.firstAfter(afterNumber); i < end; i++) {
      found.push({ seat: this.seats.at(i), state: this.stateAt(i, now) });
    }
    return found;
  }

  private recompute(block: number, now: number): void {
    const numbers: number[] = [];
    let next = Number.POSITIVE_INFINITY;
    const end = Math.min(this.seats.size, (block + 1) * BLOCK);
    for (let i = block * BLOCK; i < end; i++) {
      if (this.stateAt(i, now) === "AVAILABLE") {
        numbers.push(this.seats.numbers[i] ?? 0);
      } else if (this.status[i] === STATUS_CODES.HELD) {
        next = Math.min(next, this.heldUntil[i] ?? 0);
      }
    }
    this.blocks[block] = { numbers };
    this.nextExpiry[block] = next;
    this.stale[block] = 0;
  }
}
