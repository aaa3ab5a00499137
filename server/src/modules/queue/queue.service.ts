import type { Clock } from "../../shared/clock.js";
import { DomainError } from "../../shared/domain-error.js";
import { requireUserId, requireUuid } from "../../shared/validation.js";
import type { Principal, TokenCodec, UserVerifier } from "../identity/index.js";
import type { QueueLimits, QueueSnapshot, QueueStore, SeatRef } from "./queue-store.js";
import type { SeatGateEntry } from "./seat-gate.js";

/** Where a queue token stands, as callers see it. */
export type QueueTokenState = "lobby" | "waiting" | "admitted" | "completed";

/** A user's live place in a concert's line. */
export interface QueueStatusView {
  readonly concertId: string;
  readonly state: QueueTokenState;
  /** 1-based rank among waiting users; 0 once admitted. */
  readonly position: number;
  readonly waitingCount: number;
  readonly estimatedWaitMs: number;
  /** Waiting: when the place is lost unless refreshed. Admitted/completed: the admission's end. */
  readonly expireTime: Date;
  /** The scheduled opening while the lobby is not drawn; null otherwise. */
  readonly opensAt: Date | null;
  /** Whether an operator paused admission to the concert. */
  readonly admissionPaused: boolean;
}

/** An authenticated caller together with their live status. */
export interface Session {
  readonly principal: Principal;
  readonly status: QueueStatusView;
  /**
   * The gate's entry for the seat the caller asked to authenticate with
   * (null: the gate has none); undefined when no seat was asked about.
   */
  readonly seat?: SeatGateEntry | null;
  /**
   * A waiting caller's arrival number in the line (0 when not waiting): the
   * watch streams derive positions from it (see LineDigest).
   */
  readonly arrival: number;
}

/**
 * What the queue needs to know of the catalog: which concerts exist, so
 * nobody queues for a concert that doesn't, and whose sale has ended, so the
 * admitter stops visiting their lines.
 */
export interface ConcertDirectory {
  concertExists(concertId: string): Promise<boolean>;
  /**
   * Whether the concert's sale has ended: its last date has started (a
   * concert without dates has not ended).
   */
  saleEnded(concertId: string): Promise<boolean>;
}

/**
 * The waiting room's rules on top of a {@link QueueStore}: issuing tokens,
 * turning a presented token into a {@link Principal}, and ending admissions.
 * Store failures surface as `unavailable` with a retry hint, never as
 * internal errors.
 */
export class QueueService {
  /**
   * Admissions a payment ended while the store could not be reached, by token
   * id, with when that was: retried by the admitter until they land, so a
   * Redis blip right after a payment does not keep a slot taken until the
   * admission expires.
   */
  private readonly unfinished = new Map<string, { concertId: string; since: number }>();

  constructor(
    private readonly store: QueueStore,
    private readonly codec: TokenCodec,
    private readonly verifier: UserVerifier,
    private readonly concerts: ConcertDirectory,
    private readonly clock: Clock,
    private readonly limits: QueueLimits,
  ) {}

  /** Issues (or returns the live) token of a user for a concert. */
  async issueToken(input: {
    concertId: string;
    userId: string;
    assertion: string | undefined;
  }): Promise<{ token: string; status: QueueStatusView }> {
    const userId = requireUserId(input.userId);
    const concertId = requireUuid(input.concertId, "concert_id");
    const now = this.clock.now();
    this.verifier.verify(userId, input.assertion, now);
    if (!(await this.concerts.concertExists(concertId))) {
      throw new DomainError("not_found", "CONCERT_NOT_FOUND", "no concert has that id", {
        metadata: { concert_id: concertId },
      });
    }
    if (await this.saleEnded(concertId)) {
      throw new DomainError(
        "failed_precondition",
        "SALE_CLOSED",
        "the concert's last performance has started; its sale has ended",
        { metadata: { concert_id: concertId } },
      );
    }
    const tokenId = this.codec.newTokenId();
    const fresh = this.codec.tokenFor(concertId, tokenId);
    const result = await this.guard(() =>
      this.store.issue({
        concertId,
        userId,
        tokenId,
        tokenHash: this.codec.hash(fresh),
        now: now.getTime(),
      }),
    );
    const token = result.created ? fresh : this.codec.tokenFor(concertId, result.snapshot.tokenId);
    return { token, status: this.view(result.snapshot) };
  }

