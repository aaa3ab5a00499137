import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Concert, ConcertDate, Reservation } from "@stagedoor/sdk";
import { ActionIds } from "./action-ids.js";
import type { ApiClient } from "./api-client.js";
import type { AppState, FanSession, Notice, ScreenName } from "./app-state.js";
import { browserStorage } from "./browser-storage.js";
import { type CountdownView, createCountdown } from "./countdown.js";
import { h } from "./dom.js";
import { describeError, type FanError } from "./fan-error.js";
import { formatWon } from "./format.js";
import {
  type Lang,
  type MessageKey,
  type MessageParams,
  preferredLang,
  translate,
} from "./i18n.js";
import type { PageSettings } from "./page-settings.js";
import { renderAdmittedScreen } from "./screens/admitted-screen.js";
import { renderDatesScreen } from "./screens/dates-screen.js";
import { renderHoldScreen } from "./screens/hold-screen.js";
import { renderJoinScreen } from "./screens/join-screen.js";
import { renderMyTicketsScreen } from "./screens/my-tickets-screen.js";
import { renderPayScreen } from "./screens/pay-screen.js";
import { renderQueueScreen } from "./screens/queue-screen.js";
import type { ScreenContext, ScreenRenderer } from "./screens/screen.js";
import { renderSeatMapScreen } from "./screens/seat-map-screen.js";
import { renderTicketScreen } from "./screens/ticket-screen.js";
import { renderWalletScreen } from "./screens/wallet-screen.js";

const SCREENS: Readonly<Record<ScreenName, ScreenRenderer>> = {
  join: renderJoinScreen,
  queue: renderQueueScreen,
  admitted: renderAdmittedScreen,
  dates: renderDatesScreen,
  "seat-map": renderSeatMapScreen,
  hold: renderHoldScreen,
  wallet: renderWalletScreen,
  pay: renderPayScreen,
  ticket: renderTicketScreen,
  "my-tickets": renderMyTicketsScreen,
};

/** Screens that only make sense while the fan holds a seat. */
const HOLD_SCREENS: ReadonlySet<ScreenName> = new Set(["hold", "wallet", "pay"]);
/** Screens where the header shows the admission's countdown. */
const TIMED_SCREENS: ReadonlySet<ScreenName> = new Set([
  "dates",
  "seat-map",
  "hold",
  "wallet",
  "pay",
]);
/** Clock differences below this are network latency, not a wrong clock. */
const SKEW_THRESHOLD_MS = 1_000;

/** The screen on display and what to undo when it goes. */
interface Mounted {
  readonly controller: AbortController;
  readonly cleanups: (() => void)[];
}

/**
 * The box office's state machine. It owns the shared state, draws one screen
 * at a time into the page (moving focus to the new screen's heading), keeps
 * the two deadlines that outlive screens (the admission and the seat hold)
 * and turns failures into what the fan sees: a notice, a step back to the
 * map, or back to the start when the place in line is gone.
 */
export class BoxOfficeApp {
  private readonly state: AppState = {
    screen: "join",
    session: undefined,
    concert: undefined,
    admissionEndsAt: undefined,
    date: undefined,
    hold: undefined,
    ticket: undefined,
    notice: undefined,
    assertion: undefined,
    reader: undefined,
  };
  private readonly actions = new ActionIds();
  /** The fan's own choice when they made one, else their browser's language. */
  private lang: Lang = browserStorage.loadLang() ?? preferredLang(navigator.languages);
  /** Local clock minus server clock, when they differ by more than latency. */
  private clockOffsetMs = 0;
  private mounted: Mounted | undefined;
  private admissionCountdown: CountdownView | undefined;
  private holdTimer: ReturnType<typeof setTimeout> | undefined;

  private readonly skipLink = h("a", { class: "skip-link", href: "#main" });
  private readonly brand = h("p", { class: "brand" });
  private readonly langButton = h("button", {
    type: "button",
    class: "lang-toggle",
    "data-testid": "lang-toggle",
  });
  private readonly admissionSlot = h("div", { class: "admission-slot" });
  private readonly alertRegion = h("div", {
    class: "notice notice-error",
    role: "alert",
    "data-testid": "notice-alert",
  });
  private readonly statusRegion = h("div", {
    class: "notice",
    role: "status",
    "data-testid": "notice-status",
  });
  private readonly screenSlot = h("div", { class: "screen-slot" });

  constructor(
    root: HTMLElement,
    private readonly api: ApiClient,
    private readonly settings: PageSettings,
  ) {
    this.langButton.addEventListener("click", () => this.switchLanguage());
    root.replaceChildren(
      this.skipLink,
      h(
        "header",
        { class: "site-header" },
        h("div", { class: "site-header-inner" }, this.brand, this.admissionSlot, this.langButton),
      ),
      h(
        "main",
        { id: "main", class: "site-main", tabindex: "-1" },
        this.alertRegion,
        this.statusRegion,
        this.screenSlot,
      ),
    );
  }

