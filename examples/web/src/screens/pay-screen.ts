import { ReservationState } from "@stagedoor/sdk";
import { h } from "../dom.js";
import { describeError } from "../fan-error.js";
import { withRetry } from "../retry.js";
import { loadBalance } from "../wallet-balance.js";
import { holdBar } from "./hold-bar.js";
import { reservationFacts } from "./reservation-facts.js";
import { type Screen, type ScreenContext, screenHeading, screenSection } from "./screen.js";

/**
 * Pay: the seat, its price and the balance before and after, and one button
 * that pays exactly the seat's price. The payment is one logical action with
 * one request id: tapping again after a failure (or the automatic retry after
 * a dropped connection) reuses it, so the fan is never charged twice.
 */
export function renderPayScreen(ctx: ScreenContext): Screen {
  const heading = screenHeading(ctx.t("payHeading"));
  const hold = ctx.state.hold;
  if (hold === undefined) {
    queueMicrotask(() => ctx.go("seat-map"));
    return { root: screenSection("pay", heading), heading };
  }
  const { reservation } = hold;
  const balanceLine = h("p", { class: "balance", "data-testid": "pay-balance" }, ctx.t("loading"));
  const payButton = h(
    "button",
    { type: "button", class: "primary", "data-testid": "pay-button" },
    ctx.t("payButton", { amount: ctx.money(reservation.price) }),
  );
  const topUp = h(
    "button",
    { type: "button", class: "secondary", onclick: () => ctx.go("wallet") },
    ctx.t("topUpFirst"),
  );
  const action = `pay:${reservation.id}`;

  payButton.addEventListener("click", () => {
    payButton.disabled = true;
    ctx.task(async () => {
      try {
        const { reservation: confirmed } = await withRetry(
          () =>
            ctx.stagedoor.payment.createPayment(
              {
                reservationId: reservation.id,
                amount: reservation.price,
                requestId: ctx.actions.idFor(action),
              },
              { signal: ctx.signal },
            ),
          { signal: ctx.signal, onRetry: () => ctx.retrying() },
        );
        ctx.actions.done(action);
        ctx.confirm(confirmed ?? reservation);
      } catch (error) {
        if (ctx.signal.aborted) throw error;
        const fan = describeError(error);
        if (!fan.transient) ctx.actions.done(action);
        if (fan.reason === "ALREADY_PAID") {
          // Paid by an earlier attempt whose answer was lost: show the ticket.
          const { reservation: current } = await ctx.stagedoor.reservation.getReservation(
            { reservationId: reservation.id },
            { signal: ctx.signal },
          );
          if (current?.state === ReservationState.CONFIRMED) {
            ctx.confirm(current);
            return;
          }
        }
        if (fan.reason === "HOLD_EXPIRED" || fan.reason === "RESERVATION_NOT_HELD") {
          ctx.setHold(undefined);
          ctx.go("seat-map", { key: "errHoldExpired", tone: "error" });
          return;
        }
        throw error;
      } finally {
        payButton.disabled = false;
      }
    });
  });

  ctx.task(async () => {
    const { balance } = await loadBalance(ctx.stagedoor, ctx.signal);
    const after = balance - reservation.price;
    balanceLine.replaceChildren(
      h("span", {}, `${ctx.t("labelBalance")}: ${ctx.money(balance)}`),
      h("br"),
      h("span", {}, `${ctx.t("labelBalanceAfter")}: ${after >= 0n ? ctx.money(after) : "—"}`),
    );
    if (after < 0n) {
      balanceLine.append(
        h("br"),
        h("strong", {}, ctx.t("needMore", { amount: ctx.money(-after) })),
      );
    }
  });

  const concert = ctx.state.concert;
  const root = screenSection(
    "pay",
    heading,
    holdBar(ctx),
    reservationFacts(ctx, reservation, concert ? [[ctx.t("labelConcert"), concert.title]] : []),
    balanceLine,
    h("div", { class: "actions" }, payButton, topUp),
  );
  return { root, heading };
}