  /**
   * The user a token request proves it is for: `userId` when it is a valid
   * user id and `assertion` proves it (see `UserVerifier`; in trust mode any
   * valid id), else undefined. What token issue is rate limited per user by,
   * before anything is issued; `issueToken` checks the same again.
   */
  verifiedUser(userId: string, assertion: string | undefined): string | undefined {
    try {
      this.verifier.verify(requireUserId(userId), assertion, this.clock.now());
      return userId;
    } catch {
      return undefined;
    }
  }

  /**
   * Turns a presented token into the caller's session. Every authenticated call
   * counts as activity, so a waiting user who polls keeps their place. With
   * `seat`, the gate's entry for that seat is read in the same round trip
   * (what a seat hold needs) and returned in `session.seat`.
   */
  async authenticate(token: string | undefined, seat?: SeatRef): Promise<Session> {
    if (token === undefined || token === "") {
      throw new DomainError("unauthenticated", "TOKEN_MISSING", "a queue token is required");
    }
    const presented = this.codec.read(token);
    if (presented === null) {
      throw new DomainError("unauthenticated", "TOKEN_INVALID", "the queue token is not valid");
    }
    const now = this.clock.now().getTime();
    const { concertId, hash } = presented;
    if (seat === undefined) {
      return this.session(await this.guard(() => this.store.lookup(concertId, hash, now, true)));
    }
    const found = await this.guard(() =>
      this.store.lookupWithSeat(concertId, hash, now, true, seat),
    );
    return { ...this.session(found.snapshot), seat: found.seat };
  }

  /** The live status of an authenticated caller's token, read again from the store. */
  async refresh(principal: Principal, touch: boolean): Promise<Session | null> {
    const now = this.clock.now().getTime();
    const snapshots = await this.guard(() =>
      this.store.snapshots(principal.concertId, [principal.tokenId], now, touch),
    );
    const snapshot = snapshots.get(principal.tokenId) ?? null;
    return snapshot === null ? null : this.session(snapshot);
  }

  /** Gives up the caller's place or admission; the token stops working. */
  async leave(principal: Principal): Promise<void> {
    const now = this.clock.now().getTime();
    await this.guard(() => this.store.leave(principal.concertId, principal.tokenId, now));
  }

  /**
   * Ends the caller's admission after a payment, freeing the slot at once. If
   * the store cannot be reached it throws, and the admitter tries again on
   * each of its ticks until it lands or the admission has run out anyway.
   */
  async endAdmission(principal: Principal): Promise<void> {
    const now = this.clock.now().getTime();
    try {
      await this.guard(() => this.store.complete(principal.concertId, principal.tokenId, now));
    } catch (error) {
      if (!this.unfinished.has(principal.tokenId)) {
        this.unfinished.set(principal.tokenId, { concertId: principal.concertId, since: now });
      }
      throw error;
    }
  }

  /**
   * Runs one promotion step for every concert with an open line; returns how
   * many were admitted. A concert whose sale has ended is retired instead
   * (its waiters let go, batch by batch, then the concert leaves the list),
   * so the list holds only concerts still on sale.
   */
  async promoteAll(): Promise<number> {
    await this.finishAdmissions();
    const concerts = await this.store.concerts();
    let admitted = 0;
    for (const concertId of concerts) {
      const now = this.clock.now().getTime();
      if (await this.saleEnded(concertId)) {
        await this.store.retire(concertId, now);
      } else {
        admitted += await this.store.promote(concertId, now);
      }
    }
    return admitted;
  }

  /** Retries the admission ends that failed (see {@link unfinished}); throws while the store is down. */
  private async finishAdmissions(): Promise<void> {
    const now = this.clock.now().getTime();
    for (const [tokenId, { concertId, since }] of this.unfinished) {
      if (now - since < this.limits.admissionTtlMs) {
        await this.store.complete(concertId, tokenId, now);
      }
      this.unfinished.delete(tokenId);
    }
  }