  /**
   * Shows the first screen: back in line when this tab already has a place,
   * else join (with the assertion the operator's site handed over, if any).
   */
  start(assertion?: string): void {
    this.state.assertion = assertion;
    const saved = browserStorage.loadSession();
    if (saved !== undefined) {
      this.state.session = saved;
      this.api.setToken(saved.token);
      this.state.screen = "queue";
      void this.loadConcert(saved.concertId);
    }
    this.paintShell();
    this.render(false);
  }

  /** An assertion handed over after the page started (postMessage): the join screen uses it. */
  receiveAssertion(assertion: string): void {
    this.state.assertion = assertion;
    if (this.state.screen === "join") this.render(false);
  }

  private t(key: MessageKey, params?: MessageParams): string {
    return translate(this.lang, key, params);
  }

  private go(screen: ScreenName, notice?: Notice): void {
    this.state.screen = screen;
    this.state.notice = notice;
    this.render(true);
  }

  /** Replaces the current screen with `state.screen`, cancelling the old one's work. */
  private render(moveFocus: boolean): void {
    if (this.mounted !== undefined) {
      this.mounted.controller.abort();
      for (const cleanup of this.mounted.cleanups) cleanup();
    }
    const mounted: Mounted = { controller: new AbortController(), cleanups: [] };
    this.mounted = mounted;
    const screen = SCREENS[this.state.screen](this.contextFor(mounted));
    this.screenSlot.replaceChildren(screen.root);
    document.title = `${screen.heading.textContent ?? ""} · ${this.t("appTitle")}`;
    this.paintAdmission();
    this.paintNotice();
    if (moveFocus) screen.heading.focus();
  }

  private contextFor(mounted: Mounted): ScreenContext {
    const { signal } = mounted.controller;
    const live = () => !signal.aborted;
    const ctx: ScreenContext = {
      stagedoor: this.api.stagedoor,
      settings: this.settings,
      state: this.state,
      lang: this.lang,
      actions: this.actions,
      signal,
      t: (key, params) => this.t(key, params),
      money: (amount) => formatWon(amount, this.lang),
      localMs: (timestamp) => (timestamp ? timestampMs(timestamp) + this.clockOffsetMs : 0),
      onDispose: (cleanup) => mounted.cleanups.push(cleanup),
      // A screen that is gone can no longer steer the app.
      go: (screen, notice) => live() && this.go(screen, notice),
      notify: (notice) => {
        if (!live()) return;
        this.state.notice = notice;
        this.paintNotice();
      },
      retrying: () => ctx.notify({ key: "busyRetrying", tone: "info" }),
      fail: (error) => this.fail(error),
      task: (work) => {
        work().then(
          () => {
            // The work got through after all: "busy, retrying" no longer applies.
            if (live() && this.state.notice?.key === "busyRetrying") ctx.notify(undefined);
          },
          (error: unknown) => {
            if (live()) this.fail(error);
          },
        );
      },
      startSession: (session, concert) => live() && this.startSession(session, concert),
      dropAssertion: (notice) => {
        if (!live()) return;
        this.state.assertion = undefined;
        this.go("join", notice);
      },
      endSession: (notice) => live() && this.endSession(notice),
      admit: (expireTimeMs) => live() && this.admit(expireTimeMs),
      chooseDate: (date) => live() && this.chooseDate(date),
      setHold: (reservation, receivedAt) => this.setHold(reservation, receivedAt),
      confirm: (ticket) => live() && this.confirm(ticket),
      openTickets: (reader) => {
        if (!live()) return;
        this.state.reader = reader;
        this.go("my-tickets");
      },
    };
    return ctx;
  }

  private fail(error: unknown): FanError {
    const fan = describeError(error);
    // Kept for whoever opens the developer tools; the fan sees words, not this.
    console.warn("stagedoor call failed:", error);
    if (fan.sessionOver) {
      this.endSession({ key: fan.key, tone: "error" });
    } else if (fan.reason === "TOKEN_NOT_ADMITTED") {
      // The queue screen finds out whether the fan is still waiting or the turn is over.
      this.go("queue", { key: fan.key, tone: "error" });
    } else {
      this.state.notice = { key: fan.key, tone: fan.transient ? "info" : "error" };
      this.paintNotice();
    }
    return fan;
  }

  private startSession(session: FanSession, concert: Concert): void {
    this.resetSession();
    this.state.session = session;
    this.state.concert = concert;
    this.api.setToken(session.token);
    browserStorage.saveSession(session);
    this.go("queue");
  }

  private endSession(notice?: Notice): void {
    this.resetSession();
    this.go("join", notice);
  }

