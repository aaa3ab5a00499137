import { expect } from "chai";
import { startTestServer, type TestServer } from "../support/test-server.js";
import {
  admittedToken,
  expectError,
  expectOk,
  listDates,
  must,
  type RestResponse,
  rest,
  uniqueUser,
} from "./rest-client.js";

function expectNoStore(response: RestResponse): void {
  expect(response.headers.get("cache-control"), `${response.status} ${response.text}`).to.equal(
    "no-store",
  );
}

describe("REST routing, error bodies and caching", () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server?.stop();
  });

  for (const path of [
    "/api/",
    "/api/unknown",
    "/api/concerts",
    "/api/concerts/",
    "/api/token/",
    "/api/token/extra",
    "/api/balance/",
    "/api/payments/123",
    "/api/reservations/abc",
    "/api/TOKEN",
    "/api/nope?userId=a",
  ]) {
    it(`answers 404 {"error"} to GET and POST ${path}`, async () => {
      const get = await rest(server.url, "GET", path);
      expectError(get, 404);
      expectNoStore(get);
      const post = await rest(server.url, "POST", path, { json: { userId: "a" } });
      expectError(post, 404);
      expectNoStore(post);
    });
  }

  it('answers 404 {"error"} to /api without the trailing slash', async () => {
    expectError(await rest(server.url, "GET", "/api"), 404);
  });

  it("sends cache-control: no-store on successful answers of every route", async () => {
    const userId = uniqueUser("cache");
    const token = await admittedToken(server.url, userId);
    const date = must((await listDates(server.url))[0]);
    const responses = [
      await rest(server.url, "POST", "/api/token", { json: { userId } }),
      await rest(server.url, "GET", "/api/concerts/dates"),
      await rest(server.url, "GET", `/api/concerts/seats?date=${date}`),
      await rest(server.url, "POST", "/api/reservations", {
        json: { userId, token, date, seatNumber: 31 },
      }),
      await rest(server.url, "POST", "/api/balance/recharge", {
        json: { userId, amount: 80_000 },
        bearer: token,
      }),
      await rest(server.url, "GET", `/api/balance?userId=${userId}`, { bearer: token }),
    ];
    for (const response of responses) {
      expectOk(response);
      expectNoStore(response);
    }
  });

  it("sends cache-control: no-store on error answers (400, 401, 404, 405, 415)", async () => {
    const responses: [RestResponse, number][] = [
      [await rest(server.url, "POST", "/api/token", { json: { userId: "" } }), 400],
      [await rest(server.url, "GET", "/api/balance?userId=a"), 401],
      [await rest(server.url, "GET", "/api/concerts/seats?date=2000-01-01"), 404],
      [await rest(server.url, "GET", "/api/token"), 405],
      [await rest(server.url, "POST", "/api/token", { raw: "{}" }), 415],
    ];
    for (const [response, status] of responses) {
      expectError(response, status);
      expectNoStore(response);
    }
  });

  it("refuses an oversized body with an error body", async () => {
    const response = await rest(server.url, "POST", "/api/token", {
      json: { userId: "big", padding: "x".repeat(20 * 1024) },
    });
    expect(response.status).to.be.within(400, 499);
    expectError(response, response.status);
  });
});
