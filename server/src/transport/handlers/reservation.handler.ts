import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  GetReservationRequest,
  HoldSeatRequest,
  ListReservationsRequest,
  ReleaseReservationRequest,
  ReservationService as ReservationApi,
} from "@stagedoor/sdk";
import type { ReservationsService } from "../../modules/reservations/index.js";
import { principalOf, readerOf, sessionOf } from "../context.js";
import { toReservation } from "../mappers/reservation.mapper.js";

/** Seat holds over Connect, gRPC and gRPC-Web. */
export class ReservationHandler implements ServiceImpl<typeof ReservationApi> {
  constructor(private readonly reservations: ReservationsService) {}

  async holdSeat(req: HoldSeatRequest, ctx: HandlerContext) {
    const session = sessionOf(ctx.values);
    const view = await this.reservations.hold(
      session.principal,
      { seatId: req.seatId, requestId: req.requestId },
      session.seat,
    );
    return { reservation: toReservation(view) };
  }

  async getReservation(req: GetReservationRequest, ctx: HandlerContext) {
    const view = await this.reservations.get(readerOf(ctx.values), req.reservationId);
    return { reservation: toReservation(view) };
  }

  async releaseReservation(req: ReleaseReservationRequest, ctx: HandlerContext) {
    const view = await this.reservations.release(principalOf(ctx.values), {
      reservationId: req.reservationId,
      requestId: req.requestId,
    });
    return { reservation: toReservation(view) };
  }

  async listReservations(req: ListReservationsRequest, ctx: HandlerContext) {
    const page = await this.reservations.list(readerOf(ctx.values), req.pageSize, req.pageToken);
    return {
      reservations: page.reservations.map(toReservation),
      nextPageToken: page.nextPageToken,
    };
  }
}
