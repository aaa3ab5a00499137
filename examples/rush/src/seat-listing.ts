import type { Seat, StagedoorClient } from "@stagedoor/sdk";

/**
 * Every seat of a date, following `next_page_token` to the end: the available
 * ones (what a fan picks from) or all of them with their state (for the
 * checks). One page holds a whole demo date, but a bigger venue would not fit.
 */
export async function seatsOfDate(
  client: StagedoorClient,
  concertDateId: string,
  which: "available" | "all",
): Promise<Seat[]> {
  const seats: Seat[] = [];
  let pageToken = "";
  do {
    const page =
      which === "available"
        ? await client.catalog.listAvailableSeats({ concertDateId, pageToken })
        : await client.catalog.listSeats({ concertDateId, pageToken });
    seats.push(...page.seats);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return seats;
}
