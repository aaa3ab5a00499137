import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type TicketSchema, TicketState } from "@stagedoor/sdk";
import type { TicketState as DomainTicketState, TicketView } from "../../modules/tickets/index.js";

const STATES: Record<DomainTicketState, TicketState> = {
  VALID: TicketState.VALID,
  USED: TicketState.USED,
  REFUNDED: TicketState.REFUNDED,
};

/** Maps a ticket to its API message. */
export function toTicket(view: TicketView): MessageInitShape<typeof TicketSchema> {
  return {
    id: view.id,
    concertId: view.concertId,
    concertTitle: view.concertTitle,
    venue: view.venue,
    timeZone: view.timeZone,
    startTime: timestampFromDate(view.startsAt),
    localStartTime: view.localStart,
    concertDateId: view.concertDateId,
    seatId: view.seatId,
    section: view.section,
    row: view.row,
    seatNumber: view.seatNumber,
    grade: view.grade,
    price: view.price,
    paymentId: view.paymentId,
    paidTime: timestampFromDate(view.paidAt),
    state: STATES[view.state],
    useTime: view.usedAt ? timestampFromDate(view.usedAt) : undefined,
    entryCode: view.entryCode,
  };
}
