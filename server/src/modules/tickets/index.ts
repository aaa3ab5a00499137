/** Tickets fans can come back to: read-only sessions, signed entry codes, checks at the door. */
export { ENTRY_CODE_LENGTH, EntryCodes } from "./entry-code.js";
export { localIsoTime } from "./local-time.js";
export {
  isSessionToken,
  READ_SESSION_TTL_MS,
  ReadSessions,
  sessionReadOnly,
} from "./read-sessions.js";
export { type TicketRecord, TicketRepository, type TicketStatus } from "./ticket.repository.js";
export {
  type TicketState,
  TicketsService,
  type TicketView,
  type VerifiedTicket,
} from "./tickets.service.js";
