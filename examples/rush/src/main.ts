// A rush: a crowd of simulated fans against one concert date, all joining the
// waiting room at once, watching their place, grabbing random seats (and
// colliding), paying; then a summary and checks that no seat was sold twice
// and every balance adds up. Exit code 1 when a check fails.
// Run: `npm start` (STAGEDOOR_URL, RUSH_FANS, RUSH_CONCURRENCY; see README.md).
import { randomBytes } from "node:crypto";
import { type ConcertDate, createStagedoorClient, SeatState } from "@stagedoor/sdk";
import { createNodeTransport } from "@stagedoor/sdk/node";
import { limitUnaryCalls } from "./concurrency-limit.js";
import { runFan, type Ticket } from "./fan.js";
import { runChecks } from "./rush-checks.js";
import { RushTally } from "./rush-tally.js";
import { seatsOfDate } from "./seat-listing.js";
import { readRushSettings } from "./settings.js";

/** The date with the most free seats (the earliest of equals): where a rush still has something to sell. */
function roomiestDate(dates: readonly ConcertDate[]): ConcertDate | undefined {
  return [...dates].sort(
    (a, b) => b.availableSeatCount - a.availableSeatCount || a.date.localeCompare(b.date),
  )[0];
}

async function main(): Promise<number> {
  const settings = readRushSettings();
  // Connect and gRPC-Web go over HTTP/1.1, so each waiting fan's watch
  // stream has a connection of its own, as in each fan's own browser; gRPC
  // needs HTTP/2 and multiplexes every fan over one connection.
  const httpVersion = settings.protocol === "grpc" ? "2" : "1.1";
  const transport = createNodeTransport({
    baseUrl: settings.baseUrl,
    protocol: settings.protocol,
    httpVersion,
    interceptors: [limitUnaryCalls(settings.concurrency)],
  });
  const stagedoor = createStagedoorClient(transport);

  const { concerts } = await stagedoor.catalog.listConcerts({});
  const concert = settings.concertId
    ? concerts.find((c) => c.id === settings.concertId)
    : concerts[0];
  if (!concert) throw new Error(`no concert ${settings.concertId ?? ""} on the server`);
  const { dates } = await stagedoor.catalog.listConcertDates({ concertId: concert.id });
  const date = settings.date ? dates.find((d) => d.date === settings.date) : roomiestDate(dates);
  if (!date) {
    throw new Error(
      settings.date
        ? `${settings.date} is not a bookable date of ${concert.title} (sold out, past or unknown)`
        : `every date of ${concert.title} is sold out`,
    );
  }
  const soldBefore = (await seatsOfDate(stagedoor, date.id, "all")).filter(
    (seat) => seat.state === SeatState.SOLD,
  ).length;

  console.log(
    `rush: ${settings.fans} fans against ${settings.baseUrl} (${settings.protocol} over HTTP/${httpVersion}, at most ${settings.concurrency} calls at once)`,
  );
  console.log(
    `concert "${concert.title}", date ${date.date}: ${date.availableSeatCount} of ${date.totalSeatCount} seats available, ${soldBefore} sold`,
  );

  const tally = new RushTally(settings.fans);
  // A fresh prefix per run: every fan starts with an empty wallet, even on a server used before.
  const run = randomBytes(3).toString("hex");
  const plan = {
    transport,
    concertId: concert.id,
    concertDateId: date.id,
    holdAttempts: settings.holdAttempts,
    tally,
  };
  const outcomes = await Promise.all(
    Array.from({ length: settings.fans }, (_, i) => runFan(plan, `rush-${run}-${i + 1}`)),
  );
  const tickets = outcomes.filter((ticket): ticket is Ticket => ticket !== undefined);
  const elapsed = tally.stamp();

  console.log("summary");
  const rows: [string, string | number][] = [
    ["fans", tally.fans],
    ["admitted", tally.admitted],
    ["sold", tally.sold],
    ["sold out", tally.soldOut],
    ["gave up", tally.gaveUp],
    ["errors", `${tally.errorCount()} (${tally.errorsByReason()})`],
    ["hold collisions", tally.collisions],
    ["max waiting position", tally.maxPosition],
    ["elapsed", elapsed.slice(1, -1).trim()],
  ];
  for (const [label, value] of rows) console.log(`  ${`${label}:`.padEnd(22)}${value}`);

  const checks = await runChecks({
    transport,
    concertDateId: date.id,
    date: date.date,
    soldBefore,
    tickets,
  });
  for (const check of checks) {
    console.log(`check ${check.name}: ${check.ok ? "OK" : "FAILED"} (${check.detail})`);
  }
  return checks.every((check) => check.ok) ? 0 : 1;
}

try {
  process.exitCode = await main();
} catch (error) {
  console.error("rush failed:", error instanceof Error ? error.message : error);
  process.exitCode = 1;
}
