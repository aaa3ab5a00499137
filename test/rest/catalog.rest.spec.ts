import { expect } from "chai";
import { startTestServer, type TestServer } from "../support/test-server.js";
import {
  admittedToken,
  expectError,
  holdSeat,
  listDates,
  listSeats,
  must,
  rest,
  uniqueUser,
} from "./rest-client.js";

const ALL_SEATS = Array.from({ length: 50 }, (_, i) => String(i + 1));

/** The day after a calendar date, as YYYY-MM-DD. */
function nextDay(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}

describe("REST GET /api/concerts/dates and /api/concerts/seats", () => {
  let server: TestServer;
  let dates: string[];

  before(async () => {
    server = await startTestServer();
    dates = await listDates(server.url);
  });
  after(async () => {
    await server?.stop();
  });

  it("lists the demo concert's three dates, sorted, as yyyy-mm-dd", () => {
    expect(dates).to.have.length(3);
    expect([...dates].sort()).to.deep.equal(dates);
    expect(new Set(dates).size).to.equal(3);
    // The demo dates are upcoming.
    const today = new Date().toISOString().slice(0, 10);
    for (const date of dates) expect(date > today, date).to.equal(true);
  });

  it("lists every seat of a fresh date as strings in ascending order", async () => {
    const seats = await listSeats(server.url, must(dates[1]));
    expect(seats).to.deep.equal(ALL_SEATS);
  });

  it("leaves held seats out of the listing and keeps the date while seats remain", async () => {
    const date = must(dates[0]);
    const userId = uniqueUser("holder");
    const token = await admittedToken(server.url, userId);
    await holdSeat(server.url, { userId, token, date, seatNumber: 7 });
    const seats = await listSeats(server.url, date);
    expect(seats).to.not.include("7");
    expect(seats).to.have.length(49);
    expect(seats).to.deep.equal(ALL_SEATS.filter((seat) => seat !== "7"));
    expect(await listDates(server.url)).to.include(date);
  });

  it("answers 400 when the date is missing or empty", async () => {
    expectError(await rest(server.url, "GET", "/api/concerts/seats"), 400);
    expectError(await rest(server.url, "GET", "/api/concerts/seats?date="), 400);
    expectError(await rest(server.url, "GET", "/api/concerts/seats?day=2030-01-01"), 400);
  });

  for (const bad of [
    "2025-1-01",
    "2025-01-1",
    "20250101",
    "abc",
    "2025-13-01",
    "2025-00-10",
    "2025-01-32",
    "2025-01-00",
    "25-01-01",
    "2025/01/01",
    " 2025-01-01",
    "2025-01-01T00:00:00Z",
  ]) {
    it(`answers 400 for the malformed date ${JSON.stringify(bad)}`, async () => {
      const path = `/api/concerts/seats?date=${encodeURIComponent(bad)}`;
      expectError(await rest(server.url, "GET", path), 400);
    });
  }

  for (const impossible of ["2025-02-30", "2023-02-29", "2025-04-31", "2100-02-29"]) {
    it(`answers 400 for the impossible calendar date ${impossible}`, async () => {
      expectError(await rest(server.url, "GET", `/api/concerts/seats?date=${impossible}`), 400);
    });
  }

  it("accepts a real leap day (answering 404 when there is no concert on it)", async () => {
    expectError(await rest(server.url, "GET", "/api/concerts/seats?date=2024-02-29"), 404);
  });

  it("answers 404 for a valid date with no concert", async () => {
    const dayAfter = nextDay(must(dates[2]));
    expect(dates).to.not.include(dayAfter);
    expectError(await rest(server.url, "GET", `/api/concerts/seats?date=${dayAfter}`), 404);
    expectError(await rest(server.url, "GET", "/api/concerts/seats?date=2000-01-01"), 404);
  });

  it("answers 405 to POST on both routes", async () => {
    for (const path of ["/api/concerts/dates", `/api/concerts/seats?date=${must(dates[0])}`]) {
      const response = await rest(server.url, "POST", path, { json: {} });
      expectError(response, 405);
      expect(response.headers.get("allow")).to.equal("GET");
    }
  });
});

describe("REST catalog listings when a date is fully taken", () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server?.stop();
  });

  it("drops a date from /api/concerts/dates once every seat is held, and lists no seats for it", async () => {
    const dates = await listDates(server.url);
    const date = must(dates[1]);
    // One user per seat: a user holds at most one seat at a time.
    const holders = await Promise.all(
      ALL_SEATS.map(async (seat) => {
        const userId = uniqueUser(`fan${seat}`);
        return { userId, seat: Number(seat), token: await admittedToken(server.url, userId) };
      }),
    );
    for (const holder of holders.slice(0, 49)) {
      await holdSeat(server.url, {
        userId: holder.userId,
        token: holder.token,
        date,
        seatNumber: holder.seat,
      });
    }
    // One seat left: the date is still bookable.
    expect(await listSeats(server.url, date)).to.deep.equal(["50"]);
    expect(await listDates(server.url)).to.deep.equal(dates);

    const last = must(holders[49]);
    await holdSeat(server.url, { userId: last.userId, token: last.token, date, seatNumber: 50 });
    expect(await listSeats(server.url, date)).to.deep.equal([]);
    expect(await listDates(server.url)).to.deep.equal(dates.filter((d) => d !== date));
    // The other dates are untouched.
    expect(await listSeats(server.url, must(dates[0]))).to.deep.equal(ALL_SEATS);
  });
});
