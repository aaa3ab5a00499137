import { createCountdown } from "../countdown.js";
import { h } from "../dom.js";
import { type Screen, type ScreenContext, screenHeading, screenSection } from "./screen.js";

/**
 * The "you're in" moment: the fan's turn has come, with a live countdown of
 * the admission window (it is never extended, so the fan should know how
 * long they have to pick a seat and pay).
 */
export function renderAdmittedScreen(ctx: ScreenContext): Screen {
  const heading = screenHeading(ctx.t("admittedHeading"));
  const endsAt = ctx.state.admissionEndsAt ?? Date.now();
  const countdown = createCountdown({
    endsAt,
    text: (time) => ctx.t("admittedTimer", { time }),
    className: "countdown countdown-large",
    testId: "admission-countdown",
  });
  ctx.onDispose(() => countdown.dispose());
  const next = h(
    "button",
    { type: "button", class: "primary", onclick: () => ctx.go("dates") },
    ctx.t("chooseDate"),
  );
  const root = screenSection(
    "admitted",
    // Decorative: the heading says it all.
    h("img", { class: "celebrate", src: "./favicon.svg", alt: "", width: 56, height: 56 }),
    heading,
    h("p", {}, ctx.t("admittedBody")),
    countdown.element,
    h("div", { class: "actions" }, next),
  );
  return { root, heading };
}
