import type { Concert } from "@stagedoor/sdk";
import { h, replaceChildren } from "../dom.js";
import { withRetry } from "../retry.js";
import { type Screen, type ScreenContext, screenHeading, screenSection } from "./screen.js";

const MAX_USER_ID = 128;

/**
 * Join: the fan types a user id and takes a place in the line of the first
 * concert on sale (its title and venue are shown, so they know what they
 * queue for).
 */
export function renderJoinScreen(ctx: ScreenContext): Screen {
  const heading = screenHeading(ctx.t("joinHeading"));
  const concertBox = h("div", { class: "concert-card", "aria-busy": "true" }, ctx.t("loading"));
  const hint = h("p", { id: "user-id-hint", class: "field-hint" }, ctx.t("userIdHint"));
  const problem = h("p", { id: "user-id-error", class: "field-error", hidden: true });
  const input = h("input", {
    id: "user-id",
    name: "userId",
    type: "text",
    required: true,
    maxlength: MAX_USER_ID,
    autocomplete: "username",
    autocapitalize: "none",
    spellcheck: "false",
    "aria-describedby": "user-id-hint",
    value: ctx.state.session?.userId ?? "",
  });
  const submit = h(
    "button",
    { type: "submit", class: "primary", disabled: true },
    ctx.t("joinButton"),
  );
  let concert: Concert | undefined;

  const showProblem = (message: string | undefined) => {
    problem.textContent = message ?? "";
    problem.hidden = message === undefined;
    input.setAttribute("aria-invalid", message === undefined ? "false" : "true");
    input.setAttribute(
      "aria-describedby",
      message === undefined ? "user-id-hint" : "user-id-hint user-id-error",
    );
  };

  const form = h(
    "form",
    {
      class: "stack",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        const userId = input.value.trim();
        if (userId.length < 1 || userId.length > MAX_USER_ID) {
          showProblem(ctx.t("userIdInvalid"));
          input.focus();
          return;
        }
        if (concert === undefined) return;
        showProblem(undefined);
        const target = concert;
        submit.disabled = true;
        ctx.task(async () => {
          try {
            // IssueQueueToken is idempotent per user and concert: retrying is safe.
            const { token } = await withRetry(
              () =>
                ctx.stagedoor.queue.issueQueueToken(
                  { concertId: target.id, userId },
                  { signal: ctx.signal },
                ),
              { signal: ctx.signal, onRetry: () => ctx.retrying() },
            );
            ctx.startSession({ userId, token, concertId: target.id }, target);
          } finally {
            submit.disabled = false;
          }
        });
      },
    },
    h("label", { for: "user-id" }, ctx.t("userIdLabel")),
    hint,
    input,
    problem,
    submit,
  );

  ctx.task(async () => {
    const { concerts } = await withRetry(
      () => ctx.stagedoor.catalog.listConcerts({ pageSize: 1 }, { signal: ctx.signal }),
      // Nothing works without the concert, so keep trying while the fan is here.
      { attempts: Number.POSITIVE_INFINITY, signal: ctx.signal, onRetry: () => ctx.retrying() },
    );
    concert = concerts[0];
    concertBox.removeAttribute("aria-busy");
    if (concert === undefined) {
      replaceChildren(concertBox, h("p", {}, ctx.t("noConcert")));
      return;
    }
    replaceChildren(
      concertBox,
      h("p", { class: "concert-title", "data-testid": "concert-title" }, concert.title),
      h("p", { class: "concert-venue" }, ctx.t("concertVenue", { venue: concert.venue })),
    );
    submit.disabled = false;
  });

  const root = screenSection("join", heading, h("p", {}, ctx.t("joinIntro")), concertBox, form);
  return { root, heading };
}
