/** The catalog: concerts, their dates and seats, and the seat row lock. */
export {
  CatalogService,
  type DateAvailability,
  MAX_SEAT_PAGE,
  type SeatView,
} from "./catalog.service.js";
export { CatalogWrites } from "./catalog-writes.js";
export { Concert, ConcertSchema } from "./concert.entity.js";
export { ConcertDate, ConcertDateSchema } from "./concert-date.entity.js";
export type { Availability, AvailabilityBlock } from "./date-listing.js";
export type { SeatFacts } from "./date-seats.js";
export { seedDemoCatalog } from "./demo-catalog.js";
export { Seat, SeatSchema, type SeatState, type SeatStatus, seatStateAt } from "./seat.entity.js";
export {
  type LockedSeat,
  SEAT_COLUMNS,
  type SeatLockRow,
  SeatRepository,
  seatFromRow,
} from "./seat.repository.js";
export {
  MAX_SEATS,
  type ParsedSeatMap,
  parseSeatMap,
  type SeatMapFormat,
  type SeatMapProblem,
  type SeatMapRow,
} from "./seat-map.js";
