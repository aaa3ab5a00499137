import { ReservationState, type Seat, SeatState } from "@stagedoor/sdk";
import { h, replaceChildren } from "../dom.js";
import { describeError } from "../fan-error.js";
import { formatCalendarDate } from "../format.js";
import type { MessageKey } from "../i18n.js";
import { sleep, withRetry } from "../retry.js";
import { type Screen, type ScreenContext, screenHeading, screenSection } from "./screen.js";

/** How often the map asks for fresh seat states while it is on screen. */
const REFRESH_MS = 3_000;
/** Seats per ListSeats page; a date of any size is read page by page. */
const PAGE_SIZE = 500;

/** What a seat looks like to this fan. */
type Shown = "available" | "held" | "sold" | "mine";

const STATE_LABEL: Record<Shown, MessageKey> = {
  available: "stateAvailable",
  held: "stateHeld",
  sold: "stateSold",
  mine: "stateMine",
};

interface SeatButton {
  seat: Seat;
  readonly button: HTMLButtonElement;
  readonly tag: HTMLSpanElement;
}

/**
 * The seat map of one date: every seat as a button, grouped by grade with its
 * price, in four states told apart by colour, pattern and a word (never
 * colour alone). It re-reads the seats every few seconds while on screen, so
 * seats others take or give up show up without a reload. A free seat is
 * held with one click.
 */
