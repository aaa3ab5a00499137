import type { Reservation } from "@stagedoor/sdk";
import { h } from "../dom.js";
import { formatCalendarDate } from "../format.js";
import type { ScreenContext } from "./screen.js";

/**
 * The facts of a reservation as a description list (seat, date, price, plus
 * any extra rows first), so the hold, payment and ticket screens read alike.
 */
export function reservationFacts(
  ctx: ScreenContext,
  reservation: Reservation,
  extra: readonly (readonly [string, string])[] = [],
): HTMLElement {
  const rows: (readonly [string, string])[] = [
    ...extra,
    [ctx.t("labelSeat"), ctx.t("seatName", { number: reservation.seatNumber })],
    [ctx.t("labelDate"), formatCalendarDate(reservation.date, ctx.lang)],
    [ctx.t("labelPrice"), ctx.money(reservation.price)],
  ];
  return h(
    "dl",
    { class: "facts", "data-testid": "reservation-facts" },
    ...rows.map(([term, value]) =>
      h("div", { class: "fact" }, h("dt", {}, term), h("dd", {}, value)),
    ),
  );
}
