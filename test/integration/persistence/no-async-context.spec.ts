import { AsyncLocalStorage } from "node:async_hooks";
import { expect } from "chai";
import {
  expectPaid,
  holdSeat,
  issueToken,
  listDates,
  must,
  pay,
  recharge,
  uniqueUser,
} from "../../rest/rest-client.js";
import { startTestServer, type TestServer } from "../../support/test-server.js";

/**
 * On Node 20 the first AsyncLocalStorage context a process enters switches on
 * promise hooks for every promise it creates from then on (10–20% of the CPU
 * of a trivial RPC). MikroORM enters one in `em.transactional()`, so the
 * server demarcates its transactions itself (persistence/database.ts). This
 * keeps it that way: start-up, the background jobs and a whole purchase run
 * without entering any context.
 */
describe("no AsyncLocalStorage context in the server", () => {
  const entered: string[] = [];
  const { run, enterWith } = AsyncLocalStorage.prototype;
  let server: TestServer | undefined;

  before(() => {
    AsyncLocalStorage.prototype.run = function (
      this: AsyncLocalStorage<unknown>,
      ...args: unknown[]
    ) {
      entered.push(new Error("run").stack ?? "run");
      return (run as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof run;
    AsyncLocalStorage.prototype.enterWith = function (this: AsyncLocalStorage<unknown>, store) {
      entered.push(new Error("enterWith").stack ?? "enterWith");
      enterWith.call(this, store);
    };
  });
  after(async () => {
    AsyncLocalStorage.prototype.run = run;
    AsyncLocalStorage.prototype.enterWith = enterWith;
    await server?.stop();
  });

  it("starts, runs its jobs and sells a seat without entering one", async () => {
    server = await startTestServer();
    for (const job of server.services.jobs) await job.runOnce();
    const userId = uniqueUser("no-context");
    const { token } = await issueToken(server.url, userId);
    const date = must((await listDates(server.url))[0]);
    const hold = await holdSeat(server.url, { userId, token, date, seatNumber: 12 });
    await recharge(server.url, { userId, token, amount: hold.price });
    expectPaid(
      await pay(server.url, {
        userId,
        token,
        reservationId: hold.reservationId,
        amount: hold.price,
      }),
    );
    expect(entered, entered.join("\n\n")).to.deep.equal([]);
  });
});
