import type { Concert, ConcertDate, Reservation } from "@stagedoor/sdk";
import type { MessageKey, MessageParams } from "./i18n.js";

/** The screens of the box office, in the order a fan meets them. */
export type ScreenName =
  | "join"
  | "queue"
  | "admitted"
  | "dates"
  | "seat-map"
  | "hold"
  | "wallet"
  | "pay"
  | "ticket"
  | "my-tickets";

/** The fan's place in line: who they are and the token that is their session. */
export interface FanSession {
  readonly userId: string;
  readonly token: string;
  readonly concertId: string;
}

/** A read-only session (TicketService.CreateSession): reads tickets and the wallet without queuing. */
export interface ReaderSession {
  readonly userId: string;
  readonly token: string;
}

/** A message for the fan above the current screen, kept as a key so it follows language changes. */
export interface Notice {
  readonly key: MessageKey;
  readonly params?: MessageParams;
  readonly tone: "error" | "info" | "success";
}

/** A seat hold the fan is paying for, with its deadline on this browser's clock. */
export interface CurrentHold {
  readonly reservation: Reservation;
  /** Epoch ms (local clock) when the hold ends. */
  readonly endsAt: number;
}

/**
 * Everything the screens share. Each screen renders from this alone, so a
 * language switch can redraw the current screen without losing anything.
 */
export interface AppState {
  screen: ScreenName;
  session: FanSession | undefined;
  concert: Concert | undefined;
  /** Epoch ms (local clock) when the admission ends; unset while waiting. */
  admissionEndsAt: number | undefined;
  date: ConcertDate | undefined;
  hold: CurrentHold | undefined;
  /** The confirmed reservation after a payment. */
  ticket: Reservation | undefined;
  notice: Notice | undefined;
  /**
   * The signed assertion the operator's site handed over (`AUTH_MODE=hmac`),
   * sent to take a place in line; kept in memory only.
   */
  assertion: string | undefined;
  /** The fan's read-only session while "My tickets" is open; kept in memory only. */
  reader: ReaderSession | undefined;
}
