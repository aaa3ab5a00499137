import type { SeatGate, SeatGateEntry } from "./seat-gate.js";

/**
 * Where a token stands inside the store. `waiting`, `admitted` and
 * `completed` tokens authenticate; the others only explain why a token no
 * longer works until their record is dropped.
 */
export type StoredTokenState =
  | "lobby"
  | "waiting"
  | "admitted"
  | "completed"
  | "expired"
  | "evicted"
  | "left"
  | "revoked";

/** One token's record and live place in line, as the store sees it. */
export interface QueueSnapshot {
  readonly tokenId: string;
  readonly userId: string;
  readonly concertId: string;
  readonly state: StoredTokenState;
  /** 1-based rank among waiting users; 0 when not waiting. */
  readonly position: number;
  /** How many users wait in this concert's line. */
  readonly waitingCount: number;
  /** When a waiting user was last active (ms since the epoch); 0 when not waiting. */
  readonly lastSeenAt: number;
  /** The absolute end of the admission (ms since the epoch); 0 before admission. */
  readonly admissionExpiresAt: number;
  /** The moving average of how long admissions last in this concert (ms). */
  readonly averageAdmissionMs: number;
  /**
   * A waiting user's arrival number in this concert's line (the line is its
   * waiters by ascending arrival); 0 when not waiting.
   */
  readonly arrival: number;
  /** The concert's scheduled opening while its lobby is not drawn (ms); 0 otherwise. */
  readonly opensAt: number;
  /** Whether admission to the concert is paused. */
  readonly paused: boolean;
  /** The concert's seat hold length (ms); 0 means the server's default. */
  readonly holdMs: number;
}

/**
 * What a watcher needs to derive the position of every waiter of one concert
 * without asking per token: a waiter with arrival number `a` stands at
 * `1 + (a - head) - |{d in departed : head < d < a}|`, where `departed`
 * accumulates the {@link LineDigest.departed} of successive digests (or is
 * replaced by it after a reset). See {@link QueueStore.lineDigest}.
 */
export interface LineDigest {
  /** The concert's {@link QueueStore.versions} counter. */
  readonly version: number;
  /** The first waiter's arrival number; the next one to be given when nobody waits. */
  readonly head: number;
  readonly waitingCount: number;
  readonly averageAdmissionMs: number;
  /** How many waiters have left from behind the head so far: pass it to the next call. */
  readonly departures: number;
  /**
   * True: `departed` holds every departed arrival number above the head
   * (replace what you had). False: those that departed since the count passed in.
   */
  readonly reset: boolean;
  /** Arrival numbers of waiters that left from behind the head (not in order). */
  readonly departed: readonly number[];
  /** Whether admission to the concert is paused. */
  readonly paused: boolean;
}

/** The limits every store enforces, fixed at construction. */
export interface QueueLimits {
  /** The most users admitted to one concert at any instant. */
  readonly maxActive: number;
  /** How long an admission lasts (ms); activity never extends it. */
  readonly admissionTtlMs: number;
  /** How long a waiting user may stay silent before losing their place (ms). */
  readonly idleMs: number;
  /** How long a dead token's record is kept to explain errors (ms). */
  readonly graceMs: number;
}

/** What {@link QueueStore.issue} needs to create a token if the user has no live one. */
export interface IssueInput {
  readonly concertId: string;
  readonly userId: string;
  /** The id to use if a new token is created. */
  readonly tokenId: string;
  /** The hash of the token derived from `tokenId`. */
  readonly tokenHash: string;
  readonly now: number;
}

/** The result of {@link QueueStore.issue}. */
export interface IssueResult {
  /** Whether a new token was created (otherwise the user's live token was returned). */
  readonly created: boolean;
  readonly snapshot: QueueSnapshot;
}

/** A seat, named the way the gate keys it. */
export interface SeatRef {
  readonly dateId: string;
  readonly seatId: string;
}

/** A token lookup together with one seat's gate entry, read at once. */
export interface LookupWithSeat {
  readonly snapshot: QueueSnapshot | null;
  readonly seat: SeatGateEntry | null;
}

/**
 * The waiting room's state: an arrival-ordered line per concert, the set of
 * admitted users, and token records. Every method is atomic on its own and
 * safe to call from any number of server instances at once; the Redis store is
 * the production implementation and the in-process store the embedded one.
 * Both pass the same contract test suite.
 */
export interface QueueStore {
  /**
   * Returns the user's live token (waiting, or admitted and unexpired) for the
   * concert, or creates one at the back of the line, revoking any dead token
   * the user had. Runs one promotion step, so a user who finds a free slot
   * and nobody ahead is admitted in the same call.
   */
  issue(input: IssueInput): Promise<IssueResult>;