  /**
   * Whether a concert's sale has ended, as the catalog says. If the catalog
   * cannot tell right now (its database is down), the line stays open:
   * issuing and admitting need only the store, and the next call asks again.
   */
  private async saleEnded(concertId: string): Promise<boolean> {
    try {
      return await this.concerts.saleEnded(concertId);
    } catch {
      return false;
    }
  }

  /** Turns a store snapshot into a session, or throws why the token no longer works. */
  session(snapshot: QueueSnapshot | null): Session {
    if (snapshot === null || snapshot.state === "left" || snapshot.state === "revoked") {
      throw new DomainError("unauthenticated", "TOKEN_INVALID", "the queue token is not valid");
    }
    if (snapshot.state === "expired" || snapshot.state === "evicted") {
      const message =
        snapshot.state === "evicted"
          ? "the queue token lost its place after staying idle"
          : "the queue token has expired";
      throw new DomainError("unauthenticated", "TOKEN_EXPIRED", message);
    }
    const principal: Principal = {
      userId: snapshot.userId,
      concertId: snapshot.concertId,
      tokenId: snapshot.tokenId,
      state: snapshot.state,
      admissionExpiresAt:
        snapshot.admissionExpiresAt > 0 ? new Date(snapshot.admissionExpiresAt) : null,
      holdMs: snapshot.holdMs,
    };
    return { principal, status: this.view(snapshot), arrival: snapshot.arrival };
  }

  /**
   * A waiter's status from facts of the line (what the watch streams derive
   * from a line digest instead of a snapshot of each token); the same rule as
   * a snapshot's status.
   */
  waitingStatus(
    concertId: string,
    line: {
      position: number;
      waitingCount: number;
      averageAdmissionMs: number;
      lastSeenAt: number;
      paused: boolean;
    },
  ): QueueStatusView {
    // Slots free at maxActive per average admission, so the wait grows with
    // the position and shrinks with the number of slots.
    const estimatedWaitMs = Math.ceil(
      (line.position * line.averageAdmissionMs) / this.limits.maxActive,
    );
    return {
      concertId,
      state: "waiting",
      position: line.position,
      waitingCount: line.waitingCount,
      estimatedWaitMs,
      expireTime: new Date(line.lastSeenAt + this.limits.idleMs),
      opensAt: null,
      admissionPaused: line.paused,
    };
  }

  /** When a waiter whose place expires at `expireTime` was last active. */
  lastSeenAt(expireTime: Date): number {
    return expireTime.getTime() - this.limits.idleMs;
  }

  private view(snapshot: QueueSnapshot): QueueStatusView {
    const state: QueueTokenState =
      snapshot.state === "waiting" || snapshot.state === "lobby" || snapshot.state === "admitted"
        ? snapshot.state
        : "completed";
    if (state === "waiting") return this.waitingStatus(snapshot.concertId, snapshot);
    if (state === "lobby") {
      // Nobody's place is known before the draw, and nobody idles out of the
      // lobby: the place is kept until an idle window after the opening.
      const opensAt = snapshot.opensAt > 0 ? snapshot.opensAt : this.clock.now().getTime();
      return {
        concertId: snapshot.concertId,
        state,
        position: 0,
        waitingCount: snapshot.waitingCount,
        estimatedWaitMs: 0,
        expireTime: new Date(opensAt + this.limits.idleMs),
        opensAt: snapshot.opensAt > 0 ? new Date(snapshot.opensAt) : null,
        admissionPaused: snapshot.paused,
      };
    }
    return {
      concertId: snapshot.concertId,
      state,
      position: 0,
      waitingCount: snapshot.waitingCount,
      estimatedWaitMs: 0,
      expireTime: new Date(snapshot.admissionExpiresAt),
      opensAt: null,
      admissionPaused: snapshot.paused,
    };
  }

  private async guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (error instanceof DomainError) throw error;
      throw new DomainError(
        "unavailable",
        "QUEUE_UNAVAILABLE",
        "the waiting room is unavailable; retry shortly",
        { retryAfterMs: 1000, cause: error },
      );
    }
  }
}
