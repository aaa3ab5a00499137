import { createHmac, randomUUID } from "node:crypto";
import type { Transport } from "@connectrpc/connect";
import {
  createStagedoorClient,
  errorReason,
  type IssueQueueTokenResponse,
  payReservation,
  QueueTokenState,
  type Reservation,
  rechargeWallet,
  type Seat,
  type StagedoorClient,
  waitForAdmission,
} from "@stagedoor/sdk";
import type { FanIdentityMode } from "./settings.js";

/** Prints one line of the transcript (with the time since the start). */
export type Log = (line: string) => void;

/** Whole won with thousands separators: money is an integer all the way. */
export const won = (amount: bigint) => `₩${amount.toLocaleString("en-US")}`;

/** How fans take their tokens: as given (`trust`) or with an assertion a backend signed (`hmac`). */
export interface FanIdentity {
  readonly mode: FanIdentityMode;
  readonly hmacSecret: string | undefined;
}

/**
 * The bearer credential of IssueQueueToken for `userId`: none in `trust`
 * mode; in `hmac` mode the assertion the operator's backend signs once it
 * has signed the fan in, `v1.<base64url(user)>.<expiry>.<base64url(mac)>`
 * (see the server's README), valid for five minutes.
 */
function credentialFor(identity: FanIdentity, userId: string): string | undefined {
  if (identity.mode === "trust" || identity.hmacSecret === undefined) return undefined;
  const signed = `v1.${Buffer.from(userId).toString("base64url")}.${Math.floor(Date.now() / 1000) + 300}`;
  const mac = createHmac("sha256", identity.hmacSecret).update(signed).digest("base64url");
  return `${signed}.${mac}`;
}

/** What one fan ended with. */
export interface Purchase {
  readonly fan: string;
  readonly token: string;
  readonly reservation: Reservation;
  readonly paymentId: string;
}

/** Where the fans go and what the script wants to hear from them. */
export interface Venue {
  readonly transport: Transport;
  readonly identity: FanIdentity;
  readonly concertId: string;
  readonly concertDateId: string;
  readonly log: Log;
  /** Called after each payment, with the number of tickets sold so far. */
  readonly onSold: (sold: number) => void;
}

/** The count of tickets the script's fans bought (shared by every fan of a run). */
export class SoldCounter {
  count = 0;
}

/**
 * One fan of the crowd: takes a token, waits (in the lobby, then in line),
 * and once admitted tries their favourite seat, then the first free one
 * until a hold sticks, tops up exactly the price and pays.
 */
export class Fan {
  client: StagedoorClient;
  token = "";
  /** The first place in line the fan saw after the draw (or on arrival). */
  firstPlace: number | undefined;

  constructor(
    readonly name: string,
    private readonly venue: Venue,
    private readonly sold: SoldCounter,
  ) {
    this.client = createStagedoorClient({
      transport: venue.transport,
      token: () => credentialFor(venue.identity, name),
    });
  }

  /** IssueQueueToken; from then on the fan's calls carry the queue token. */
  async arrive(): Promise<IssueQueueTokenResponse> {
    const issued = await this.client.queue.issueQueueToken({
      concertId: this.venue.concertId,
      userId: this.name,
    });
    this.token = issued.token;
    this.client = createStagedoorClient({ transport: this.venue.transport, token: issued.token });
    return issued;
  }

  /**
   * Waits for admission and buys a seat: `favourite` first (what the fan
   * picked on the seat map before the opening), then the first free seat of
   * a fresh listing after each `SEAT_UNAVAILABLE`. Resolves undefined when
   * nothing is left.
   */
  async buy(favourite: Seat | undefined): Promise<Purchase | undefined> {
    const { log } = this.venue;
    await waitForAdmission(this.client, {
      onUpdate: (update) => {
        const state = update.status.state;
        if (this.firstPlace !== undefined || state === QueueTokenState.LOBBY) return;
        this.firstPlace = update.position;
        if (update.position > 0) {
          log(
            `${this.name}: in line at position ${update.position} of ${update.waitingCount}${update.admissionPaused ? " (admission paused)" : ""}`,
          );
        }
      },
    });
    log(`${this.name}: admitted`);
    let candidate = favourite;
    let held: Reservation | undefined;
    for (let attempt = 1; attempt <= 5 && !held; attempt += 1) {
      if (candidate === undefined) {
        const { seats } = await this.client.catalog.listAvailableSeats({
          concertDateId: this.venue.concertDateId,
        });
        candidate = seats[0];
      }
      if (candidate === undefined) break;
      try {
        ({ reservation: held } = await this.client.reservation.holdSeat({
          seatId: candidate.id,
          requestId: randomUUID(),
        }));
      } catch (error) {
        if (errorReason(error) !== "SEAT_UNAVAILABLE") throw error;
        log(`${this.name}: seat ${candidate.number} is taken (SEAT_UNAVAILABLE)`);
        candidate = undefined;
      }
    }
    if (!held) {
      await this.client.queue.leaveQueue({});
      log(`${this.name}: found no free seat and left`);
      return undefined;
    }
    log(`${this.name}: holds seat ${held.seatNumber} (${won(held.price)})`);
    await rechargeWallet(this.client, { amount: held.price });
    const paid = await payReservation(this.client, { reservationId: held.id, amount: held.price });
    this.sold.count += 1;
    log(
      `${this.name}: recharged and paid ${won(held.price)} for seat ${held.seatNumber} (ticket ${this.sold.count})`,
    );
    this.venue.onSold(this.sold.count);
    return {
      fan: this.name,
      token: this.token,
      reservation: paid.reservation ?? held,
      paymentId: paid.payment?.id ?? "",
    };
  }
}
