import type { Concert } from "@stagedoor/sdk";
import { assertionUser } from "../assertion-handover.js";
import { h, replaceChildren } from "../dom.js";
import { describeError } from "../fan-error.js";
import { withRetry } from "../retry.js";
import { type Screen, type ScreenContext, screenHeading, screenSection } from "./screen.js";

const MAX_USER_ID = 128;

/**
 * Join: the fan takes a place in the line of the first concert on sale (its
 * title and venue are shown, so they know what they queue for). With
 * `AUTH_MODE=trust` they type a user id; with `hmac` they join as the user of
 * the assertion the operator's site handed over, or are sent to sign in there.
 */
export function renderJoinScreen(ctx: ScreenContext): Screen {
  const heading = screenHeading(ctx.t("joinHeading"));
  const assertion = ctx.settings.auth === "hmac" ? ctx.state.assertion : undefined;
  const signedInUser = assertion === undefined ? undefined : assertionUser(assertion);
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

  /** The user id to act for (typed, or the assertion's), or undefined after saying what is wrong. */
  const checkedUserId = (): string | undefined => {
    const userId = signedInUser ?? input.value.trim();
    if (userId.length < 1 || userId.length > MAX_USER_ID) {
      showProblem(ctx.t("userIdInvalid"));
      input.focus();
      return undefined;
    }
    showProblem(undefined);
    return userId;
  };
  /** The assertion is the bearer credential of the calls that prove who the fan is. */
  const identity = {
    signal: ctx.signal,
    ...(assertion ? { headers: { authorization: `Bearer ${assertion}` } } : {}),
  };
  /** Drops an assertion the server refused (expired, or not this fan's); rethrows anything else. */
  const refusedIdentity = (error: unknown): undefined => {
    const { reason } = describeError(error);
    if (assertion && (reason === "ASSERTION_INVALID" || reason === "USER_MISMATCH")) {
      // Expired or not for this fan: only a new sign-in helps.
      ctx.dropAssertion({ key: "errIdentity", tone: "error" });
      return undefined;
    }
    throw error;
  };
  // My tickets: a read-only session for the same identity, without queuing.
  const myTickets = h(
    "button",
    {
      type: "button",
      class: "secondary",
      "data-testid": "my-tickets-button",
      onclick: () => {
        const userId = checkedUserId();
        if (userId === undefined) return;
        myTickets.disabled = true;
        ctx.task(async () => {
          try {
            const opened = await withRetry(
              () => ctx.stagedoor.ticket.createSession({ userId }, identity),
              { signal: ctx.signal, onRetry: () => ctx.retrying() },
            ).catch(refusedIdentity);
            if (opened !== undefined) ctx.openTickets({ userId, token: opened.sessionToken });
          } finally {
            myTickets.disabled = false;
          }
        });
      },
    },
    ctx.t("myTicketsButton"),
  );

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
        const userId = checkedUserId();
        if (userId === undefined || concert === undefined) return;
        const target = concert;
        submit.disabled = true;
        ctx.task(async () => {
          try {
            // IssueQueueToken is idempotent per user and concert: retrying is safe.
            const issued = await withRetry(
              () => ctx.stagedoor.queue.issueQueueToken({ concertId: target.id, userId }, identity),
              { signal: ctx.signal, onRetry: () => ctx.retrying() },
            ).catch(refusedIdentity);
            if (issued === undefined) return;
            ctx.startSession({ userId, token: issued.token, concertId: target.id }, target);
          } finally {
            submit.disabled = false;
          }
        });
      },
    },
    ...(signedInUser === undefined
      ? [h("label", { for: "user-id" }, ctx.t("userIdLabel")), hint, input, problem]
      : [
          h(
            "p",
            { class: "signed-in", "data-testid": "signed-in-as" },
            ctx.t("signedInAs", { userId: signedInUser }),
          ),
        ]),
    submit,
    h("p", { class: "field-hint" }, ctx.t("myTicketsHint")),
    myTickets,
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

  if (ctx.settings.auth === "hmac" && signedInUser === undefined) {
    // Nobody signed in yet: the operator's site says who the fan is.
    const loginUrl = ctx.settings.loginUrl;
    const root = screenSection(
      "join",
      heading,
      concertBox,
      h("p", { "data-testid": "sign-in-needed" }, ctx.t("signInNeeded")),
      loginUrl === undefined
        ? null
        : h(
            "a",
            { class: "primary link-button", href: loginUrl, "data-testid": "sign-in-link" },
            ctx.t("signInLink"),
          ),
    );
    return { root, heading };
  }
  const root = screenSection(
    "join",
    heading,
    h("p", {}, ctx.t(signedInUser === undefined ? "joinIntro" : "joinIntroSignedIn")),
    concertBox,
    form,
  );
  return { root, heading };
}
