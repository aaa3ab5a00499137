import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type ConcertDateSchema,
  type ConcertSchema,
  type SeatSchema,
  SeatState,
} from "@stagedoor/sdk";
import type {
  Concert,
  DateAvailability,
  SeatState as DomainSeatState,
  SeatFacts,
  SeatView,
} from "../../modules/catalog/index.js";

const SEAT_STATES: Record<DomainSeatState, SeatState> = {
  AVAILABLE: SeatState.AVAILABLE,
  HELD: SeatState.HELD,
  SOLD: SeatState.SOLD,
};

/** Maps a concert to its API message. */
export function toConcert(concert: Concert): MessageInitShape<typeof ConcertSchema> {
  return {
    id: concert.id,
    title: concert.title,
    venue: concert.venue,
    timeZone: concert.timeZone,
  };
}

/** Maps a date and its availability to its API message. */
export function toConcertDate(item: DateAvailability): MessageInitShape<typeof ConcertDateSchema> {
  return {
    id: item.date.id,
    concertId: item.date.concertId,
    date: item.date.date,
    startTime: timestampFromDate(item.date.startsAt),
    availableSeatCount: item.availableSeats,
    totalSeatCount: item.date.totalSeats,
    salesCloseTime: timestampFromDate(item.date.salesEndAt),
  };
}

/** Maps a bookable seat of a listing to its API message. */
export function toListedSeat(seat: SeatFacts): MessageInitShape<typeof SeatSchema> {
  return {
    id: seat.id,
    concertDateId: seat.concertDateId,
    number: seat.number,
    grade: seat.grade,
    price: seat.price,
    state: SeatState.AVAILABLE,
  };
}

/** Maps one seat with its state to its API message. */
export function toSeat(seat: SeatView): MessageInitShape<typeof SeatSchema> {
  return {
    id: seat.id,
    concertDateId: seat.concertDateId,
    number: seat.number,
    grade: seat.grade,
    price: seat.price,
    state: SEAT_STATES[seat.state],
  };
}