  private resetSession(): void {
    this.state.session = undefined;
    this.state.admissionEndsAt = undefined;
    this.state.date = undefined;
    this.state.ticket = undefined;
    this.setHold(undefined);
    this.api.setToken(undefined);
    this.actions.clear();
    browserStorage.saveSession(undefined);
  }

  private admit(expireTimeMs: number): void {
    this.state.admissionEndsAt = expireTimeMs > 0 ? expireTimeMs + this.clockOffsetMs : undefined;
    this.go("admitted");
  }

  private chooseDate(date: ConcertDate): void {
    this.state.date = date;
    this.go("seat-map");
  }

  /**
   * Records the fan's hold and arms its timer. A hold fresh from HoldSeat
   * also calibrates the clock: its create time is "now" on the server, so a
   * fan whose device clock is off still sees the right countdown.
   */
  private setHold(reservation: Reservation | undefined, receivedAt?: number): void {
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    if (reservation === undefined) {
      this.state.hold = undefined;
      return;
    }
    if (receivedAt !== undefined && reservation.createTime) {
      const offset = receivedAt - timestampMs(reservation.createTime);
      this.clockOffsetMs = Math.abs(offset) > SKEW_THRESHOLD_MS ? offset : 0;
    }
    const endsAt = reservation.holdExpireTime
      ? timestampMs(reservation.holdExpireTime) + this.clockOffsetMs
      : Date.now();
    this.state.hold = { reservation, endsAt };
    this.holdTimer = setTimeout(
      () => this.holdExpired(reservation.id),
      Math.max(0, endsAt - Date.now()),
    );
  }

  private holdExpired(reservationId: string): void {
    if (this.state.hold?.reservation.id !== reservationId) return;
    this.state.hold = undefined;
    const notice: Notice = { key: "errHoldExpired", tone: "error" };
    if (HOLD_SCREENS.has(this.state.screen)) {
      this.go("seat-map", notice);
    } else if (this.state.screen === "seat-map") {
      this.state.notice = notice;
      this.paintNotice();
    }
  }

  private confirm(ticket: Reservation): void {
    this.setHold(undefined);
    this.state.ticket = ticket;
    // Paying ends the admission (the slot goes to the next fan in line).
    this.state.admissionEndsAt = undefined;
    this.go("ticket");
  }

  private async loadConcert(concertId: string): Promise<void> {
    try {
      const { concerts } = await this.api.stagedoor.catalog.listConcerts({ pageSize: 200 });
      this.state.concert = concerts.find((concert) => concert.id === concertId);
    } catch {
      // The title is a nicety; every screen works without it.
    }
  }

  private switchLanguage(): void {
    this.lang = this.lang === "ko" ? "en" : "ko";
    browserStorage.saveLang(this.lang);
    this.paintShell();
    // Redraw in the new language; the focus stays on the toggle the fan just used.
    this.render(false);
  }

  private paintShell(): void {
    document.documentElement.lang = this.lang;
    this.skipLink.textContent = this.t("skipToContent");
    this.brand.textContent = this.t("appTitle");
    const other: Lang = this.lang === "ko" ? "en" : "ko";
    this.langButton.textContent = this.t("languageToggle");
    this.langButton.lang = other;
    this.langButton.setAttribute("aria-label", this.t("languageToggleLabel"));
  }

  /** The header's admission countdown, on the screens where the clock is running. */
  private paintAdmission(): void {
    this.admissionCountdown?.dispose();
    this.admissionCountdown = undefined;
    this.admissionSlot.replaceChildren();
    const endsAt = this.state.admissionEndsAt;
    if (endsAt === undefined || this.state.session === undefined) return;
    const onExpire = () => {
      if (this.state.screen !== "ticket" && this.state.admissionEndsAt === endsAt) {
        this.endSession({ key: "errAdmissionEnded", tone: "error" });
      }
    };
    if (!TIMED_SCREENS.has(this.state.screen)) {
      // The admitted screen shows its own, larger countdown; the deadline still applies.
      const timer = setTimeout(onExpire, Math.max(0, endsAt - Date.now()));
      this.mounted?.cleanups.push(() => clearTimeout(timer));
      return;
    }
    this.admissionCountdown = createCountdown({
      endsAt,
      text: (time) => this.t("admissionLeft", { time }),
      className: "admission-timer",
      testId: "admission-timer",
      onExpire,
    });
    this.admissionSlot.append(this.admissionCountdown.element);
  }

  private paintNotice(): void {
    const notice = this.state.notice;
    const text = notice ? this.t(notice.key, notice.params) : "";
    const isError = notice?.tone === "error";
    this.alertRegion.textContent = isError ? text : "";
    this.statusRegion.textContent = isError ? "" : text;
    this.statusRegion.className = `notice${notice?.tone === "success" ? " notice-success" : ""}`;
    this.statusRegion.dataset.key = isError ? "" : (notice?.key ?? "");
    this.alertRegion.dataset.key = isError ? (notice?.key ?? "") : "";
  }
}