export function renderSeatMapScreen(ctx: ScreenContext): Screen {
  const heading = screenHeading(ctx.t("seatMapHeading"));
  const date = ctx.state.date;
  const banner = h("div", { class: "banner", "data-testid": "hold-banner", hidden: true });
  const map = h("div", { class: "seat-map", "data-testid": "seat-map", "aria-busy": "true" });
  map.append(h("p", {}, ctx.t("loading")));
  const freshness = h("p", { class: "connection", role: "status" });
  const back = h(
    "button",
    { type: "button", class: "secondary", onclick: () => ctx.go("dates") },
    ctx.t("backToDates"),
  );
  const root = screenSection(
    "seat-map",
    heading,
    date ? h("p", { class: "concert-line" }, formatCalendarDate(date.date, ctx.lang)) : null,
    h("p", { class: "muted" }, ctx.t("seatMapIntro")),
    legend(ctx),
    banner,
    freshness,
    map,
    h("div", { class: "actions" }, back),
  );
  if (date === undefined) {
    queueMicrotask(() => ctx.go("dates"));
    return { root, heading };
  }

  const buttons = new Map<string, SeatButton>();
  let requested = 0;
  let applied = 0;
  let holding = false;

  const mineId = (): string | undefined => {
    const hold = ctx.state.hold;
    return hold && hold.endsAt > Date.now() ? hold.reservation.seatId : undefined;
  };

  const shownOf = (seat: Seat): Shown => {
    if (seat.id === mineId()) return "mine";
    if (seat.state === SeatState.AVAILABLE) return "available";
    return seat.state === SeatState.SOLD ? "sold" : "held";
  };

  const paint = (entry: SeatButton) => {
    const { seat, button, tag } = entry;
    const shown = shownOf(seat);
    const price = ctx.money(seat.price);
    button.className = `seat seat-${shown}`;
    button.dataset.state = shown;
    button.setAttribute("aria-disabled", shown === "held" || shown === "sold" ? "true" : "false");
    button.setAttribute(
      "aria-label",
      ctx.t("seatLabel", {
        number: seat.number,
        grade: seat.grade,
        price,
        state: ctx.t(STATE_LABEL[shown]),
      }),
    );
    button.title = `${seat.grade} · ${price}`;
    tag.textContent = shown === "available" ? seat.grade : ctx.t(STATE_LABEL[shown]);
  };

  const paintBanner = () => {
    const hold = ctx.state.hold;
    if (hold === undefined || hold.endsAt <= Date.now()) {
      banner.hidden = true;
      return;
    }
    const number = hold.reservation.seatNumber;
    replaceChildren(
      banner,
      h("p", {}, ctx.t("holdingBanner", { number })),
      h(
        "button",
        { type: "button", class: "primary", onclick: () => ctx.go("hold") },
        ctx.t("continueWithHold", { number }),
      ),
    );
    banner.hidden = false;
  };

  const build = (seats: readonly Seat[]) => {
    buttons.clear();
    const groups: { grade: string; price: bigint; seats: Seat[] }[] = [];
    for (const seat of seats) {
      const last = groups.at(-1);
      if (last && last.grade === seat.grade && last.price === seat.price) last.seats.push(seat);
      else groups.push({ grade: seat.grade, price: seat.price, seats: [seat] });
    }
    replaceChildren(
      map,
      ...groups.map((group) => {
        const title = ctx.t("gradeHeading", { grade: group.grade, price: ctx.money(group.price) });
        return h(
          "section",
          { class: "seat-group" },
          h("h2", {}, title),
          h(
            "div",
            { class: "seat-grid", role: "group", "aria-label": title },
            ...group.seats.map((seat) => {
              const tag = h("span", { class: "seat-tag" });
              const button = h(
                "button",
                { type: "button", "data-testid": "seat", "data-seat-number": seat.number },
                h("span", { class: "seat-number" }, String(seat.number)),
                tag,
              );
              const entry: SeatButton = { seat, button, tag };
              button.addEventListener("click", () => pick(entry));
              buttons.set(seat.id, entry);
              paint(entry);
              return button;
            }),
          ),
        );
      }),
    );
  };

  const show = (seats: readonly Seat[]) => {
    const sameSeats = seats.length === buttons.size && seats.every((seat) => buttons.has(seat.id));
    if (!sameSeats) {
      build(seats);
    } else {
      for (const seat of seats) {
        const entry = buttons.get(seat.id);
        if (entry === undefined) continue;
        entry.seat = seat;
        paint(entry);
      }
    }
    map.removeAttribute("aria-busy");
    paintBanner();
  };

  /** Reads every page of the date's seats; an answer older than one already shown is dropped. */
  const refresh = async () => {
    const mine = ++requested;
    const seats: Seat[] = [];
    let pageToken = "";
    do {
      const page = await ctx.stagedoor.catalog.listSeats(
        { concertDateId: date.id, pageSize: PAGE_SIZE, pageToken },
        { signal: ctx.signal },
      );
      seats.push(...page.seats);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    if (mine < applied) return;
    applied = mine;
    freshness.textContent = "";
    show(seats);
  };

  /** Finds a hold the fan already has (after a reload, or when the server says they hold one). */
  const findMyHold = async () => {
    const { reservations } = await ctx.stagedoor.reservation.listReservations(
      { pageSize: 20 },
      { signal: ctx.signal },
    );
    const held = reservations.find(
      (r) => r.state === ReservationState.HELD && ctx.localMs(r.holdExpireTime) > Date.now(),
    );
    if (held !== undefined) ctx.setHold(held);
    for (const entry of buttons.values()) paint(entry);
    paintBanner();
  };

  const pick = (entry: SeatButton) => {
    if (holding) return;
    const shown = shownOf(entry.seat);
    if (shown === "mine") {
      ctx.go("hold");
      return;
    }
    if (shown !== "available") {
      ctx.notify({ key: "seatNotFree", tone: "info" });
      return;
    }
    const action = `hold:${entry.seat.id}`;
    holding = true;
    map.setAttribute("aria-busy", "true");
    ctx.task(async () => {
      try {
        const { reservation } = await withRetry(
          () =>
            ctx.stagedoor.reservation.holdSeat(
              { seatId: entry.seat.id, requestId: ctx.actions.idFor(action) },
              { signal: ctx.signal },
            ),
          { signal: ctx.signal, onRetry: () => ctx.retrying() },
        );
        ctx.actions.done(action);
        if (reservation === undefined) throw new Error("HoldSeat answered without a reservation");
        ctx.setHold(reservation, Date.now());
        ctx.go("hold");
      } catch (error) {
        if (!ctx.signal.aborted) {
          const fan = describeError(error);
          // A refusal is final for this request id; a fan who tries again starts a new action.
          if (!fan.transient) ctx.actions.done(action);
          // Show the seat as it really is now (someone else's hold, or the fan's own).
          void refresh().catch(() => undefined);
          if (fan.reason === "HOLD_LIMIT_REACHED") void findMyHold().catch(() => undefined);
        }
        throw error;
      } finally {
        holding = false;
        map.removeAttribute("aria-busy");
      }
    });
  };

  if (ctx.state.hold === undefined) void findMyHold().catch(() => undefined);
  else paintBanner();

  ctx.task(async () => {
    for (;;) {
      if (!document.hidden) {
        try {
          await refresh();
        } catch (error) {
          if (ctx.signal.aborted || !describeError(error).transient) throw error;
          freshness.textContent = ctx.t("seatsStale");
        }
      }
      await sleep(REFRESH_MS, ctx.signal);
    }
  });

  return { root, heading };
}

/** The key to the map: a sample of each state, with its word. */
function legend(ctx: ScreenContext): HTMLElement {
  const states: Shown[] = ["available", "held", "sold", "mine"];
  return h(
    "div",
    { class: "legend" },
    h("h2", { class: "visually-hidden" }, ctx.t("legendHeading")),
    h(
      "ul",
      {},
      ...states.map((state) =>
        h(
          "li",
          {},
          h("span", { class: `seat-swatch seat-${state}`, "aria-hidden": "true" }),
          ctx.t(STATE_LABEL[state]),
        ),
      ),
    ),
  );
}
