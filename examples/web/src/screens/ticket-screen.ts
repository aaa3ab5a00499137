import { h } from "../dom.js";
import { reservationFacts } from "./reservation-facts.js";
import { type Screen, type ScreenContext, screenHeading, screenSection } from "./screen.js";

/** Ticket: the confirmed reservation (number, seat, date, price), ready to show at the door. */
export function renderTicketScreen(ctx: ScreenContext): Screen {
  const heading = screenHeading(ctx.t("ticketHeading"));
  const ticket = ctx.state.ticket;
  if (ticket === undefined) {
    queueMicrotask(() => ctx.go("join"));
    return { root: screenSection("ticket", heading), heading };
  }
  const concert = ctx.state.concert;
  const extra: [string, string][] = [];
  if (concert) extra.push([ctx.t("labelConcert"), `${concert.title} · ${concert.venue}`]);
  const root = screenSection(
    "ticket",
    heading,
    h(
      "article",
      { class: "ticket", "data-testid": "ticket" },
      h(
        "p",
        { class: "badge badge-confirmed", "data-testid": "ticket-status" },
        `✓ ${ctx.t("ticketConfirmed")}`,
      ),
      reservationFacts(ctx, ticket, extra),
      h(
        "p",
        { class: "ticket-id" },
        h("span", { class: "ticket-id-label" }, ctx.t("labelReservation")),
        " ",
        h("code", { "data-testid": "ticket-reservation-id" }, ticket.id),
      ),
      h("p", { class: "muted" }, ctx.t("ticketNote")),
    ),
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        { type: "button", class: "secondary", onclick: () => ctx.endSession() },
        ctx.t("startOver"),
      ),
    ),
  );
  return { root, heading };
}
