/**
 * The seat-state gate: what the queue's store remembers about each seat's
 * last committed state, so that a hold attempt that cannot win is refused
 * without touching PostgreSQL, and so that seat listings can be kept fresh
 * from a short log of changes instead of one query per fan.
 *
 * The database stays the only judge of a sale. The gate only ever refuses a
 * seat it knows to be sold, or held by someone else until a time still in the
 * future; a seat it calls free, or does not know, goes to the database. Every
 * entry carries the version of the seat row it describes, and an entry only
 * replaces an older one, so writes that arrive out of order can never bring
 * back a state the database has left.
 */

/**
 * A concert date as the gate names it. Dates are unique on their own; the
 * concert says where the date's entries live (in Redis, next to the
 * concert's line, so a token lookup can read a seat's entry in one script).
 */
export interface GateDate {
  readonly concertId: string;
  readonly dateId: string;
}

/** What the gate knows of a seat. `unknown` means "ask the database". */
export type GateSeatState = "held" | "sold" | "free" | "unknown";

/** The gate's entry for one seat. */
export interface SeatGateEntry {
  /** The version of the seat row this entry describes. */
  readonly seatVersion: number;
  readonly state: GateSeatState;
  /** When a hold ends (ms since the epoch); 0 unless held. */
  readonly heldUntil: number;
  /** The user who holds or bought the seat; "" when free or unknown. */
  readonly owner: string;
}

/** A committed change of a seat, as the database left it. */
export interface SeatChange {
  readonly seatId: string;
  readonly seatVersion: number;
  readonly state: "held" | "sold" | "free";
  /** When the hold ends (ms since the epoch); 0 unless held. */
  readonly heldUntil: number;
  /** The holder or buyer; "" when free. */
  readonly owner: string;
}

/** The changes of one date's seats after a version a listing was built at. */
export interface DateChanges {
  /**
   * Names the life of the date's change counter: it changes when the counter
   * starts again (the gate lost its keys), so a listing built under another
   * epoch must be rebuilt. "" when the gate has never seen a change.
   */
  readonly epoch: string;
  /** The date's change version now (0 when the gate has never seen a change). */
  readonly version: number;
  /**
   * The changes after the asked version, oldest first; `null` when the gate
   * no longer has all of them (the log was trimmed or the gate restarted), so
   * the listing must be rebuilt from the database.
   */
  readonly changes: readonly SeatChange[] | null;
}

/** Which changes a listing asks for: those of the date after `afterVersion`. */
export interface DateChangesQuery extends GateDate {
  readonly afterVersion: number;
}

/**
 * The gate's storage: Redis in production (shared by every instance), or the
 * in-process store of the embedded default. Every method is atomic on its own.
 */
export interface SeatGate {
  /** The gate's entry for a seat of a date, or null when it has none. */
  peek(date: GateDate, seatId: string): Promise<SeatGateEntry | null>;

  /**
   * Records a committed change of a seat of a date if it is newer than what
   * the gate has, and appends it to the date's change log.
   */
  record(date: GateDate, change: SeatChange): Promise<void>;

  /**
   * Marks a seat as unknown (callers go to the database) before a change that
   * frees it is committed, so the gate can never keep refusing a seat whose
   * release it missed. Entries older than `seatVersion` are dropped too.
   */
  invalidate(date: GateDate, seatId: string, seatVersion: number): Promise<void>;

  /**
   * The change logs of several dates at once: one round trip (in Redis, one
   * script per concert among the dates, run side by side).
   */
  changesSince(queries: readonly DateChangesQuery[]): Promise<DateChanges[]>;
}

/** How many changes each date's log keeps; a listing further behind rebuilds. */
export const SEAT_LOG_LIMIT = 5000;

/** How long an entry is kept after its last write (ms); a forgotten seat is just "unknown". */
export const SEAT_ENTRY_TTL_MS = 24 * 3_600_000;

/**
 * The gate's one rule: whether an attempt by `userId` to hold a seat can be
 * refused at `now` without asking the database. Only a seat that is sold, or
 * held until a time still ahead, by someone else is refused; the owner's own
 * seat always goes to the database, where a retried request is replayed.
 */
export function gateRefuses(entry: SeatGateEntry | null, userId: string, now: number): boolean {
  if (entry === null || entry.owner === userId) return false;
  if (entry.state === "sold") return true;
  return entry.state === "held" && entry.heldUntil > now;
}

/** Whether `change` should replace `current` (only a newer row version does). */
export function supersedes(
  change: { seatVersion: number },
  current: SeatGateEntry | null,
): boolean {
  return current === null || change.seatVersion > current.seatVersion;
}

/**
 * The changes if they are exactly those numbered `after + 1 … version`, or
 * null when some are missing (trimmed from the log) and the asker must rebuild.
 */
export function contiguous<C extends { readonly n: number }>(
  changes: readonly C[],
  after: number,
  version: number,
): C[] | null {
  if (version < after) return null;
  if (version === after) return [];
  if (changes.length !== version - after || changes[0]?.n !== after + 1) return null;
  return [...changes];
}
