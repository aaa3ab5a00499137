import { expect } from "chai";
import { startTestServer, type TestServer } from "../support/test-server.js";
import {
  currentBalance,
  expectError,
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

describe("REST full flow: token → dates → seats → hold → recharge → pay", () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server?.stop();
  });

  it("books and pays a seat through the REST routes only", async () => {
    const userId = uniqueUser("fan");
    const { token, queuePosition } = await issueToken(server.url, userId);
    expect(queuePosition).to.equal(0);

    const dates = await listDates(server.url);
    expect(dates).to.have.length(3);
    const date = must(dates[2]);
    const seats = await listSeats(server.url, date);
    expect(seats).to.have.length(50);
    // Pick an R-grade seat from the listing, as a client would.
    const seat = must(seats.find((s) => Number(s) === 15));

    const hold = await holdSeat(server.url, { userId, token, date, seatNumber: Number(seat) });
    expect(hold.price).to.equal(110_000);
    expect(await listSeats(server.url, date)).to.not.include(seat);

    const start = 250_000;
    expect(await recharge(server.url, { userId, token, amount: start })).to.equal(start);
    expect(await currentBalance(server.url, { userId, token })).to.equal(start);

    expectPaid(
      await pay(server.url, {
        userId,
        token,
        reservationId: hold.reservationId,
        amount: hold.price,
      }),
    );

    // Sold: gone from the listing for good, and the balance is down by exactly the price.
    const after = await listSeats(server.url, date);
    expect(after).to.not.include(seat);
    expect(after).to.have.length(49);
    expect(await listDates(server.url)).to.deep.equal(dates);
    expect(await currentBalance(server.url, { userId, token })).to.equal(start - hold.price);

    // The token still reads the user's own wallet, but no longer admits a new hold.
    expectError(
      await rest(server.url, "POST", "/api/reservations", {
        json: { userId, token, date, seatNumber: 16 },
      }),
      401,
    );
    expect(await listSeats(server.url, date)).to.include("16");
  });

  it("issues a new token after the admission ended and revokes the old one", async () => {
    const userId = uniqueUser("returning");
    const first = await issueToken(server.url, userId);
    const date = must((await listDates(server.url))[0]);
    const hold = await holdSeat(server.url, { userId, token: first.token, date, seatNumber: 33 });
    await recharge(server.url, { userId, token: first.token, amount: hold.price });
    expectPaid(
      await pay(server.url, {
        userId,
        token: first.token,
        reservationId: hold.reservationId,
        amount: hold.price,
      }),
    );

    const second = await issueToken(server.url, userId);
    expect(second.token).to.not.equal(first.token);
    // Slots are free, so the user is admitted again at once.
    expect(second.queuePosition).to.equal(0);
    expectError(
      await rest(server.url, "GET", `/api/balance?userId=${userId}`, { bearer: first.token }),
      401,
    );
    expect(await currentBalance(server.url, { userId, token: second.token })).to.equal(0);
    // The new admission can hold again.
    await holdSeat(server.url, { userId, token: second.token, date, seatNumber: 34 });
  });
});
