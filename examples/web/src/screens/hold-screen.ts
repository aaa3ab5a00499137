import { createCountdown } from "../countdown.js";
import { h } from "../dom.js";
import { withRetry } from "../retry.js";
import { reservationFacts } from "./reservation-facts.js";
import { type Screen, type ScreenContext, screenHeading, screenSection } from "./screen.js";

/**
 * Hold: the seat is the fan's for now. Shows the seat, its date and price
 * and a live countdown to the hold's end; the fan goes on to pay, or gives
 * the seat back. When the hold runs out the app says so and returns to the
 * map (see the app's hold timer).
 */
export function renderHoldScreen(ctx: ScreenContext): Screen {
  const hold = ctx.state.hold;
  const heading = screenHeading(
    ctx.t("holdHeading", { number: hold?.reservation.seatNumber ?? "" }),
  );
  if (hold === undefined) {
    queueMicrotask(() => ctx.go("seat-map"));
    return { root: screenSection("hold", heading), heading };
  }
  const { reservation } = hold;
  const countdown = createCountdown({
    endsAt: hold.endsAt,
    text: (time) => ctx.t("holdTimer", { time }),
    className: "countdown countdown-large",
    testId: "hold-countdown",
  });
  ctx.onDispose(() => countdown.dispose());

  const release = h("button", { type: "button", class: "secondary" }, ctx.t("releaseSeat"));
  release.addEventListener("click", () => {
    const action = `release:${reservation.id}`;
    release.disabled = true;
    ctx.task(async () => {
      try {
        await withRetry(
          () =>
            ctx.stagedoor.reservation.releaseReservation(
              { reservationId: reservation.id, requestId: ctx.actions.idFor(action) },
              { signal: ctx.signal },
            ),
          { signal: ctx.signal, onRetry: () => ctx.retrying() },
        );
        ctx.actions.done(action);
        ctx.setHold(undefined);
        ctx.go("seat-map", {
          key: "released",
          params: { number: reservation.seatNumber },
          tone: "info",
        });
      } finally {
        release.disabled = false;
      }
    });
  });

  const root = screenSection(
    "hold",
    heading,
    countdown.element,
    reservationFacts(ctx, reservation),
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        { type: "button", class: "primary", onclick: () => ctx.go("wallet") },
        ctx.t("continueToWallet"),
      ),
      release,
    ),
  );
  return { root, heading };
}