  /**
   * Finds a token of a concert's line by hash (a token names its concert).
   * A waiting token whose idle window has passed is evicted on the spot. With
   * `touch`, a waiting token's activity clock is reset. Returns `null` for
   * unknown or dropped tokens, and for tokens of another concert.
   */
  lookup(
    concertId: string,
    tokenHash: string,
    now: number,
    touch: boolean,
  ): Promise<QueueSnapshot | null>;

  /**
   * {@link lookup} and {@link SeatGate.peek} of one seat of a date of the
   * same concert in one round trip, so a seat hold is authenticated and gated
   * at once. (A seat of another concert's date reads as unknown to the gate.)
   */
  lookupWithSeat(
    concertId: string,
    tokenHash: string,
    now: number,
    touch: boolean,
    seat: SeatRef,
  ): Promise<LookupWithSeat>;

  /** The seat-state gate kept next to the line (see seat-gate.ts). */
  readonly seats: SeatGate;

  /**
   * Snapshots many tokens of one concert at once (for the watch streams),
   * optionally touching the waiting ones. Missing tokens map to `null`.
   */
  snapshots(
    concertId: string,
    tokenIds: readonly string[],
    now: number,
    touch: boolean,
  ): Promise<Map<string, QueueSnapshot | null>>;

  /**
   * The state of one concert's line from which every position can be derived
   * (see {@link LineDigest}), with the departures since `after` (the
   * `departures` of the caller's previous digest; -1 for none). Costs the
   * store O(log n + departures since), independent of how many watch; a
   * caller too far behind, or new, gets the full set instead (`reset`).
   */
  lineDigest(concertId: string, after: number): Promise<LineDigest>;

  /**
   * Counts as activity for many waiters of one concert at once (batched
   * touches of the watch streams). Waiters whose idle window has already
   * passed are not brought back. Returns how many were touched.
   */
  touchMany(concertId: string, tokenIds: readonly string[], now: number): Promise<number>;

  /** Gives up a waiting place or an admission of a concert's line and revokes the token. */
  leave(concertId: string, tokenId: string, now: number): Promise<void>;

  /** Ends an admission after a payment; the token still authenticates until it expires. */
  complete(concertId: string, tokenId: string, now: number): Promise<void>;

  /**
   * One promotion step for a concert: expires ended admissions, evicts idle
   * waiters, then admits from the front of the line while slots are free.
   * Returns how many users were admitted.
   */
  promote(concertId: string, now: number): Promise<number>;

  /**
   * Closes a concert's line for good once its sale has ended: evicts up to a
   * batch of the remaining waiters (their records stay for the grace period,
   * so they learn why their token stopped working) and, once nobody waits,
   * takes the concert out of {@link concerts}, so the admitter stops visiting
   * it. Admissions run their course; a later `issue` opens the line again.
   * Returns whether the concert is out of the list (false: call again).
   *
   * Both stores implement it; it is optional only so that thin wrappers (in
   * tests) need not forward it.
   */
  retire(concertId: string, now: number): Promise<boolean>;

  /** The concerts whose line is open (have had a token and were not retired since). */
  concerts(): Promise<string[]>;

  /**
   * A counter per concert that changes whenever someone leaves the waiting
   * line (admitted, evicted or gone), i.e. whenever positions may have moved.
   * Lets watchers skip work when nothing changed.
   */
  versions(concertIds: readonly string[]): Promise<number[]>;

  /** Releases the store's resources (and persists it, where it can). */
  close(): Promise<void>;

  /**
   * Sets what the store enforces of one concert's sale settings (see
   * {@link LineSettings}). Refuses (returns false, changing nothing) to change
   * `opensAt` once the concert's lobby has been drawn; returns true otherwise.
   */
  configure(concertId: string, settings: LineSettings): Promise<boolean>;

  /** The record of the concert's opening draw, or null while none happened. */
  openingDraw(concertId: string): Promise<OpeningDrawRecord | null>;
}

/**
 * What the store enforces of a concert's sale settings. Before `opensAt`
 * (and until its lobby is drawn) issued tokens wait in a lobby; the first
 * store call at or after it (an issue or a promotion, from any instance)
 * draws the lobby into the line in a random order (see opening-draw.ts),
 * exactly once. Paused: nobody is admitted. Zero limits: the store's own.
 */
export interface LineSettings {
  /** The scheduled opening (ms since the epoch); 0 for none. */
  readonly opensAt: number;
  readonly paused: boolean;
  /** The most admitted at once; 0 for the store's limit. */
  readonly maxActive: number;
  /** How long an admission lasts (ms); 0 for the store's limit. */
  readonly admissionTtlMs: number;
  /** How long a seat hold lasts (ms), passed on in snapshots; 0 for the server's default. */
  readonly holdMs: number;
}

/** The store's record of a concert's opening draw. */
export interface OpeningDrawRecord {
  /** When it was drawn (ms since the epoch). */
  readonly drawnAt: number;
  /** The random seed, 64 lowercase hex digits. */
  readonly seed: string;
  /** The lobby's token ids in drawn order. */
  readonly tokenIds: readonly string[];
}
