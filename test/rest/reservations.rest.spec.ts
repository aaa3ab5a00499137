import { expect } from "chai";
import { startTestServer, type TestServer } from "../support/test-server.js";
import {
  admittedToken,
  demoPrice,
  expectError,
  expectOk,
  expectPaid,
  holdSeat,
  issueToken,
  listDates,
  listSeats,
  must,
  pay,
  recharge,
  rest,
  uniqueUser,
} from "./rest-client.js";

/** A token of the right shape that the server never issued. */
const UNKNOWN_TOKEN = `sdq_${"A".repeat(65)}`;

describe("REST POST /api/reservations", () => {
  let server: TestServer;
  let date: string;
  let otherDate: string;

  before(async () => {
    server = await startTestServer();
    const dates = await listDates(server.url);
    date = must(dates[0]);
    otherDate = must(dates[1]);
  });
  after(async () => {
    await server?.stop();
  });

  it("holds a seat: 200 {reservationId, status: Reserved, expirationTime, price}", async () => {
    for (const seatNumber of [3, 20, 40]) {
      const userId = uniqueUser("holder");
      const token = await admittedToken(server.url, userId);
      const before = Date.now();
      const hold = await holdSeat(server.url, { userId, token, date, seatNumber });
      // Each grade's price, as a JSON number.
      expect(hold.price).to.equal(demoPrice(seatNumber));
      // HOLD_TTL_SECONDS defaults to 300.
      const heldUntil = Date.parse(hold.expirationTime);
      expect(heldUntil).to.be.at.least(before + 299_000);
      expect(heldUntil).to.be.at.most(Date.now() + 301_000);
      expect(await listSeats(server.url, date)).to.not.include(String(seatNumber));
    }
  });

  it("gives each hold its own reservation id", async () => {
    const ids = new Set<string>();
    for (const seatNumber of [4, 5]) {
      const userId = uniqueUser("ids");
      const token = await admittedToken(server.url, userId);
      ids.add((await holdSeat(server.url, { userId, token, date, seatNumber })).reservationId);
    }
    expect(ids.size).to.equal(2);
  });

  it("accepts the token as Authorization: Bearer instead of the body field", async () => {
    const userId = uniqueUser("bearer");
    const token = await admittedToken(server.url, userId);
    const body = expectOk(
      await rest(server.url, "POST", "/api/reservations", {
        json: { userId, date, seatNumber: 41 },
        bearer: token,
      }),
    );
    expect(body.status).to.equal("Reserved");
    expect(body.price).to.equal(demoPrice(41));
  });

  describe("bad parameters (400)", () => {
    let userId: string;
    let token: string;

    before(async () => {
      userId = uniqueUser("bad-params");
      token = await admittedToken(server.url, userId);
    });

    const badSeats: [string, unknown][] = [
      ["0", 0],
      ["51 (past the last seat)", 51],
      ["-1", -1],
      ["1.5", 1.5],
      ['"5" (a string)', "5"],
      ["null", null],
      ["1e300", 1e300],
      ["an array", [5]],
    ];
    for (const [what, seatNumber] of badSeats) {
      it(`answers 400 for seatNumber ${what}`, async () => {
        expectError(
          await rest(server.url, "POST", "/api/reservations", {
            json: { userId, token, date, seatNumber },
          }),
          400,
        );
      });
    }

    it("answers 400 when seatNumber is missing", async () => {
      expectError(
        await rest(server.url, "POST", "/api/reservations", { json: { userId, token, date } }),
        400,
      );
    });

    for (const bad of ["2025-1-01", "abc", "2025-02-30", "2023-02-29", "", 20300101, null]) {
      it(`answers 400 for the date ${JSON.stringify(bad)}`, async () => {
        expectError(
          await rest(server.url, "POST", "/api/reservations", {
            json: { userId, token, date: bad, seatNumber: 10 },
          }),
          400,
        );
      });
    }

    it("answers 400 when the date is missing", async () => {
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          json: { userId, token, seatNumber: 10 },
        }),
        400,
      );
    });

    it("answers 400 for a valid date with no concert", async () => {
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          json: { userId, token, date: "2000-01-01", seatNumber: 10 },
        }),
        400,
      );
    });

    it("answers 400 for a malformed body and 415 for a non-JSON one", async () => {
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          raw: "{",
          headers: { "content-type": "application/json" },
        }),
        400,
      );
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          raw: JSON.stringify({ userId, token, date, seatNumber: 10 }),
          headers: { "content-type": "text/plain" },
        }),
        415,
      );
    });

    it("left the user free to hold a seat: no refused request held anything", async () => {
      const hold = await holdSeat(server.url, { userId, token, date, seatNumber: 10 });
      expect(hold.price).to.equal(demoPrice(10));
    });
  });

  describe("bad tokens (401)", () => {
    it("answers 401 without a token", async () => {
      const userId = uniqueUser("no-token");
      await admittedToken(server.url, userId);
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          json: { userId, date, seatNumber: 11 },
        }),
        401,
      );
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          json: { userId, date, seatNumber: 11, token: "" },
        }),
        401,
      );
    });

    it("answers 401 for a garbage or unknown token", async () => {
      const userId = uniqueUser("garbage");
      await admittedToken(server.url, userId);
      for (const token of ["garbage", UNKNOWN_TOKEN, 12345]) {
        expectError(
          await rest(server.url, "POST", "/api/reservations", {
            json: { userId, date, seatNumber: 11, token },
          }),
          401,
        );
      }
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          json: { userId, date, seatNumber: 11 },
          bearer: UNKNOWN_TOKEN,
        }),
        401,
      );
    });

    it("answers 401 for a token of another user, in the body or as a bearer", async () => {
      const victim = uniqueUser("victim");
      await admittedToken(server.url, victim);
      const thief = uniqueUser("thief");
      const thiefToken = await admittedToken(server.url, thief);
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          json: { userId: victim, date, seatNumber: 11, token: thiefToken },
        }),
        401,
      );
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          json: { userId: victim, date, seatNumber: 11 },
          bearer: thiefToken,
        }),
        401,
      );
      // A missing userId is no user at all.
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          json: { date, seatNumber: 11, token: thiefToken },
        }),
        401,
      );
      // Nothing was held: seat 11 is still free.
      expect(await listSeats(server.url, date)).to.include("11");
    });
  });

  describe("conflicts (409)", () => {
    it("answers 409 for a seat someone else holds, and the holder asking again with their hold", async () => {
      const first = uniqueUser("first");
      const firstToken = await admittedToken(server.url, first);
      const held = await holdSeat(server.url, {
        userId: first,
        token: firstToken,
        date,
        seatNumber: 43,
      });
      const second = uniqueUser("second");
      const secondToken = await admittedToken(server.url, second);
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          json: { userId: second, token: secondToken, date, seatNumber: 43 },
        }),
        409,
      );
      // A retry after a lost answer (no Idempotency-Key): the same hold, 200.
      const again = await holdSeat(server.url, {
        userId: first,
        token: firstToken,
        date,
        seatNumber: 43,
      });
      expect(again).to.deep.equal(held);
      // The refused user holds nothing, so they can take another seat.
      await holdSeat(server.url, { userId: second, token: secondToken, date, seatNumber: 44 });
    });

    it("answers 409 when the user already holds a seat, on any date", async () => {
      const userId = uniqueUser("greedy");
      const token = await admittedToken(server.url, userId);
      await holdSeat(server.url, { userId, token, date, seatNumber: 45 });
      for (const [d, seatNumber] of [
        [date, 46],
        [otherDate, 46],
      ] as const) {
        expectError(
          await rest(server.url, "POST", "/api/reservations", {
            json: { userId, token, date: d, seatNumber },
          }),
          409,
        );
      }
      expect(await listSeats(server.url, date)).to.include("46");
      expect(await listSeats(server.url, otherDate)).to.include("46");
    });

    it("answers 409 for a sold seat", async () => {
      const buyer = uniqueUser("buyer");
      const buyerToken = await admittedToken(server.url, buyer);
      const hold = await holdSeat(server.url, {
        userId: buyer,
        token: buyerToken,
        date,
        seatNumber: 47,
      });
      await recharge(server.url, { userId: buyer, token: buyerToken, amount: hold.price });
      expectPaid(
        await pay(server.url, {
          userId: buyer,
          token: buyerToken,
          reservationId: hold.reservationId,
          amount: hold.price,
        }),
      );
      const late = uniqueUser("late");
      const lateToken = await admittedToken(server.url, late);
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          json: { userId: late, token: lateToken, date, seatNumber: 47 },
        }),
        409,
      );
    });
  });

  it("answers 405 to GET", async () => {
    const response = await rest(server.url, "GET", "/api/reservations");
    expectError(response, 405);
    expect(response.headers.get("allow")).to.equal("POST");
  });
});

describe("REST POST /api/reservations with a waiting token (QUEUE_MAX_ACTIVE=1)", () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ env: { QUEUE_MAX_ACTIVE: "1" } });
  });
  after(async () => {
    await server?.stop();
  });

  it("answers 401 to a user still waiting in line, and holds nothing", async () => {
    const date = must((await listDates(server.url))[0]);
    await admittedToken(server.url, uniqueUser("admitted"));
    const waiter = uniqueUser("waiter");
    const waiting = await issueToken(server.url, waiter);
    expect(waiting.queuePosition).to.equal(1);
    expectError(
      await rest(server.url, "POST", "/api/reservations", {
        json: { userId: waiter, token: waiting.token, date, seatNumber: 1 },
      }),
      401,
    );
    expectError(
      await rest(server.url, "POST", "/api/reservations", {
        json: { userId: waiter, date, seatNumber: 1 },
        bearer: waiting.token,
      }),
      401,
    );
    expect(await listSeats(server.url, date)).to.include("1");
  });
});
