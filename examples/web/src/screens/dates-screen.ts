import { timestampDate } from "@bufbuild/protobuf/wkt";
import { h, replaceChildren } from "../dom.js";
import { formatCalendarDate, formatCount, formatStartTime } from "../format.js";
import { withRetry } from "../retry.js";
import { type Screen, type ScreenContext, screenHeading, screenSection } from "./screen.js";

/** Dates: the concert's dates that still have seats, each with how many are left. */
export function renderDatesScreen(ctx: ScreenContext): Screen {
  const heading = screenHeading(ctx.t("datesHeading"));
  const list = h("div", { class: "date-list", "aria-busy": "true" }, h("p", {}, ctx.t("loading")));
  const concert = ctx.state.concert;

  ctx.task(async () => {
    const concertId = ctx.state.session?.concertId ?? concert?.id ?? "";
    const { dates } = await withRetry(
      () => ctx.stagedoor.catalog.listConcertDates({ concertId }, { signal: ctx.signal }),
      // A read is safe to repeat for as long as the fan waits on this screen.
      { attempts: Number.POSITIVE_INFINITY, signal: ctx.signal, onRetry: () => ctx.retrying() },
    );
    list.removeAttribute("aria-busy");
    if (dates.length === 0) {
      replaceChildren(list, h("p", { class: "empty" }, ctx.t("noDates")));
      return;
    }
    replaceChildren(
      list,
      h(
        "ul",
        { class: "choices" },
        ...dates.map((date) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                type: "button",
                class: "choice",
                "data-testid": "date-choice",
                "data-date": date.date,
                onclick: () => ctx.chooseDate(date),
              },
              h("span", { class: "choice-title" }, formatCalendarDate(date.date, ctx.lang)),
              date.startTime
                ? h(
                    "span",
                    { class: "choice-detail" },
                    ctx.t("startsAt", {
                      time: formatStartTime(timestampDate(date.startTime), ctx.lang),
                    }),
                  )
                : null,
              h(
                "span",
                { class: "choice-detail" },
                ctx.t("seatsLeft", {
                  available: formatCount(date.availableSeatCount, ctx.lang),
                  total: formatCount(date.totalSeatCount, ctx.lang),
                }),
              ),
            ),
          ),
        ),
      ),
    );
  });

  const root = screenSection(
    "dates",
    heading,
    concert
      ? h("p", { class: "concert-line" }, h("strong", {}, concert.title), " · ", concert.venue)
      : null,
    list,
  );
  return { root, heading };
}
