import { createCountdown } from "../countdown.js";
import type { ScreenContext } from "./screen.js";

/**
 * A one-line reminder of the fan's hold (seat, price, time left) for the
 * wallet and payment screens, so the deadline never leaves sight while the
 * fan tops up. Nothing when there is no hold.
 */
export function holdBar(ctx: ScreenContext): HTMLElement | null {
  const hold = ctx.state.hold;
  if (hold === undefined) return null;
  const countdown = createCountdown({
    endsAt: hold.endsAt,
    text: (time) =>
      ctx.t("holdBar", {
        number: hold.reservation.seatNumber,
        price: ctx.money(hold.reservation.price),
        time,
      }),
    className: "countdown hold-bar",
    testId: "hold-bar",
  });
  ctx.onDispose(() => countdown.dispose());
  return countdown.element;
}
