/** Seat holds and reservations. */
export { Reservation, ReservationSchema, type ReservationStatus } from "./reservation.entity.js";
export { ReservationRepository } from "./reservation.repository.js";
export { ReservationsService, type ReservationView } from "./reservations.service.js";
