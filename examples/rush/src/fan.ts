import { randomInt, randomUUID } from "node:crypto";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import {
  createStagedoorClient,
  errorReason,
  payReservation,
  QueueTokenState,
  type Reservation,
  rechargeWallet,
  type StagedoorClient,
  waitForAdmission,
} from "@stagedoor/sdk";
import type { RushTally } from "./rush-tally.js";
import { seatsOfDate } from "./seat-listing.js";

/** Where the fans go and how hard they try. */
export interface FanPlan {
  readonly transport: Transport;
  readonly concertId: string;
  readonly concertDateId: string;
  readonly holdAttempts: number;
  readonly tally: RushTally;
}

/** A fan who bought a seat, with what the checks need to verify the sale. */
export interface Ticket {
  readonly userId: string;
  /** The fan's queue token: still good for reads after paying. */
  readonly token: string;
  readonly reservationId: string;
  readonly seatId: string;
  readonly seatNumber: number;
  readonly recharged: bigint;
  readonly paid: bigint;
}

/** `SEAT_UNAVAILABLE` for our errors, the status code (`deadline_exceeded`) for the rest. */
function reasonOf(error: unknown): string {
  const reason = errorReason(error);
  if (reason !== undefined) return reason;
  const code = ConnectError.from(error).code;
  return (Code[code] ?? String(code))
    .replace(/[A-Z]/g, (c, at) => (at ? "_" : "") + c)
    .toLowerCase();
}

/**
 * One fan's whole evening: take a place in line, watch it go down until
 * admitted, pick random free seats until a hold sticks (another fan may take
 * the same seat first), top up exactly the price, pay. A fan who finds no
 * seat, gives up or fails leaves the line at once, and paying ends the
 * admission, so the next fans in line get in. Never throws: every ending is
 * counted in the tally, and a sale is returned for the checks.
 */
export async function runFan(plan: FanPlan, userId: string): Promise<Ticket | undefined> {
  const { tally } = plan;
  const anonymous = createStagedoorClient(plan.transport);
  let fan: StagedoorClient | undefined;
  let held: Reservation | undefined;
  let inLine = false;
  try {
    const issued = await anonymous.queue.issueQueueToken({ concertId: plan.concertId, userId });
    const token = issued.token;
    fan = createStagedoorClient({ transport: plan.transport, token });
    const waited = issued.status?.state === QueueTokenState.WAITING;
    tally.joinedLine(waited ? Number(issued.status?.position ?? 0) : 0);
    if (waited) {
      inLine = true;
      await waitForAdmission(fan, { onUpdate: (update) => tally.sawPosition(update.position) });
      inLine = false;
      tally.admittedFromLine();
    }

    for (let attempt = 1; attempt <= plan.holdAttempts && !held; attempt += 1) {
      const free = await seatsOfDate(fan, plan.concertDateId, "available");
      if (free.length === 0) {
        await fan.queue.leaveQueue({});
        tally.finished("sold-out");
        return undefined;
      }
      // A random pick, like a crowd of fans, so some of them want the same seat.
      const seat = free[randomInt(free.length)];
      if (seat === undefined) continue;
      try {
        const { reservation } = await fan.reservation.holdSeat({
          seatId: seat.id,
          requestId: randomUUID(),
        });
        held = reservation;
      } catch (error) {
        if (errorReason(error) !== "SEAT_UNAVAILABLE") throw error;
        tally.collided();
      }
    }
    if (!held) {
      await fan.queue.leaveQueue({});
      tally.finished("gave-up");
      return undefined;
    }

    const recharged = await rechargeWallet(fan, { amount: held.price });
    const paid = await payReservation(fan, { reservationId: held.id, amount: held.price });
    tally.finished("sold");
    return {
      userId,
      token,
      reservationId: held.id,
      seatId: held.seatId,
      seatNumber: held.seatNumber,
      recharged: recharged.entry?.amount ?? held.price,
      paid: paid.payment?.amount ?? held.price,
    };
  } catch (error) {
    if (inLine) tally.leftLine();
    tally.finished("error", reasonOf(error));
    // Give the seat and the admission back so the rest of the crowd can use them.
    if (fan && held) {
      await fan.reservation
        .releaseReservation({ reservationId: held.id, requestId: randomUUID() })
        .catch(() => undefined);
    }
    await fan?.queue.leaveQueue({}).catch(() => undefined);
    return undefined;
  }
}
