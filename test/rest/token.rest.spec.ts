import { expect } from "chai";
import { clientFor } from "../support/clients.js";
import { FakeClock } from "../support/fake-clock.js";
import { reportRedisSkipped, testRedisUrl } from "../support/redis.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import {
  eventually,
  expectError,
  expectOk,
  ISO_TIMESTAMP,
  issueToken,
  rest,
  uniqueUser,
} from "./rest-client.js";

describe("REST POST /api/token", () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server?.stop();
  });

  it("answers 200 {token, queuePosition, expirationTime} and admits at once while slots are free", async () => {
    const before = Date.now();
    const body = expectOk(
      await rest(server.url, "POST", "/api/token", { json: { userId: uniqueUser("tok") } }),
    );
    expect(Object.keys(body).sort()).to.deep.equal(["expirationTime", "queuePosition", "token"]);
    expect(body.token).to.be.a("string");
    // At least 128 bits of secret, whatever the encoding.
    expect(String(body.token).length).to.be.at.least(22);
    expect(body.queuePosition).to.equal(0);
    expect(body.expirationTime).to.be.a("string").and.match(ISO_TIMESTAMP);
    // An admitted user's token lives TOKEN_TTL_SECONDS (default 600 s) from now.
    const expiresAt = Date.parse(String(body.expirationTime));
    expect(expiresAt).to.be.greaterThan(before + 590_000);
    expect(expiresAt).to.be.at.most(Date.now() + 601_000);
  });

  it("returns the same token with its position when called again while it is live", async () => {
    const userId = uniqueUser("again");
    const first = await issueToken(server.url, userId);
    const second = await issueToken(server.url, userId);
    expect(second.token).to.equal(first.token);
    expect(second.queuePosition).to.equal(0);
    expect(second.expirationTime).to.equal(first.expirationTime);
  });

  it("gives different users different tokens", async () => {
    const a = await issueToken(server.url, uniqueUser("a"));
    const b = await issueToken(server.url, uniqueUser("b"));
    expect(a.token).to.not.equal(b.token);
  });

  it("accepts a user id of exactly 128 characters", async () => {
    const userId = uniqueUser("x").padEnd(128, "x");
    expect(userId.length).to.equal(128);
    await issueToken(server.url, userId);
  });

  it("accepts a multi-byte user id of 128 characters", async () => {
    const korean = `${"한".repeat(120)}${uniqueUser("").slice(1, 9)}`;
    expect([...korean].length).to.equal(128);
    await issueToken(server.url, korean);
    // Characters outside the BMP count once each, though they are two UTF-16 units.
    const emoji = `${"🎵".repeat(120)}${uniqueUser("").slice(1, 9)}`;
    expect([...emoji].length).to.equal(128);
    await issueToken(server.url, emoji);
  });

  const badUserIds: [string, unknown][] = [
    ["an empty string", ""],
    ["129 characters", "u".repeat(129)],
    ["129 multi-byte characters", "🎵".repeat(129)],
    ["a number", 42],
    ["null", null],
    ["an array", ["alice"]],
    ["an object", { id: "alice" }],
    ["a boolean", true],
    ["a control character", "a\u0000b"],
    // Not a character at all: PostgreSQL would store it as U+FFFD, merging
    // this user with every other such id (see the wallet suite).
    ["a lone surrogate", "\ud800"],
  ];
  for (const [what, userId] of badUserIds) {
    it(`answers 400 for a user id that is ${what}`, async () => {
      expectError(await rest(server.url, "POST", "/api/token", { json: { userId } }), 400);
    });
  }

  it("answers 400 when the user id is missing", async () => {
    expectError(await rest(server.url, "POST", "/api/token", { json: {} }), 400);
    expectError(await rest(server.url, "POST", "/api/token", { json: { user: "alice" } }), 400);
  });

  it("answers 400 for a body that is not a JSON object", async () => {
    const headers = { "content-type": "application/json" };
    for (const raw of ["{", '{"userId": "a",}', "", "not json", '"alice"', "[]", "null", "42"]) {
      const response = await rest(server.url, "POST", "/api/token", { raw, headers });
      expect(response.status, `body ${JSON.stringify(raw)}`).to.equal(400);
      expectError(response, 400);
    }
  });

  it("answers 415 with an error body for a body that is not declared JSON", async () => {
    const raw = JSON.stringify({ userId: uniqueUser("ct") });
    for (const type of ["text/plain", "application/x-www-form-urlencoded"]) {
      expectError(
        await rest(server.url, "POST", "/api/token", { raw, headers: { "content-type": type } }),
        415,
      );
    }
    // No content type at all is not JSON either.
    expectError(await rest(server.url, "POST", "/api/token", { raw }), 415);
  });

  it("accepts a JSON content type with a charset", async () => {
    const response = await rest(server.url, "POST", "/api/token", {
      raw: JSON.stringify({ userId: uniqueUser("charset") }),
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    expect(expectOk(response).queuePosition).to.equal(0);
  });

  for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
    it(`answers 405 with an error body to ${method}`, async () => {
      const response = await rest(server.url, method, "/api/token");
      expectError(response, 405);
      expect(response.headers.get("allow")).to.equal("POST");
    });
  }
});

