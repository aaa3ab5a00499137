/** Seat holds and reservations. */
export { Reservation, ReservationSchema, type ReservationStatus } from "./reservation.entity.js";
export {
  RESERVATION_COLUMNS,
  ReservationRepository,
  type ReservationRow,
  reservationFromRow,
} from "./reservation.repository.js";
export { ReservationsService, type ReservationView } from "./reservations.service.js";
