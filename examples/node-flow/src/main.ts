// The whole purchase through @stagedoor/sdk: take a place in line, wait for
// admission (printing each position), pick a date and a seat, hold it, top
// up exactly the price, pay, and read the confirmed reservation back.
// Run: `npm start` (STAGEDOOR_URL picks the server, STAGEDOOR_PROTOCOL the protocol).
import { randomUUID } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  createStagedoorClient,
  errorReason,
  payReservation,
  QueueTokenState,
  type Reservation,
  ReservationState,
  rechargeWallet,
  waitForAdmission,
} from "@stagedoor/sdk";
import { createNodeTransport, type NodeProtocol } from "@stagedoor/sdk/node";

const baseUrl = process.env.STAGEDOOR_URL || "http://127.0.0.1:8080";
const PROTOCOLS: readonly string[] = ["connect", "grpc", "grpc-web"] satisfies NodeProtocol[];
const protocol = (process.env.STAGEDOOR_PROTOCOL || "connect") as NodeProtocol;
const userId = process.env.STAGEDOOR_USER || `fan-${randomUUID().slice(0, 8)}`;

/** Whole won with thousands separators: money is an integer all the way. */
const won = (amount: bigint) => `₩${amount.toLocaleString("en-US")}`;

async function main(): Promise<void> {
  if (!PROTOCOLS.includes(protocol)) {
    throw new Error(`STAGEDOOR_PROTOCOL must be one of ${PROTOCOLS.join(", ")}, got ${protocol}`);
  }
  // One client for the whole flow. The token is read on every call: none
  // before it is issued, then `Authorization: Bearer <token>` on each call.
  let token: string | undefined;
  const stagedoor = createStagedoorClient({
    baseUrl,
    transport: (options) => createNodeTransport({ ...options, protocol }),
    token: () => token,
  });
  console.log(`node-flow: Stagedoor at ${baseUrl} over ${protocol}, as ${userId}`);
  const { concerts } = await stagedoor.catalog.listConcerts({});
  const concert = concerts[0];
  if (!concert) throw new Error("the server has no concert");
  console.log(`concert "${concert.title}" at ${concert.venue}`);

  const issued = await stagedoor.queue.issueQueueToken({ concertId: concert.id, userId });
  token = issued.token;
  const waiting = issued.status?.state === QueueTokenState.WAITING;
  console.log(
    waiting
      ? `token issued: waiting at position ${issued.status?.position} of ${issued.status?.waitingCount}`
      : "token issued: admitted at once",
  );
  const admission = await waitForAdmission(stagedoor, {
    onUpdate: (update) => {
      if (update.position === 0) return;
      const seconds = Math.ceil(update.estimatedWaitMs / 1000);
      console.log(
        `queue: position ${update.position} of ${update.waitingCount} waiting, about ${seconds} s to go`,
      );
    },
  });
  console.log(`queue: admitted until ${admission.expireTime.toISOString()}`);

  const { dates } = await stagedoor.catalog.listConcertDates({ concertId: concert.id });
  console.log(
    `dates: ${dates.map((d) => `${d.date} (${d.availableSeatCount}/${d.totalSeatCount} free)`).join(", ")}`,
  );
  // The first date with a free seat: an earlier run (or a rush) may have sold the first out.
  const date = dates.find((d) => d.availableSeatCount > 0);
  if (!date) throw new Error("every date is sold out");
  const { seats } = await stagedoor.catalog.listAvailableSeats({ concertDateId: date.id });
  console.log(`seats on ${date.date}: ${seats.length} available`);

  let reservation: Reservation | undefined;
  for (const seat of seats) {
    try {
      ({ reservation } = await stagedoor.reservation.holdSeat({
        seatId: seat.id,
        requestId: randomUUID(),
      }));
      break;
    } catch (error) {
      // Someone else took it since the listing: try the next one.
      if (errorReason(error) !== "SEAT_UNAVAILABLE") throw error;
      console.log(`seat ${seat.number} was just taken, trying the next one`);
    }
  }
  if (!reservation) throw new Error(`every seat on ${date.date} was taken meanwhile`);
  const heldUntil = reservation.holdExpireTime ? timestampDate(reservation.holdExpireTime) : null;
  console.log(
    `held seat ${reservation.seatNumber} (${won(reservation.price)}) until ${heldUntil?.toISOString()}: reservation ${reservation.id}`,
  );

  // Both helpers pick a request id once and reuse it on retry: never charged twice.
  const recharged = await rechargeWallet(stagedoor, { amount: reservation.price });
  console.log(
    `recharged ${won(reservation.price)}: balance ${won(recharged.wallet?.balance ?? 0n)}`,
  );
  const paid = await payReservation(stagedoor, {
    reservationId: reservation.id,
    amount: reservation.price,
  });
  console.log(`paid ${won(paid.payment?.amount ?? 0n)}: payment ${paid.payment?.id}`);

  const { reservation: confirmed } = await stagedoor.reservation.getReservation({
    reservationId: reservation.id,
  });
  if (confirmed?.state !== ReservationState.CONFIRMED) {
    throw new Error(`reservation ${reservation.id} is ${confirmed?.state}, not confirmed`);
  }
  console.log(
    `reservation ${confirmed.id} ${ReservationState[confirmed.state]}, seat ${confirmed.seatNumber} on ${confirmed.date}, paid ${won(confirmed.price)}`,
  );
}

try {
  await main();
} catch (error) {
  // A Stagedoor error names its reason (e.g. TOKEN_NOT_ADMITTED); anything else its code.
  const reason =
    errorReason(error) ?? (error instanceof ConnectError ? Code[error.code] : undefined);
  const message = error instanceof Error ? error.message : String(error);
  console.log(`node-flow failed: ${reason ? `${reason}: ` : ""}${message}`);
  process.exitCode = 1;
}
