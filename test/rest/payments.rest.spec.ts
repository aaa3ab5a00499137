import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { FakeClock } from "../support/fake-clock.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import {
  admittedToken,
  currentBalance,
  demoPrice,
  expectError,
  expectErrorOneOf,
  expectPaid,
  type Hold,
  holdSeat,
  listDates,
  listSeats,
  must,
  pay,
  recharge,
  rest,
  uniqueUser,
} from "./rest-client.js";

/** HOLD_TTL_SECONDS and TOKEN_TTL_SECONDS defaults, in ms. */
const HOLD_TTL_MS = 300_000;
const TOKEN_TTL_MS = 600_000;

/** A user with an admitted token, holding one seat, and (optionally) a recharged wallet. */
interface Buyer {
  readonly userId: string;
  readonly token: string;
  readonly hold: Hold;
}

describe("REST POST /api/payments", () => {
  // A fake clock lets holds and tokens expire without waiting.
  const clock = new FakeClock();
  let server: TestServer;
  let date: string;
  let nextSeat = 1;

  before(async () => {
    server = await startTestServer({ clock });
    date = must((await listDates(server.url))[0]);
  });
  after(async () => {
    await server?.stop();
  });

  /** A fresh user holding the next unused seat, with `funds` recharged (none when 0). */
  async function buyer(label: string, funds: "price" | number = "price"): Promise<Buyer> {
    const userId = uniqueUser(label);
    const token = await admittedToken(server.url, userId);
    const seatNumber = nextSeat++;
    const hold = await holdSeat(server.url, { userId, token, date, seatNumber });
    expect(hold.price).to.equal(demoPrice(seatNumber));
    const amount = funds === "price" ? hold.price : funds;
    if (amount > 0) await recharge(server.url, { userId, token, amount });
    return { userId, token, hold };
  }

  function payFor(b: Buyer, amount = b.hold.price) {
    return pay(server.url, {
      userId: b.userId,
      token: b.token,
      reservationId: b.hold.reservationId,
      amount,
    });
  }

  it("pays a held seat: 200 {paymentId, status: Completed}, debits exactly the price", async () => {
    const b = await buyer("payer", 200_000);
    const paymentId = expectPaid(await payFor(b));
    expect(paymentId).to.match(/^[0-9a-f-]{36}$/);
    expect(await currentBalance(server.url, b)).to.equal(200_000 - b.hold.price);
    expect(await listSeats(server.url, date)).to.not.include(String(nextSeat - 1));
  });

  it("accepts the token as a body field", async () => {
    const b = await buyer("field");
    const response = await rest(server.url, "POST", "/api/payments", {
      json: {
        userId: b.userId,
        reservationId: b.hold.reservationId,
        amount: b.hold.price,
        token: b.token,
      },
    });
    expectPaid(response);
    expect(await currentBalance(server.url, b)).to.equal(0);
  });

  it("answers a repeat of the same payment with the same paymentId and never charges twice", async () => {
    const b = await buyer("repeat", 500_000);
    const first = expectPaid(await payFor(b));
    const again = expectPaid(await payFor(b));
    expect(again).to.equal(first);
    expect(await currentBalance(server.url, b)).to.equal(500_000 - b.hold.price);
  });

  it("charges once when the same payment arrives several times at once", async () => {
    const b = await buyer("burst", 1_000_000);
    const responses = await Promise.all(Array.from({ length: 5 }, () => payFor(b)));
    const ids = new Set<string>();
    for (const response of responses) {
      // A concurrent repeat may replay the first result or be refused as a conflict.
      if (response.status === 200) ids.add(expectPaid(response));
      else expectError(response, 409);
    }
    expect(ids.size).to.equal(1);
    expect(await currentBalance(server.url, b)).to.equal(1_000_000 - b.hold.price);
  });

  it("refuses to pay an already-paid reservation again with a different amount, charging nothing", async () => {
    const b = await buyer("twice", 1_000_000);
    expectPaid(await payFor(b));
    const after = 1_000_000 - b.hold.price;
    for (const amount of [b.hold.price + 1, b.hold.price - 1]) {
      expectErrorOneOf(await payFor(b, amount), [400, 409]);
    }
    expect(await currentBalance(server.url, b)).to.equal(after);
  });

  describe("400", () => {
    it("refuses an amount other than the seat's price, debits nothing, and still lets the right amount pay", async () => {
      const b = await buyer("mismatch", 1_000_000);
      for (const amount of [b.hold.price - 1, b.hold.price + 1, 1]) {
        expectError(await payFor(b, amount), 400);
      }
      expect(await currentBalance(server.url, b)).to.equal(1_000_000);
      expectPaid(await payFor(b));
      expect(await currentBalance(server.url, b)).to.equal(1_000_000 - b.hold.price);
    });

    it("refuses malformed amounts", async () => {
      const b = await buyer("malformed");
      for (const amount of [0, -b.hold.price, 1.5, String(b.hold.price), null]) {
        expectError(await payFor(b, amount as number), 400);
      }
      expectError(
        await rest(server.url, "POST", "/api/payments", {
          json: { userId: b.userId, reservationId: b.hold.reservationId },
          bearer: b.token,
        }),
        400,
      );
      expect(await currentBalance(server.url, b)).to.equal(b.hold.price);
    });

    it("refuses when the balance is too low and debits nothing", async () => {
      const b = await buyer("poor", 0);
      await recharge(server.url, { userId: b.userId, token: b.token, amount: b.hold.price - 1 });
      expectError(await payFor(b), 400);
      expect(await currentBalance(server.url, b)).to.equal(b.hold.price - 1);
      // Topping up by one makes the same payment go through.
      await recharge(server.url, { userId: b.userId, token: b.token, amount: 1 });
      expectPaid(await payFor(b));
      expect(await currentBalance(server.url, b)).to.equal(0);
    });

    it("refuses a user who never recharged", async () => {
      const b = await buyer("walletless", 0);
      expectError(await payFor(b), 400);
      // Their wallet is empty, and stays so.
      expect(await currentBalance(server.url, b)).to.equal(0);
    });
  });

  describe("401", () => {
    it("refuses an unknown reservation: a random UUID or a malformed id", async () => {
      const b = await buyer("unknown");
      for (const reservationId of [
        randomUUID(),
        "abc",
        "",
        "not-a-uuid-but-36-characters-long!!!",
      ]) {
        expectError(
          await pay(server.url, {
            userId: b.userId,
            token: b.token,
            reservationId,
            amount: b.hold.price,
          }),
          401,
        );
      }
      expect(await currentBalance(server.url, b)).to.equal(b.hold.price);
    });

    it("refuses a malformed id of 36 hex digits and dashes like any other unknown reservation", async () => {
      const b = await buyer("lookalike-id");
      // The router's shape check lets these through to the service, which
      // answers 400 "must be a UUID" instead of the 401 every other unknown id gets.
      for (const reservationId of ["------------------------------------", "0".repeat(36)]) {
        expectError(
          await pay(server.url, {
            userId: b.userId,
            token: b.token,
            reservationId,
            amount: b.hold.price,
          }),
          401,
        );
      }
      expect(await currentBalance(server.url, b)).to.equal(b.hold.price);
    });

    it("refuses a repeat of someone else's paid payment instead of replaying it", async () => {
      const owner = await buyer("paid-owner");
      const ownerPayment = expectPaid(await payFor(owner));
      const copycat = await buyer("copycat", 1_000_000);
      const response = await pay(server.url, {
        userId: copycat.userId,
        token: copycat.token,
        reservationId: owner.hold.reservationId,
        amount: owner.hold.price,
      });
      expectError(response, 401);
      expect(response.text).to.not.include(ownerPayment);
      expect(await currentBalance(server.url, copycat)).to.equal(1_000_000);
    });

    it("refuses someone else's reservation, charging neither user", async () => {
      const owner = await buyer("owner");
      const thief = await buyer("thief", 1_000_000);
      expectError(
        await pay(server.url, {
          userId: thief.userId,
          token: thief.token,
          reservationId: owner.hold.reservationId,
          amount: owner.hold.price,
        }),
        401,
      );
      expect(await currentBalance(server.url, thief)).to.equal(1_000_000);
      expect(await currentBalance(server.url, owner)).to.equal(owner.hold.price);
      // The owner can still pay for it.
      expectPaid(await payFor(owner));
    });

    it("refuses a userId other than the token's user", async () => {
      const owner = await buyer("named");
      const other = await buyer("other");
      for (const token of [other.token, "garbage"]) {
        expectError(
          await pay(server.url, {
            userId: owner.userId,
            token,
            reservationId: owner.hold.reservationId,
            amount: owner.hold.price,
          }),
          401,
        );
      }
      expect(await currentBalance(server.url, owner)).to.equal(owner.hold.price);
    });

    it("refuses a payment without a token", async () => {
      const b = await buyer("tokenless");
      expectError(
        await rest(server.url, "POST", "/api/payments", {
          json: { userId: b.userId, reservationId: b.hold.reservationId, amount: b.hold.price },
        }),
        401,
      );
      expect(await currentBalance(server.url, b)).to.equal(b.hold.price);
    });
  });

  describe("expiry", () => {
    it("answers 409 once the hold has expired, debits nothing, and frees the seat", async () => {
      const b = await buyer("slow");
      const seat = String(nextSeat - 1);
      expect(await listSeats(server.url, date)).to.not.include(seat);
      clock.advance(HOLD_TTL_MS + 1_000);
      expectError(await payFor(b), 409);
      expect(await currentBalance(server.url, b)).to.equal(b.hold.price);
      expect(await listSeats(server.url, date)).to.include(seat);
    });

    it("answers 401 to every route once the token itself has expired", async () => {
      const b = await buyer("expired-token");
      clock.advance(TOKEN_TTL_MS + 1_000);
      expectError(await payFor(b), 401);
      expectError(
        await rest(server.url, "GET", `/api/balance?userId=${b.userId}`, { bearer: b.token }),
        401,
      );
      expectError(
        await rest(server.url, "POST", "/api/balance/recharge", {
          json: { userId: b.userId, amount: 1 },
          bearer: b.token,
        }),
        401,
      );
      expectError(
        await rest(server.url, "POST", "/api/reservations", {
          json: { userId: b.userId, token: b.token, date, seatNumber: 50 },
        }),
        401,
      );
      // A new token still reads the same wallet, untouched.
      const fresh = await admittedToken(server.url, b.userId);
      expect(fresh).to.not.equal(b.token);
      expect(await currentBalance(server.url, { userId: b.userId, token: fresh })).to.equal(
        b.hold.price,
      );
    });
  });

  it("answers 405 to GET", async () => {
    expectError(await rest(server.url, "GET", "/api/payments"), 405);
  });
});
