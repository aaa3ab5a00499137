import { type Database, transaction } from "../../persistence/database.js";
import { newId } from "../../shared/ids.js";
import { Concert } from "./concert.entity.js";
import { ConcertDate } from "./concert-date.entity.js";
import { Seat } from "./seat.entity.js";

/** The shape of the demo: enough to try every flow by hand. */
const DEMO_DATES = 3;
const DEMO_SEATS_PER_DATE = 50;

function gradeOf(number: number): { grade: string; price: bigint } {
  if (number <= 10) return { grade: "VIP", price: 150_000n };
  if (number <= 30) return { grade: "R", price: 110_000n };
  return { grade: "S", price: 80_000n };
}

/**
 * Seeds a demo concert when the catalog is empty: three upcoming dates, a week
 * apart starting next week, with 50 seats each numbered 1 to 50. Runs under an
 * advisory lock, so instances starting together seed once. Returns whether it
 * seeded.
 */
export async function seedDemoCatalog(db: Database, now: Date): Promise<boolean> {
  return transaction(db, async (em) => {
    await em.execute("select pg_advisory_xact_lock(7342002)");
    if ((await em.count(Concert, {})) > 0) return false;
    const concert = new Concert(
      newId(),
      "Stagedoor Live: Seoul Nights",
      "KSPO Dome, Seoul",
      now,
      "Asia/Seoul",
    );
    const dates: ConcertDate[] = [];
    const seats: Seat[] = [];
    for (let week = 1; week <= DEMO_DATES; week++) {
      // 19:00 in Seoul (UTC+9) is 10:00 UTC.
      const day = new Date(now.getTime() + week * 7 * 86_400_000);
      const startsAt = new Date(
        Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), 10, 0, 0),
      );
      const calendarDate = startsAt.toISOString().slice(0, 10);
      const date = new ConcertDate(
        newId(),
        concert.id,
        calendarDate,
        startsAt,
        DEMO_SEATS_PER_DATE,
      );
      dates.push(date);
      for (let number = 1; number <= DEMO_SEATS_PER_DATE; number++) {
        const { grade, price } = gradeOf(number);
        seats.push(new Seat(newId(), date.id, number, grade, price));
      }
    }
    // Native inserts, parents before children (the foreign keys are plain
    // columns); they leave the unit of work untouched.
    await em.insert(concert);
    await em.insertMany(dates);
    await em.insertMany(seats);
    return true;
  });
}
