import { expect } from "chai";
import { startTestServer, type TestServer } from "../support/test-server.js";
import {
  admittedToken,
  currentBalance,
  expectError,
  expectOk,
  recharge,
  rest,
  uniqueUser,
} from "./rest-client.js";

/** WALLET_MAX_RECHARGE's default. */
const MAX_RECHARGE = 10_000_000;

describe("REST /api/balance/recharge and /api/balance", () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server?.stop();
  });

  describe("POST /api/balance/recharge", () => {
    it("answers 200 {userId, newBalance} and adds up successive recharges", async () => {
      const userId = uniqueUser("recharger");
      const token = await admittedToken(server.url, userId);
      expect(await recharge(server.url, { userId, token, amount: 50_000 })).to.equal(50_000);
      expect(await recharge(server.url, { userId, token, amount: 1 })).to.equal(50_001);
      expect(await currentBalance(server.url, { userId, token })).to.equal(50_001);
    });

    it("accepts the token as a body field", async () => {
      const userId = uniqueUser("field");
      const token = await admittedToken(server.url, userId);
      const body = expectOk(
        await rest(server.url, "POST", "/api/balance/recharge", {
          json: { userId, amount: 700, token },
        }),
      );
      expect(body).to.deep.equal({ userId, newBalance: 700 });
    });

    it("accepts exactly WALLET_MAX_RECHARGE", async () => {
      const userId = uniqueUser("max");
      const token = await admittedToken(server.url, userId);
      expect(await recharge(server.url, { userId, token, amount: MAX_RECHARGE })).to.equal(
        MAX_RECHARGE,
      );
    });

    describe("bad amounts (400), each changing nothing", () => {
      let userId: string;
      let token: string;

      before(async () => {
        userId = uniqueUser("bad-amount");
        token = await admittedToken(server.url, userId);
        await recharge(server.url, { userId, token, amount: 1_000 });
      });

      const badAmounts: [string, unknown][] = [
        ["0", 0],
        ["-1", -1],
        ["1.5", 1.5],
        ['"100" (a string)', "100"],
        ["null", null],
        ["above WALLET_MAX_RECHARGE", MAX_RECHARGE + 1],
        ["an unsafe integer", 2 ** 60],
        ["an object", { value: 100 }],
      ];
      for (const [what, amount] of badAmounts) {
        it(`answers 400 for the amount ${what}`, async () => {
          expectError(
            await rest(server.url, "POST", "/api/balance/recharge", {
              json: { userId, amount },
              bearer: token,
            }),
            400,
          );
        });
      }

      it("answers 400 when the amount is missing", async () => {
        expectError(
          await rest(server.url, "POST", "/api/balance/recharge", {
            json: { userId },
            bearer: token,
          }),
          400,
        );
      });

      it("left the balance as it was after every refused recharge", async () => {
        expect(await currentBalance(server.url, { userId, token })).to.equal(1_000);
      });
    });

    it("answers 401 without a token, with a garbage one, or with another user's", async () => {
      const victim = uniqueUser("victim");
      const victimToken = await admittedToken(server.url, victim);
      await recharge(server.url, { userId: victim, token: victimToken, amount: 5_000 });
      const thief = uniqueUser("thief");
      const thiefToken = await admittedToken(server.url, thief);

      expectError(
        await rest(server.url, "POST", "/api/balance/recharge", {
          json: { userId: victim, amount: 100 },
        }),
        401,
      );
      expectError(
        await rest(server.url, "POST", "/api/balance/recharge", {
          json: { userId: victim, amount: 100 },
          bearer: "garbage",
        }),
        401,
      );
      expectError(
        await rest(server.url, "POST", "/api/balance/recharge", {
          json: { userId: victim, amount: 100 },
          bearer: thiefToken,
        }),
        401,
      );
      expectError(
        await rest(server.url, "POST", "/api/balance/recharge", {
          json: { userId: victim, amount: 100, token: thiefToken },
        }),
        401,
      );
      expect(await currentBalance(server.url, { userId: victim, token: victimToken })).to.equal(
        5_000,
      );
      // Nor did the attempts credit the thief's own wallet.
      expect(await currentBalance(server.url, { userId: thief, token: thiefToken })).to.equal(0);
    });

    it("answers 405 to GET", async () => {
      expectError(await rest(server.url, "GET", "/api/balance/recharge"), 405);
    });
  });

  describe("GET /api/balance", () => {
    it("answers 200 {userId, currentBalance}", async () => {
      const userId = uniqueUser("reader");
      const token = await admittedToken(server.url, userId);
      await recharge(server.url, { userId, token, amount: 12_345 });
      const body = expectOk(
        await rest(server.url, "GET", `/api/balance?userId=${encodeURIComponent(userId)}`, {
          bearer: token,
        }),
      );
      expect(body).to.deep.equal({ userId, currentBalance: 12_345 });
    });

    it("answers 200 with a balance of 0 for a token holder who never recharged", async () => {
      const userId = uniqueUser("never");
      const token = await admittedToken(server.url, userId);
      const body = expectOk(
        await rest(server.url, "GET", `/api/balance?userId=${userId}`, { bearer: token }),
      );
      expect(body).to.deep.equal({ userId, currentBalance: 0 });
    });

    it("answers 401 without a token, with a garbage one, or with another user's", async () => {
      const owner = uniqueUser("owner");
      const ownerToken = await admittedToken(server.url, owner);
      await recharge(server.url, { userId: owner, token: ownerToken, amount: 9_000 });
      const snoop = uniqueUser("snoop");
      const snoopToken = await admittedToken(server.url, snoop);

      expectError(await rest(server.url, "GET", `/api/balance?userId=${owner}`), 401);
      expectError(
        await rest(server.url, "GET", `/api/balance?userId=${owner}`, { bearer: "garbage" }),
        401,
      );
      expectError(
        await rest(server.url, "GET", `/api/balance?userId=${owner}`, { bearer: snoopToken }),
        401,
      );
      // A malformed Authorization header is no token at all.
      expectError(
        await rest(server.url, "GET", `/api/balance?userId=${owner}`, {
          headers: { authorization: ownerToken },
        }),
        401,
      );
    });

    it("answers 401 when the userId is missing, even with a valid token", async () => {
      const userId = uniqueUser("anon");
      const token = await admittedToken(server.url, userId);
      await recharge(server.url, { userId, token, amount: 10 });
      expectError(await rest(server.url, "GET", "/api/balance", { bearer: token }), 401);
      expectError(await rest(server.url, "GET", "/api/balance?userId=", { bearer: token }), 401);
    });

    it("never shows one user's wallet to another whose id only looks alike once encoded", async () => {
      // "\ud800" is a lone UTF-16 surrogate; the PostgreSQL driver writes it
      // as U+FFFD, which is also a perfectly valid user id of its own.
      const oddUser = `${uniqueUser("odd")}\ud800`;
      const issued = await rest(server.url, "POST", "/api/token", { json: { userId: oddUser } });
      // Refusing such an id outright is the other correct answer.
      if (issued.status === 400) {
        expectError(issued, 400);
        return;
      }
      const oddToken = String(expectOk(issued).token);
      await recharge(server.url, { userId: oddUser, token: oddToken, amount: 777 });
      const lookalike = oddUser.replace("\ud800", "\ufffd");
      const lookalikeToken = await admittedToken(server.url, lookalike);
      expect(lookalikeToken).to.not.equal(oddToken);
      expectError(
        await rest(server.url, "GET", `/api/balance?userId=${encodeURIComponent(lookalike)}`, {
          bearer: lookalikeToken,
        }),
        404,
      );
    });

    it("answers 405 to POST", async () => {
      expectError(await rest(server.url, "POST", "/api/balance", { json: {} }), 405);
    });
  });
});
