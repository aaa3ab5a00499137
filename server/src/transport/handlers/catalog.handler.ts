import type { ServiceImpl } from "@connectrpc/connect";
import type {
  CatalogService as CatalogApi,
  GetSeatRequest,
  ListAvailableSeatsRequest,
  ListConcertDatesRequest,
  ListConcertsRequest,
  ListSeatsRequest,
} from "@stagedoor/sdk";
import type { CatalogService } from "../../modules/catalog/index.js";
import { toConcert, toConcertDate, toListedSeat, toSeat } from "../mappers/catalog.mapper.js";

/** The public catalog over Connect, gRPC and gRPC-Web. */
export class CatalogHandler implements ServiceImpl<typeof CatalogApi> {
  constructor(private readonly catalog: CatalogService) {}

  async listConcerts(req: ListConcertsRequest) {
    const page = await this.catalog.listConcerts(req.pageSize, req.pageToken);
    return { concerts: page.concerts.map(toConcert), nextPageToken: page.nextPageToken };
  }

  async listConcertDates(req: ListConcertDatesRequest) {
    const dates = await this.catalog.listBookableDates(req.concertId);
    return { dates: dates.map(toConcertDate) };
  }

  async listAvailableSeats(req: ListAvailableSeatsRequest) {
    const page = await this.catalog.listBookableSeats(
      req.concertDateId,
      req.pageSize,
      req.pageToken,
    );
    return {
      seats: page.seats.map(toListedSeat),
      nextPageToken: page.nextPageToken,
    };
  }

  async listSeats(req: ListSeatsRequest) {
    const page = await this.catalog.listSeats(req.concertDateId, req.pageSize, req.pageToken);
    return { seats: page.seats.map(toSeat), nextPageToken: page.nextPageToken };
  }

  async getSeat(req: GetSeatRequest) {
    return { seat: toSeat(await this.catalog.getSeat(req.seatId)) };
  }
}
