import { expect } from "chai";
import { FakeClock } from "../support/fake-clock.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import {
  admittedToken,
  expectError,
  holdSeat,
  issueToken,
  listDates,
  listSeats,
  must,
  type RestResponse,
  recharge,
  rest,
  uniqueUser,
} from "./rest-client.js";

/** Asserts the seed's error body with 429, `x-error-reason: RATE_LIMITED` and `Retry-After` in seconds. */
function expectRateLimited(response: RestResponse, retryAfterSeconds: number): void {
  expectError(response, 429);
  expect(response.headers.get("x-error-reason")).to.equal("RATE_LIMITED");
  expect(response.headers.get("retry-after")).to.equal(String(retryAfterSeconds));
}

/**
 * The REST routes are limited like their RPCs (the same limiter): 429 with
 * `Retry-After` and the seed's `{"error": …}` body, and a refused request
 * changes nothing. The servers run on a fake clock.
 */
describe("REST rate limits", () => {
  describe("per user", () => {
    let server: TestServer;
    let date: string;
    const clock = new FakeClock(Date.now());

    before(async () => {
      server = await startTestServer({
        clock,
        env: {
          TOKEN_TTL_SECONDS: "86400",
          HOLD_TTL_SECONDS: "3600",
          RATE_LIMIT_TOKEN_PER_USER: "2,1/h",
          RATE_LIMIT_HOLD_PER_USER: "1,1/h",
          RATE_LIMIT_PAYMENT_PER_USER: "2,4/h",
          RATE_LIMIT_TOKEN_PER_ADDRESS: "off",
          RATE_LIMIT_HOLD_PER_ADDRESS: "off",
          RATE_LIMIT_PAYMENT_PER_ADDRESS: "off",
        },
      });
      date = must((await listDates(server.url))[0], "a date");
    });
    after(async () => {
      await server?.stop();
    });

    it("POST /api/token: 429 with Retry-After past the user's budget", async () => {
      const userId = uniqueUser("rest-token");
      const first = await issueToken(server.url, userId);
      await issueToken(server.url, userId);
      const refused = await rest(server.url, "POST", "/api/token", { json: { userId } });
      expectRateLimited(refused, 3600);
      clock.advance(3_600_000);
      expect((await issueToken(server.url, userId)).token).to.equal(first.token);
    });

    it("POST /api/reservations: a refused hold leaves the seat listed free", async () => {
      const userId = uniqueUser("rest-hold");
      const token = await admittedToken(server.url, userId);
      await holdSeat(server.url, { userId, token, date, seatNumber: 7 });
      const refused = await rest(server.url, "POST", "/api/reservations", {
        json: { userId, token, date, seatNumber: 8 },
      });
      expectRateLimited(refused, 3600);
      expect(await listSeats(server.url, date)).to.include("8");
    });

    it("POST /api/balance/recharge and /api/payments: a refusal moves no money", async () => {
      const userId = uniqueUser("rest-pay");
      const token = await admittedToken(server.url, userId);
      const hold = await holdSeat(server.url, { userId, token, date, seatNumber: 45 });
      expect(await recharge(server.url, { userId, token, amount: 50_000 })).to.equal(50_000);
      expect(await recharge(server.url, { userId, token, amount: 50_000 })).to.equal(100_000);
      const refusedRecharge = await rest(server.url, "POST", "/api/balance/recharge", {
        json: { userId, amount: 50_000 },
        bearer: token,
      });
      // One more every 15 minutes.
      expectRateLimited(refusedRecharge, 900);
      const refusedPayment = await rest(server.url, "POST", "/api/payments", {
        json: { userId, reservationId: hold.reservationId, amount: hold.price },
        bearer: token,
      });
      expectRateLimited(refusedPayment, 900);
      const balance = await rest(
        server.url,
        "GET",
        `/api/balance?userId=${encodeURIComponent(userId)}`,
        { bearer: token },
      );
      expect(balance.body).to.deep.equal({ userId, currentBalance: 100_000 });
      expect(await listSeats(server.url, date)).to.not.include("45");
      clock.advance(900_000);
      const paid = await rest(server.url, "POST", "/api/payments", {
        json: { userId, reservationId: hold.reservationId, amount: hold.price },
        bearer: token,
      });
      expect(paid.status, paid.text).to.equal(200);
    });
  });

  describe("per client address behind a trusted proxy", () => {
    let server: TestServer;

    before(async () => {
      server = await startTestServer({
        clock: new FakeClock(Date.now()),
        env: {
          TRUSTED_PROXIES: "127.0.0.0/8, ::1",
          RATE_LIMIT_TOKEN_PER_ADDRESS: "2,1/min",
          RATE_LIMIT_TOKEN_PER_USER: "off",
        },
      });
    });
    after(async () => {
      await server?.stop();
    });

    it("limits each forwarded client address on its own", async () => {
      const from = (address: string) =>
        rest(server.url, "POST", "/api/token", {
          json: { userId: uniqueUser("fan") },
          headers: { "x-forwarded-for": `192.0.2.99, ${address}` },
        });
      expect((await from("198.51.100.1")).status).to.equal(200);
      expect((await from("198.51.100.1")).status).to.equal(200);
      expectRateLimited(await from("198.51.100.1"), 60);
      // The client-written entry (192.0.2.99) is not believed; the proxy-written one is.
      expect((await from("198.51.100.2")).status).to.equal(200);
      // Without the header, the trusted proxy's own address is the client.
      const direct = await rest(server.url, "POST", "/api/token", {
        json: { userId: uniqueUser("direct") },
      });
      expect(direct.status, direct.text).to.equal(200);
    });
  });
});
