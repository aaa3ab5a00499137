import { h } from "./dom.js";
import { formatCountdown } from "./format.js";

/** A live countdown on the page. */
export interface CountdownView {
  readonly element: HTMLElement;
  /** Stops the timer (the element stays as it is). */
  dispose(): void;
}

/** What a countdown counts to and how it reads. */
export interface CountdownOptions {
  /** The deadline, epoch milliseconds on this browser's clock. */
  readonly endsAt: number;
  /** The sentence around the remaining time, e.g. `t("holdTimer", { time })`. */
  readonly text: (time: string) => string;
  /** Called once when the time is up. */
  readonly onExpire?: () => void;
  readonly className?: string;
  /** A stable hook for the browser tests. */
  readonly testId?: string;
}

/** Remaining seconds at which screen readers hear the time, besides every full minute. */
const ANNOUNCE_AT = new Set([30, 10]);

/**
 * A countdown that updates every second where everyone can see it, and tells
 * screen readers the remaining time through a polite live region at each full
 * minute and at 30 and 10 seconds: announcing every second would drown
 * everything else out.
 */
export function createCountdown(options: CountdownOptions): CountdownView {
  const timer = h("span", { role: "timer", "data-testid": options.testId });
  const live = h("span", {
    class: "visually-hidden",
    "aria-live": "polite",
    "aria-atomic": "true",
  });
  const element = h("p", { class: options.className ?? "countdown" }, timer, live);
  let shown = "";
  let lastSeconds = Number.POSITIVE_INFINITY;
  let expired = false;
  const update = () => {
    const remaining = options.endsAt - Date.now();
    const text = options.text(formatCountdown(remaining));
    if (text !== shown) {
      timer.textContent = text;
      shown = text;
    }
    const seconds = Math.max(0, Math.ceil(remaining / 1000));
    if (seconds < lastSeconds && lastSeconds !== Number.POSITIVE_INFINITY) {
      if (seconds > 0 && (seconds % 60 === 0 || ANNOUNCE_AT.has(seconds))) live.textContent = text;
    }
    lastSeconds = seconds;
    if (remaining <= 0 && !expired) {
      expired = true;
      clearInterval(interval);
      live.textContent = text;
      options.onExpire?.();
    }
  };
  // Four ticks a second keep the shown second within a quarter second of the truth.
  const interval = setInterval(update, 250);
  update();
  return {
    element,
    dispose() {
      clearInterval(interval);
    },
  };
}