/** QUEUE_IDLE_SECONDS's default, in ms. */
const IDLE_MS = 30_000;

function oneSlotSuite(queue: "memory" | "redis"): void {
  describe(`REST POST /api/token with one admission slot (QUEUE_MAX_ACTIVE=1, ${queue} queue)`, () => {
    // The fake clock only drives idle eviction here; promotion still runs on its ticker.
    const clock = new FakeClock();
    let server: TestServer;

    before(async () => {
      server = await startTestServer({ queue, clock, env: { QUEUE_MAX_ACTIVE: "1" } });
    });
    after(async () => {
      await server?.stop();
    });

    it("reports the live rank among waiting users and promotes as the slot frees", async () => {
      const first = await issueToken(server.url, uniqueUser("first"));
      expect(first.queuePosition).to.equal(0);
      const secondUser = uniqueUser("second");
      const thirdUser = uniqueUser("third");
      const second = await issueToken(server.url, secondUser);
      const third = await issueToken(server.url, thirdUser);
      expect(second.queuePosition).to.equal(1);
      expect(third.queuePosition).to.equal(2);
      expect(new Set([first.token, second.token, third.token]).size).to.equal(3);

      // Calling again while waiting returns the same token and the same rank.
      const secondAgain = await issueToken(server.url, secondUser);
      expect(secondAgain.token).to.equal(second.token);
      expect(secondAgain.queuePosition).to.equal(1);

      // The admitted user leaves (through the RPC; REST has no leave route):
      // the rank is live, so the next calls see everyone move up.
      await clientFor("connect", server.url, first.token).queue.leaveQueue({});
      const promoted = await eventually(async () => {
        const again = await issueToken(server.url, secondUser);
        return again.queuePosition === 0 ? again : undefined;
      }, "the second user to be admitted");
      expect(promoted.token).to.equal(second.token);
      const thirdAgain = await issueToken(server.url, thirdUser);
      expect(thirdAgain.token).to.equal(third.token);
      expect(thirdAgain.queuePosition).to.equal(1);
      // Leave the slot and the line empty for the next test.
      await clientFor("connect", server.url, promoted.token).queue.leaveQueue({});
      await clientFor("connect", server.url, third.token).queue.leaveQueue({});
    });

    it("keeps a waiting user's place while they poll it, and drops it once they stop", async () => {
      const holder = await issueToken(server.url, uniqueUser("holder"));
      expect(holder.queuePosition).to.equal(0);
      const pollerUser = uniqueUser("poller");
      const poller = await issueToken(server.url, pollerUser);
      expect(poller.queuePosition).to.equal(1);

      // Polling more often than QUEUE_IDLE_SECONDS keeps the same token and place.
      for (let i = 0; i < 3; i++) {
        clock.advance(IDLE_MS - 10_000);
        const again = await issueToken(server.url, pollerUser);
        expect(again.token).to.equal(poller.token);
        expect(again.queuePosition).to.equal(1);
      }

      // Silent for longer than that, the place is gone: asking again puts the
      // user at the back of the line with a new token.
      const laterUser = uniqueUser("later");
      const later = await issueToken(server.url, laterUser);
      expect(later.queuePosition).to.equal(2);
      clock.advance(IDLE_MS - 10_000);
      await issueToken(server.url, laterUser);
      clock.advance(20_000);
      const back = await issueToken(server.url, pollerUser);
      expect(back.token).to.not.equal(poller.token);
      expect(back.queuePosition).to.equal(2);
      expect((await issueToken(server.url, laterUser)).queuePosition).to.equal(1);
      expectError(
        await rest(server.url, "GET", `/api/balance?userId=${pollerUser}`, {
          bearer: poller.token,
        }),
        401,
      );
    });
  });
}

oneSlotSuite("memory");
if (testRedisUrl) oneSlotSuite("redis");
else reportRedisSkipped("REST POST /api/token on the Redis queue");
