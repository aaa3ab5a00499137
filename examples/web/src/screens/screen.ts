import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Concert, ConcertDate, Reservation, StagedoorClient } from "@stagedoor/sdk";
import type { ActionIds } from "../action-ids.js";
import type { AppState, FanSession, Notice, ReaderSession, ScreenName } from "../app-state.js";
import { type Child, h } from "../dom.js";
import type { FanError } from "../fan-error.js";
import type { Lang, MessageKey, MessageParams } from "../i18n.js";
import type { PageSettings } from "../page-settings.js";

/** One rendered screen. */
export interface Screen {
  readonly root: HTMLElement;
  /** Gets the focus when the screen appears, so screen readers start here. */
  readonly heading: HTMLElement;
}

/**
 * What a screen may use and do. The app hands a fresh context to every
 * render; its `signal` aborts when the screen goes away, which cancels the
 * screen's calls, streams and timers.
 */
export interface ScreenContext {
  readonly stagedoor: StagedoorClient;
  readonly settings: PageSettings;
  readonly state: Readonly<AppState>;
  readonly lang: Lang;
  readonly actions: ActionIds;
  readonly signal: AbortSignal;
  t(key: MessageKey, params?: MessageParams): string;
  /** Whole won as "₩150,000". */
  money(amount: bigint): string;
  /** A server timestamp on this browser's clock (corrected for the skew seen so far). */
  localMs(timestamp: Timestamp | undefined): number;
  /** Registers cleanup for when the screen goes away. */
  onDispose(cleanup: () => void): void;
  go(screen: ScreenName, notice?: Notice): void;
  notify(notice: Notice | undefined): void;
  /** Tells the fan a call is being retried. */
  retrying(): void;
  /**
   * Handles a failed call the common way: a dead session sends the fan back
   * to join, anything else becomes a notice. Returns the reading so screens
   * can add their own step (refresh the map, go to the wallet).
   */
  fail(error: unknown): FanError;
  /** Runs screen work, ignoring the cancellation when the screen goes away and reporting other failures. */
  task(work: () => Promise<void>): void;
  startSession(session: FanSession, concert: Concert): void;
  /** Forgets an assertion the server refused (expired, say) and shows the join screen again. */
  dropAssertion(notice: Notice): void;
  endSession(notice?: Notice): void;
  admit(expireTimeMs: number): void;
  chooseDate(date: ConcertDate): void;
  /** Records the fan's current hold; `receivedAt` (local ms) is set when it comes from HoldSeat just now. */
  setHold(reservation: Reservation | undefined, receivedAt?: number): void;
  confirm(ticket: Reservation): void;
  /** Shows "My tickets" with a read-only session (no queue token, no place in line). */
  openTickets(reader: ReaderSession): void;
}

/** Draws a screen from the shared state. */
export type ScreenRenderer = (ctx: ScreenContext) => Screen;

/** The id of every screen's heading, which labels the screen's section. */
export const SCREEN_HEADING_ID = "screen-heading";

/**
 * The screen's one `h1`, focusable from script (tabindex -1) but not in the
 * tab order, so moving focus to it announces the new screen.
 */
export function screenHeading(text: string): HTMLHeadingElement {
  return h(
    "h1",
    {
      id: SCREEN_HEADING_ID,
      class: "screen-heading",
      tabindex: "-1",
      "data-testid": "screen-heading",
    },
    text,
  );
}

/** A screen's outer element, labelled by its heading and named for styles and tests. */
export function screenSection(name: ScreenName, ...children: Child[]): HTMLElement {
  return h(
    "section",
    { class: `screen screen-${name}`, "data-screen": name, "aria-labelledby": SCREEN_HEADING_ID },
    ...children,
  );
}
