import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type ReservationSchema, ReservationState } from "@stagedoor/sdk";
import type { ReservationStatus, ReservationView } from "../../modules/reservations/index.js";

const STATES: Record<ReservationStatus, ReservationState> = {
  HELD: ReservationState.HELD,
  CONFIRMED: ReservationState.CONFIRMED,
  RELEASED: ReservationState.RELEASED,
  EXPIRED: ReservationState.EXPIRED,
  REFUNDED: ReservationState.REFUNDED,
};

/** Maps a reservation, in its state at read time, to its API message. */
export function toReservation(view: ReservationView): MessageInitShape<typeof ReservationSchema> {
  const r = view.reservation;
  return {
    id: r.id,
    userId: r.userId,
    concertId: r.concertId,
    concertDateId: r.concertDateId,
    date: r.date,
    seatId: r.seatId,
    seatNumber: r.seatNumber,
    price: r.price,
    state: STATES[view.state],
    holdExpireTime: timestampFromDate(r.heldUntil),
    createTime: timestampFromDate(r.createdAt),
    confirmTime: r.confirmedAt ? timestampFromDate(r.confirmedAt) : undefined,
  };
}
