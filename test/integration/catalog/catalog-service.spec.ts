import { expect } from "chai";
import { encodePageToken } from "../../../server/src/shared/page-token.js";
import {
  type Caller,
  expectDomainError,
  must,
  ServiceHarness,
} from "../reservations/service-harness.js";

const HOLD_TTL_MS = 300_000;

describe("CatalogService on PostgreSQL", () => {
  let h: ServiceHarness;

  before(async () => {
    h = await ServiceHarness.start();
  });
  after(async () => {
    await h?.close();
  });

  async function admitted(concertId: string): Promise<Caller> {
    return h.admit(h.user("catalog"), { concertId });
  }

  async function hold(caller: Caller, seatId: string): Promise<Date> {
    const view = await h.services.reservations.hold(caller.principal, {
      seatId,
      requestId: `hold-${seatId}`,
    });
    return view.reservation.heldUntil;
  }

  async function sell(concertDateId: string, numbers: readonly number[]): Promise<void> {
    // A sold seat as the payment leaves it: SOLD, no hold, pointing at its reservation.
    await h.sql(
      `update seat set status = 'SOLD', held_until = null, reservation_id = gen_random_uuid(),
              version = version + 1
        where concert_date_id = $1 and number = any($2::int[])`,
      [concertDateId, numbers],
    );
  }

  async function listedNumbers(concertDateId: string, size = 0, token = ""): Promise<number[]> {
    const page = await h.services.catalog.listBookableSeats(concertDateId, size, token);
    return page.seats.map((seat) => seat.number);
  }

  /** Runs `work`, returning the SQL statements the ORM sent meanwhile. */
  async function capture(work: () => Promise<unknown>): Promise<string[]> {
    const knex = h.orm.em.getConnection().getKnex();
    const queries: string[] = [];
    const onQuery = (event: { sql: string }) => queries.push(event.sql);
    knex.on("query", onQuery);
    try {
      await work();
    } finally {
      knex.off("query", onQuery);
    }
    return queries;
  }

  describe("with many callers at once", () => {
    /** `n` concurrent calls of `call`. */
    const atOnce = <T>(call: () => Promise<T>, n = 25) =>
      Promise.all(Array.from({ length: n }, call));

    it("reads a fact not cached yet once, however many ask for it at the same time", async () => {
      const extra = await h.createConcert([
        { daysFromNow: 8, seats: 3 },
        { daysFromNow: 9, seats: 3 },
      ]);
      const [first, second] = [must(extra.dates[0]), must(extra.dates[1])];
      const { catalog } = h.services;

      const byCalendar = await capture(() =>
        atOnce(() => catalog.findDate(extra.concertId, first.date)),
      );
      expect(byCalendar).to.have.length(1);
      const byId = await capture(() => atOnce(() => catalog.dateFacts(second.id)));
      expect(byId).to.have.length(1);
      const exists = await capture(() => atOnce(() => catalog.concertExists(extra.concertId)));
      expect(exists).to.have.length(1);
      const seatId = await h.seatId(second.id, 2);
      const seats = await capture(() => atOnce(() => catalog.seatFacts(seatId)));
      // One read of the seat's date, then one of that date's seats.
      expect(seats).to.have.length(2);

      // Once cached, nobody reads them again.
      const again = await capture(() =>
        atOnce(async () => {
          await catalog.findDate(extra.concertId, first.date);
          await catalog.dateFacts(second.id);
          await catalog.concertExists(extra.concertId);
        }),
      );
      expect(again).to.deep.equal([]);
    });

    it("re-reads an expired list of dates once for everyone who finds it expired", async () => {
      const extra = await h.createConcert([{ daysFromNow: 8, seats: 3 }]);
      const { catalog } = h.services;
      const cold = await capture(() => atOnce(() => catalog.saleEnded(extra.concertId)));
      expect(cold).to.have.length(1);
      const fresh = await capture(() => atOnce(() => catalog.saleEnded(extra.concertId)));
      expect(fresh).to.deep.equal([]);
      h.clock.advance(1000);
      const expired = await capture(() => atOnce(() => catalog.saleEnded(extra.concertId)));
      expect(expired).to.have.length(1);
      expect(await atOnce(() => catalog.saleEnded(extra.concertId), 3)).to.deep.equal([
        false,
        false,
        false,
      ]);
    });
  });

  describe("listBookableDates", () => {
    it("lists the demo concert's three upcoming dates in order, 50 bookable seats each", async () => {
      const dates = await h.services.catalog.listBookableDates(h.concertId);
      expect(dates.map((d) => d.date.id)).to.deep.equal(h.dateIds);
      expect(dates.map((d) => d.availableSeats)).to.deep.equal([50, 50, 50]);
      const rows = await h.sql<{ id: string; date: string; seats: number }>(
        `select d.id, to_char(d.date, 'YYYY-MM-DD') as date, count(s.id)::int as seats
           from concert_date d join seat s on s.concert_date_id = d.id
          where d.concert_id = $1 group by d.id order by d.date`,
        [h.concertId],
      );
      expect(
        dates.map((d) => ({ id: d.date.id, date: d.date.date, seats: d.date.totalSeats })),
      ).to.deep.equal(rows);
      const calendar = dates.map((d) => d.date.date);
      expect(calendar).to.deep.equal([...calendar].sort());
    });

    it("leaves out dates that have started or passed and dates without seats", async () => {
      const extra = await h.createConcert([
        { daysFromNow: -1, seats: 5 },
        // Starts exactly now: no longer upcoming.
        { daysFromNow: 0, seats: 5 },
        { daysFromNow: 2, seats: 0 },
        { daysFromNow: 3, seats: 2 },
      ]);
      const dates = await h.services.catalog.listBookableDates(extra.concertId);
      expect(dates.map((d) => [d.date.id, d.availableSeats])).to.deep.equal([
        [must(extra.dates[3]).id, 2],
      ]);
    });

    it("drops a sold-out date and lists it again the moment an expired hold passes held_until", async () => {
      const extra = await h.createConcert([
        { daysFromNow: 4, seats: 3 },
        { daysFromNow: 5, seats: 2 },
      ]);
      const [a, b] = [must(extra.dates[0]), must(extra.dates[1])];
      const caller = await admitted(extra.concertId);
      const heldUntil = await hold(caller, await h.seatId(a.id, 1));
      await sell(a.id, [2, 3]);
      await sell(b.id, [1]);

      const soldOut = await h.services.catalog.listBookableDates(extra.concertId);
      expect(soldOut.map((d) => [d.date.id, d.availableSeats])).to.deep.equal([[b.id, 1]]);

      h.clock.set(heldUntil.getTime() - 1);
      const stillHeld = await h.services.catalog.listBookableDates(extra.concertId);
      expect(stillHeld.map((d) => d.date.id)).to.deep.equal([b.id]);

      h.clock.set(heldUntil);
      const freed = await h.services.catalog.listBookableDates(extra.concertId);
      expect(freed.map((d) => [d.date.id, d.availableSeats])).to.deep.equal([
        [a.id, 1],
        [b.id, 1],
      ]);
      expect(await listedNumbers(a.id)).to.deep.equal([1]);
      // Nothing swept the hold: time alone freed it.
      const [seat] = await h.sql<{ status: string; reservation_status: string }>(
        `select s.status, r.status as reservation_status
           from seat s join reservation r on r.id = s.reservation_id
          where s.concert_date_id = $1 and s.number = 1`,
        [a.id],
      );
      expect(seat).to.deep.equal({ status: "HELD", reservation_status: "HELD" });
    });

    it("refuses malformed and unknown concert ids", async () => {
      await expectDomainError(
        h.services.catalog.listBookableDates("nope"),
        "invalid_argument",
        "INVALID_ARGUMENT",
      );
      await expectDomainError(
        h.services.catalog.listBookableDates("00000000-0000-4000-8000-000000000000"),
        "not_found",
        "CONCERT_NOT_FOUND",
      );
    });
  });

  describe("listBookableSeats", () => {
    it("excludes sold seats and unexpired holds but lists expired holds, with grade and price", async () => {
      const extra = await h.createConcert([{ daysFromNow: 6, seats: 12 }]);
      const date = must(extra.dates[0]);
      await sell(date.id, [3, 7]);
      await hold(await admitted(extra.concertId), await h.seatId(date.id, 9));
      h.clock.advance(HOLD_TTL_MS + 1);
      await hold(await admitted(extra.concertId), await h.seatId(date.id, 5));

      const page = await h.services.catalog.listBookableSeats(date.id, 0, "");
      expect(page.nextPageToken).to.equal("");
      const rows = await h.sql<{ id: string; number: number; grade: string; price: string }>(
        `select id, number, grade, price::text as price from seat
          where concert_date_id = $1 and number <> all('{3,5,7}') order by number`,
        [date.id],
      );
      expect(rows.map((row) => row.number)).to.deep.equal([1, 2, 4, 6, 8, 9, 10, 11, 12]);
      expect(page.seats).to.deep.equal(
        rows.map((row) => ({ ...row, concertDateId: date.id, price: BigInt(row.price) })),
      );
    });

    it("pages by seat number with opaque tokens; the last page has an empty token", async () => {
      const extra = await h.createConcert([{ daysFromNow: 7, seats: 10 }]);
      const date = must(extra.dates[0]);
      await sell(date.id, [4]);

      const first = await h.services.catalog.listBookableSeats(date.id, 4, "");
      expect(first.seats.map((s) => s.number)).to.deep.equal([1, 2, 3, 5]);
      expect(first.nextPageToken).to.not.equal("");
      const second = await h.services.catalog.listBookableSeats(date.id, 4, first.nextPageToken);
      expect(second.seats.map((s) => s.number)).to.deep.equal([6, 7, 8, 9]);
      expect(second.nextPageToken).to.not.equal("");
      const last = await h.services.catalog.listBookableSeats(date.id, 4, second.nextPageToken);
      expect(last.seats.map((s) => s.number)).to.deep.equal([10]);
      expect(last.nextPageToken).to.equal("");

      // A last page that is exactly full still says "no more".
      const pages: number[][] = [];
      let token = "";
      do {
        const page = await h.services.catalog.listBookableSeats(date.id, 3, token);
        pages.push(page.seats.map((s) => s.number));
        token = page.nextPageToken;
      } while (token !== "" && pages.length < 10);
      expect(pages).to.deep.equal([
        [1, 2, 3],
        [5, 6, 7],
        [8, 9, 10],
      ]);
    });

    it("refuses bad page tokens, page sizes and date ids", async () => {
      const dateId = must(h.dateIds[0]);
      const badTokens = [
        "!!!",
        "abc",
        "a".repeat(600),
        encodePageToken({ x: 1 }),
        encodePageToken({ n: "5" }),
        encodePageToken({ t: 1, id: "x" }),
        Buffer.from('{"n":1.5}').toString("base64url"),
        Buffer.from("[]").toString("base64url"),
        Buffer.from("null").toString("base64url"),
      ];
      for (const token of badTokens) {
        const error = await expectDomainError(
          h.services.catalog.listBookableSeats(dateId, 10, token),
          "invalid_argument",
          "INVALID_ARGUMENT",
        );
        expect(
          error.violations.map((v) => v.field),
          token,
        ).to.deep.equal(["page_token"]);
      }
      for (const size of [-1, 5001, 2.5, Number.NaN]) {
        const error = await expectDomainError(
          h.services.catalog.listBookableSeats(dateId, size, ""),
          "invalid_argument",
          "INVALID_ARGUMENT",
        );
        expect(
          error.violations.map((v) => v.field),
          String(size),
        ).to.deep.equal(["page_size"]);
      }
      await expectDomainError(
        h.services.catalog.listBookableSeats("2030-01-08", 10, ""),
        "invalid_argument",
        "INVALID_ARGUMENT",
      );
      await expectDomainError(
        h.services.catalog.listBookableSeats("00000000-0000-4000-8000-000000000000", 10, ""),
        "not_found",
        "CONCERT_DATE_NOT_FOUND",
      );
      // Size 5000 (the maximum) is allowed.
      expect(
        (await h.services.catalog.listBookableSeats(dateId, 5000, "")).seats.length,
      ).to.be.greaterThan(0);
    });
  });

  describe("getSeat", () => {
    it("reports AVAILABLE, HELD and SOLD, and HELD turns AVAILABLE when the hold's time passes", async () => {
      const extra = await h.createConcert([{ daysFromNow: 8, seats: 3 }]);
      const date = must(extra.dates[0]);
      const [free, held, sold] = await Promise.all(
        [1, 2, 3].map((number) => h.seatId(date.id, number)),
      );
      const heldUntil = await hold(await admitted(extra.concertId), must(held));
      await sell(date.id, [3]);

      const freeView = await h.services.catalog.getSeat(must(free));
      expect(freeView).to.deep.equal({
        id: free,
        concertDateId: date.id,
        number: 1,
        grade: "R",
        price: 1001n,
        state: "AVAILABLE",
      });
      expect((await h.services.catalog.getSeat(must(held))).state).to.equal("HELD");
      expect((await h.services.catalog.getSeat(must(sold))).state).to.equal("SOLD");

      h.clock.set(heldUntil.getTime() - 1);
      expect((await h.services.catalog.getSeat(must(held))).state).to.equal("HELD");
      h.clock.set(heldUntil);
      expect((await h.services.catalog.getSeat(must(held))).state).to.equal("AVAILABLE");
      const [row] = await h.sql<{ status: string }>("select status from seat where id = $1", [
        held,
      ]);
      expect(row?.status, "the row is untouched until the sweeper runs").to.equal("HELD");
      expect((await h.services.catalog.getSeat(must(sold))).state).to.equal("SOLD");
    });

    it("refuses malformed and unknown seat ids", async () => {
      await expectDomainError(
        h.services.catalog.getSeat("seat-1"),
        "invalid_argument",
        "INVALID_ARGUMENT",
      );
      await expectDomainError(
        h.services.catalog.getSeat("00000000-0000-4000-8000-000000000000"),
        "not_found",
        "SEAT_NOT_FOUND",
      );
    });
  });

  describe("findDate", () => {
    it("refuses impossible or malformed dates and reports unknown ones as not found", async () => {
      for (const bad of [
        "2025-02-30",
        "2023-02-29",
        "2024-13-01",
        "2024-00-10",
        "2024-04-31",
        "0000-01-01",
        "2025-1-01",
        "20250101",
        "2025-01-01T00:00:00Z",
        " 2025-01-01",
        "",
      ]) {
        await expectDomainError(
          h.services.catalog.findDate(h.concertId, bad),
          "invalid_argument",
          "INVALID_ARGUMENT",
        );
      }
      await expectDomainError(
        h.services.catalog.findDate(h.concertId, "2099-12-31"),
        "not_found",
        "CONCERT_DATE_NOT_FOUND",
      );
      // A leap day is a real date; it just has no concert.
      await expectDomainError(
        h.services.catalog.findDate(h.concertId, "2032-02-29"),
        "not_found",
        "CONCERT_DATE_NOT_FOUND",
      );
    });

    it("finds a concert's date by calendar date, and only that concert's", async () => {
      const [row] = await h.sql<{ id: string; date: string; starts_at: Date; total_seats: number }>(
        `select id, to_char(date, 'YYYY-MM-DD') as date, starts_at, total_seats
           from concert_date where id = $1`,
        [h.dateIds[1]],
      );
      const expected = must(row);
      const found = await h.services.catalog.findDate(h.concertId, expected.date);
      expect({ ...found }).to.deep.equal({
        id: expected.id,
        concertId: h.concertId,
        date: expected.date,
        startsAt: expected.starts_at,
        totalSeats: expected.total_seats,
        salesCloseAt: null,
      });
      const extra = await h.createConcert([{ daysFromNow: 40, seats: 1 }]);
      await expectDomainError(
        h.services.catalog.findDate(h.concertId, must(extra.dates[0]).date),
        "not_found",
        "CONCERT_DATE_NOT_FOUND",
      );
    });
  });

  describe("a date of 50,000 seats", () => {
    let dateId = "";
    /** Every bookable seat number: all but each 10th (sold) and seat 2 (held). */
    const expected: number[] = [];
    for (let n = 1; n <= 50_000; n++) if (n % 10 !== 0 && n !== 2) expected.push(n);

    before(async () => {
      const extra = await h.createConcert([{ daysFromNow: 30, seats: 50_000 }]);
      const date = must(extra.dates[0]);
      dateId = date.id;
      await h.sql(
        `update seat set status = 'SOLD', reservation_id = gen_random_uuid(), version = 2
          where concert_date_id = $1 and number % 10 = 0`,
        [date.id],
      );
      await hold(await admitted(extra.concertId), await h.seatId(date.id, 2));
      // An expired hold that no sweeper has tidied is bookable.
      await h.sql(
        `update seat set status = 'HELD', held_until = $2, reservation_id = gen_random_uuid()
          where concert_date_id = $1 and number = 3`,
        [date.id, new Date(h.clock.ms() - 1000)],
      );
      // Fresh statistics and an all-visible table: the planner's best case
      // for an index-only scan of the covering partial index.
      await h.sql("vacuum (analyze) seat");
      // Date facts are cached after the first read; warm the cache so only the listing is counted.
      await h.services.catalog.findDate(extra.concertId, date.date);
    });

    it("lists exactly the bookable seats, whole or page by page, with no query once the listing is built", async () => {
      let availability = await h.services.catalog.availability(dateId);
      const [bookable] = await h.sql<{ count: number }>(
        `select count(*)::int as count from seat
          where concert_date_id = $1 and (status = 'AVAILABLE' or (status = 'HELD' and held_until <= $2))`,
        [dateId, h.clock.now()],
      );
      expect(bookable?.count).to.equal(expected.length);
      expect(availability.count).to.equal(expected.length);
      expect(availability.blocks.flatMap((block) => block.numbers)).to.deep.equal(expected);

      // Built once: listing it again, whole or page by page, sends no query.
      const paged: number[] = [];
      let token = "";
      let calls = 0;
      const queries = await capture(async () => {
        availability = await h.services.catalog.availability(dateId);
        do {
          const page = await h.services.catalog.listBookableSeats(dateId, 5000, token);
          paged.push(...page.seats.map((seat) => seat.number));
          token = page.nextPageToken;
          calls += 1;
        } while (token !== "" && calls < 20);
      });
      expect(queries).to.deep.equal([]);
      expect(calls).to.equal(9);
      expect(paged).to.deep.equal(expected);
    });

    it("hands out the same listing until a seat changes, and then renews only that seat's block", async () => {
      const before = await h.services.catalog.availability(dateId);
      expect(await h.services.catalog.availability(dateId)).to.equal(before);

      const extraConcertId = (
        await h.sql<{ concert_id: string }>("select concert_id from concert_date where id = $1", [
          dateId,
        ])
      )[0]?.concert_id;
      await hold(await admitted(must(extraConcertId)), await h.seatId(dateId, 40_001));

      const after = await h.services.catalog.availability(dateId);
      expect(after).to.not.equal(before);
      expect(after.count).to.equal(before.count - 1);
      const changed = after.blocks.filter((block, i) => block !== before.blocks[i]);
      expect(changed).to.have.length(1);
      expect(changed[0]?.numbers).to.not.include(40_001);
    });
  });
});
