import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { type QueueStatus, QueueTokenState, ReservationState } from "@stagedoor/sdk";
import { type CountdownView, createCountdown } from "../countdown.js";
import { h, replaceChildren } from "../dom.js";
import { formatCount, formatWait } from "../format.js";
import { watchQueue } from "../queue-watch.js";
import { type Screen, type ScreenContext, screenHeading, screenSection } from "./screen.js";

/**
 * Queue: the fan's live place in line, the number of people waiting and the
 * estimated wait, pushed by the server as the line moves. The place is a
 * polite live region, so screen readers hear it change without the fan
 * having to look for it. Admission moves on to the "you're in" screen.
 */
export function renderQueueScreen(ctx: ScreenContext): Screen {
  const heading = screenHeading(ctx.t("queueHeading"));
  const positionNumber = h("span", {
    class: "queue-position-number",
    "data-testid": "queue-position",
  });
  const position = h(
    "p",
    { class: "queue-position" },
    h("span", { class: "queue-position-label" }, ctx.t("queuePositionLabel")),
    " ",
    positionNumber,
  );
  const details = h("p", { class: "queue-details" });
  const live = h(
    "div",
    { class: "queue-live", "aria-live": "polite", "aria-atomic": "true" },
    position,
    details,
  );
  // Before the opening: a countdown instead of a place (nobody has one yet).
  const lobby = h("div", { class: "queue-lobby", "data-testid": "queue-lobby", hidden: "" });
  let countdown: CountdownView | undefined;
  let countdownTo = 0;
  ctx.signal.addEventListener("abort", () => countdown?.dispose());
  const paused = h(
    "p",
    { class: "queue-paused", role: "status", "data-testid": "queue-paused", hidden: "" },
    ctx.t("queuePaused"),
  );
  positionNumber.textContent = "…";
  details.textContent = ctx.t("queueChecking");
  const connection = h("p", {
    class: "connection",
    role: "status",
    "data-testid": "queue-connection",
  });
  const leave = h("button", { type: "button", class: "secondary" }, ctx.t("leaveQueue"));

  const showLobby = (status: QueueStatus) => {
    const opensAt = status.opensAt ? timestampMs(status.opensAt) : 0;
    live.hidden = true;
    lobby.hidden = false;
    if (opensAt === countdownTo) return;
    countdown?.dispose();
    countdownTo = opensAt;
    countdown = createCountdown({
      endsAt: opensAt,
      text: (time) => ctx.t("queueOpensIn", { time }),
      testId: "queue-opens-in",
    });
    replaceChildren(lobby, h("p", {}, ctx.t("queueLobby")), countdown.element);
  };

  const show = (status: QueueStatus) => {
    paused.hidden = !status.admissionPaused;
    if (status.state === QueueTokenState.LOBBY) {
      showLobby(status);
      return;
    }
    if (status.state !== QueueTokenState.WAITING) return;
    lobby.hidden = true;
    live.hidden = false;
    countdown?.dispose();
    positionNumber.textContent = ctx.t("queuePosition", {
      position: formatCount(status.position, ctx.lang),
    });
    const wait = formatWait(status.estimatedWait ? durationMs(status.estimatedWait) : 0);
    replaceChildren(
      details,
      h("span", {}, ctx.t("queueWaiting", { count: formatCount(status.waitingCount, ctx.lang) })),
      " · ",
      h("span", {}, ctx.t("queueWait", { wait: ctx.t(wait.key, wait.params) })),
    );
  };

  leave.addEventListener("click", () => {
    leave.disabled = true;
    ctx.task(async () => {
      try {
        await ctx.stagedoor.queue.leaveQueue({}, { signal: ctx.signal });
        ctx.endSession({ key: "leftQueue", tone: "info" });
      } finally {
        leave.disabled = false;
      }
    });
  });

  ctx.task(async () => {
    const outcome = await watchQueue(ctx.stagedoor, {
      signal: ctx.signal,
      onStatus: show,
      onReconnecting: (reconnecting) => {
        connection.textContent = reconnecting ? ctx.t("reconnecting") : "";
      },
    });
    if (outcome.kind === "admitted") {
      ctx.admit(outcome.expireTimeMs);
      return;
    }
    // The admission already ended with a payment (a reload after paying): show that ticket.
    const { reservations } = await ctx.stagedoor.reservation.listReservations(
      { pageSize: 20 },
      { signal: ctx.signal },
    );
    const ticket = reservations.find((r) => r.state === ReservationState.CONFIRMED);
    if (ticket !== undefined) ctx.confirm(ticket);
    else ctx.endSession({ key: "errAdmissionEnded", tone: "info" });
  });

  const root = screenSection(
    "queue",
    heading,
    lobby,
    live,
    paused,
    connection,
    h("p", { class: "muted" }, ctx.t("queueKeepOpen")),
    h("div", { class: "actions" }, leave),
  );
  return { root, heading };
}
