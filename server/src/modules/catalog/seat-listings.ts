import type { Logger } from "../../logger.js";
import type { Clock } from "../../shared/clock.js";
import type { DateChanges, SeatGate } from "../queue/index.js";
import { DateListing, type SeatStateRow } from "./date-listing.js";
import type { DateSeats } from "./date-seats.js";

/** How the listings reach the database: the seats' facts and a snapshot of their states. */
export interface ListingSource {
  seats(concertDateId: string): Promise<DateSeats>;
  states(concertDateId: string): Promise<SeatStateRow[]>;
}

/** A date as the listings need it: its id, and its concert (where its gate entries live). */
export interface ListedDate {
  readonly id: string;
  readonly concertId: string;
}

/**
 * A snapshot older than this is rebuilt in the background (while the current
 * one, kept fresh by the change log, goes on serving), so a change whose gate
 * write was lost (a crash between commit and write) shows within this time.
 */
const REBUILD_AFTER_MS = 30_000;

/**
 * Per-process listings of concert dates, each built once from the database
 * and kept fresh from the seat gate's change log.
 *
 * Freshness: every call reads the gate's log first (one round trip for all
 * the dates asked), and applies what changed since the listing's version. The
 * services write the gate after a hold, payment or release commits and before
 * they answer, so once anyone has seen a seat held or sold, no later listing
 * shows it free. A listing is rebuilt from the database when the log has
 * moved on too far, or the gate started a new epoch; the version is read
 * before the snapshot is taken, so a change committed in between is applied
 * on the next call. When the gate is unreachable, listings come straight from
 * the database, uncached.
 */
export class SeatListings {
  private readonly cache = new Map<string, DateListing>();
  private readonly building = new Map<string, Promise<DateListing>>();
  private gateDown = false;

  constructor(
    private readonly gate: SeatGate,
    private readonly source: ListingSource,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Fresh listings of the given dates, in order. */
  async get(dates: readonly ListedDate[]): Promise<DateListing[]> {
    const dateIds = dates.map((date) => date.id);
    let logs: DateChanges[];
    try {
      logs = await this.gate.changesSince(
        dates.map((date) => ({
          concertId: date.concertId,
          dateId: date.id,
          afterVersion: this.cache.get(date.id)?.version ?? 0,
        })),
      );
      if (this.gateDown) this.logger.info("seat gate reachable again; listings cached again");
      this.gateDown = false;
    } catch (error) {
      if (!this.gateDown) {
        this.logger.warn({ err: error }, "seat gate unreachable; listing from the database");
      }
      this.gateDown = true;
      for (const dateId of dateIds) this.cache.delete(dateId);
      return Promise.all(dateIds.map((dateId) => this.snapshot(dateId, "", 0)));
    }
    return Promise.all(dates.map((date, i) => this.fresh(date, logs[i])));
  }

  /** Forgets one date's listing (the next call rebuilds it from the database). */
  forget(dateId: string): void {
    this.cache.delete(dateId);
  }

  /** Forgets every listing (the next call rebuilds from the database). */
  clear(): void {
    this.cache.clear();
  }

  private async fresh(date: ListedDate, log: DateChanges | undefined): Promise<DateListing> {
    const dateId = date.id;
    if (log === undefined) throw new Error("the seat gate answered fewer dates than asked");
    let listing = this.cache.get(dateId);
    // A listing without seats is of a date waiting for its seat map, which
    // may have been imported on another instance since: rebuild it.
    if (
      listing !== undefined &&
      listing.epoch === log.epoch &&
      log.changes !== null &&
      listing.seats.ids.length > 0
    ) {
      for (const change of log.changes) listing.apply(change);
      listing.version = Math.max(listing.version, log.version);
      if (this.clock.now().getTime() - listing.builtAt > REBUILD_AFTER_MS) {
        void this.rebuild(dateId, log.epoch, log.version).catch((error: unknown) =>
          this.logger.warn({ err: error, dateId }, "rebuilding a seat listing failed"),
        );
      }
      return listing;
    }
    listing = await this.rebuild(dateId, log.epoch, log.version);
    if (listing.version < log.version || listing.epoch !== log.epoch) {
      // A rebuild already in flight started before the change this caller
      // saw in the log; catch up so the caller never gets an older listing.
      return (await this.get([date]))[0] ?? listing;
    }
    return listing;
  }

  /** Builds a date's listing at (epoch, version), once at a time per date, and caches it. */
  private rebuild(dateId: string, epoch: string, version: number): Promise<DateListing> {
    const inFlight = this.building.get(dateId);
    if (inFlight !== undefined) return inFlight;
    const building = this.snapshot(dateId, epoch, version)
      .then((listing) => {
        const cached = this.cache.get(dateId);
        // Keep a listing that got further while this one was being built.
        if (cached === undefined || cached.epoch !== epoch || cached.version <= version) {
          this.cache.set(dateId, listing);
        }
        return listing;
      })
      .finally(() => this.building.delete(dateId));
    this.building.set(dateId, building);
    return building;
  }

  private async snapshot(dateId: string, epoch: string, version: number): Promise<DateListing> {
    const seats = await this.source.seats(dateId);
    const builtAt = this.clock.now().getTime();
    const rows = await this.source.states(dateId);
    return new DateListing(seats, epoch, version, builtAt, rows);
  }
}
