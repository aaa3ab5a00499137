import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Ticket, TicketState } from "@stagedoor/sdk";
import { h, replaceChildren } from "../dom.js";
import { formatDateTime, formatVenueStart } from "../format.js";
import type { MessageKey } from "../i18n.js";
import { qrCanvas } from "../qr-canvas.js";
import { withRetry } from "../retry.js";
import { type Screen, type ScreenContext, screenHeading, screenSection } from "./screen.js";

const STATES: Readonly<Record<TicketState, { key: MessageKey; badge: string }>> = {
  [TicketState.UNSPECIFIED]: { key: "ticketValid", badge: "badge" },
  [TicketState.VALID]: { key: "ticketValid", badge: "badge badge-confirmed" },
  [TicketState.USED]: { key: "ticketUsed", badge: "badge" },
  [TicketState.REFUNDED]: { key: "ticketRefunded", badge: "badge" },
};

/** Where the seat is: section, row and number when the seat map has them, else the number. */
function seatText(ctx: ScreenContext, ticket: Ticket): string {
  if (ticket.section === "" || ticket.row === "") {
    return ctx.t("seatName", { number: ticket.seatNumber });
  }
  return ctx.t("seatPlace", {
    section: ticket.section,
    row: ticket.row,
    number: ticket.seatNumber,
  });
}

/** One ticket as a card: what, where, when, the seat, and the entry code with its QR code. */
function ticketCard(ctx: ScreenContext, ticket: Ticket): HTMLElement {
  const state = STATES[ticket.state];
  const rows: [string, string][] = [
    [ctx.t("labelConcert"), ticket.concertTitle],
    [ctx.t("labelVenue"), ticket.venue],
    [ctx.t("labelStarts"), formatVenueStart(ticket.localStartTime, ticket.timeZone, ctx.lang)],
    [ctx.t("labelSeat"), seatText(ctx, ticket)],
    [ctx.t("labelGrade"), ticket.grade],
    [ctx.t("labelPrice"), ctx.money(ticket.price)],
  ];
  if (ticket.paidTime) {
    rows.push([ctx.t("labelPaidAt"), formatDateTime(timestampDate(ticket.paidTime), ctx.lang)]);
  }
  return h(
    "article",
    { class: "ticket", "data-testid": "my-ticket", "data-ticket-id": ticket.id },
    h("p", { class: state.badge, "data-testid": "my-ticket-state" }, ctx.t(state.key)),
    h(
      "dl",
      { class: "facts" },
      ...rows.map(([term, value]) =>
        h("div", { class: "fact" }, h("dt", {}, term), h("dd", {}, value)),
      ),
    ),
    ticket.entryCode === ""
      ? null
      : h(
          "div",
          { class: "entry-code" },
          qrCanvas(ticket.entryCode, ctx.t("entryCodeQr")),
          h(
            "p",
            { class: "ticket-id" },
            h("span", { class: "ticket-id-label" }, ctx.t("labelEntryCode")),
            " ",
            h("code", { "data-testid": "entry-code" }, ticket.entryCode),
          ),
        ),
  );
}

/**
 * My tickets: the fan's tickets and balance, read with a read-only session
 * (no queue token, no place in line), each with its entry code as text and
 * as a QR code to show at the door.
 */
export function renderMyTicketsScreen(ctx: ScreenContext): Screen {
  const heading = screenHeading(ctx.t("myTicketsHeading"));
  const reader = ctx.state.reader;
  if (reader === undefined) {
    queueMicrotask(() => ctx.go("join"));
    return { root: screenSection("my-tickets", heading), heading };
  }
  const options = {
    signal: ctx.signal,
    headers: { authorization: `Bearer ${reader.token}` },
  };
  const list = h(
    "div",
    { class: "stack", "aria-busy": "true", "data-testid": "my-tickets" },
    ctx.t("loading"),
  );
  const balance = h("dd", { "data-testid": "my-tickets-balance" }, "…");

  ctx.task(async () => {
    const [{ tickets }, { wallet }] = await withRetry(
      () =>
        Promise.all([
          ctx.stagedoor.ticket.listTickets({ pageSize: 100 }, options),
          ctx.stagedoor.wallet.getWallet({}, options),
        ]),
      { signal: ctx.signal, onRetry: () => ctx.retrying() },
    );
    balance.textContent = ctx.money(wallet?.balance ?? 0n);
    list.removeAttribute("aria-busy");
    if (tickets.length === 0) {
      replaceChildren(list, h("p", { "data-testid": "my-tickets-empty" }, ctx.t("myTicketsEmpty")));
      return;
    }
    replaceChildren(list, ...tickets.map((ticket) => ticketCard(ctx, ticket)));
  });

  const root = screenSection(
    "my-tickets",
    heading,
    h("p", {}, ctx.t("myTicketsIntro", { userId: reader.userId })),
    h(
      "dl",
      { class: "facts" },
      h("div", { class: "fact" }, h("dt", {}, ctx.t("labelBalance")), balance),
    ),
    list,
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        { type: "button", class: "secondary", onclick: () => ctx.go("join") },
        ctx.t("backToStart"),
      ),
    ),
  );
  return { root, heading };
}
