import { randomBytes } from "node:crypto";
import { expect } from "chai";
import { loadConfig } from "../../../server/src/config.js";
import { buildServices, type Services, settingsFromConfig } from "../../../server/src/container.js";
import { createLogger } from "../../../server/src/logger.js";
import { seedDemoCatalog } from "../../../server/src/modules/catalog/demo-catalog.js";
import { entities } from "../../../server/src/modules/entities.js";
import { TrustUserVerifier } from "../../../server/src/modules/identity/user-verifier.js";
import {
  type QueueRedisClient,
  RedisQueueStore,
} from "../../../server/src/modules/queue/redis-queue-store.js";
import { migrateUp, type Orm, openOrm } from "../../../server/src/persistence/orm.js";
import { FakeClock } from "../../support/fake-clock.js";
import { createTestDatabase, type TestDatabase } from "../../support/postgres.js";
import {
  connectTestRedis,
  deleteKeys,
  reportRedisSkipped,
  testRedisUrl,
  uniqueKeyPrefix,
} from "../../support/redis.js";

/**
 * Two server instances on one PostgreSQL and one Redis, each with its own
 * cached listings: a seat one instance has answered as held or sold is never
 * listed as free by the other, and a release shows on both.
 */
describe("Seat listings across instances sharing Redis", () => {
  if (!testRedisUrl) {
    reportRedisSkipped("listings across instances");
    return;
  }
  const redisUrl = testRedisUrl;
  let database: TestDatabase;
  let orm: Orm;
  const clients: QueueRedisClient[] = [];
  const prefix = uniqueKeyPrefix();
  const clock = new FakeClock();
  let a: Services;
  let b: Services;
  let users = 0;

  async function instance(): Promise<Services> {
    const client = await connectTestRedis(redisUrl);
    clients.push(client);
    const settings = settingsFromConfig(
      loadConfig({ DATABASE_URL: database.url, AUTH_MODE: "trust", QUEUE_MAX_ACTIVE: "1000" }),
    );
    return buildServices({
      db: orm.em,
      store: new RedisQueueStore(client, settings.queue, prefix),
      tokenSecret: randomBytes(32),
      ticketKey: randomBytes(32),
      verifier: new TrustUserVerifier(),
      clock,
      logger: createLogger("silent"),
      settings,
    });
  }

  before(async () => {
    database = await createTestDatabase();
    orm = await openOrm({ url: database.url, entities, poolMax: 6 });
    await migrateUp(orm, database.url);
    await seedDemoCatalog(orm.em, clock.now());
    a = await instance();
    b = await instance();
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await orm?.close();
    await database?.drop();
    await deleteKeys(redisUrl, prefix);
  });

  async function admitted(services: Services) {
    users += 1;
    const concert = await services.catalog.defaultConcert();
    const { token } = await services.queue.issueToken({
      concertId: concert.id,
      userId: `fan-${users}`,
      assertion: undefined,
    });
    return (await services.queue.authenticate(token)).principal;
  }

  async function listed(services: Services, dateId: string): Promise<number[]> {
    const availability = await services.catalog.availability(dateId);
    return availability.blocks.flatMap((block) => block.numbers);
  }

  it("never lists on one instance a seat the other has answered as held or sold", async () => {
    const concert = await a.catalog.defaultConcert();
    const [date] = await a.catalog.listBookableDates(concert.id);
    const dateId = date?.date.id ?? "";
    const seat = await a.catalog.findSeat(dateId, 7);
    // Both instances have built and cached the date's listing.
    expect(await listed(a, dateId)).to.include(7);
    expect(await listed(b, dateId)).to.include(7);

    const fan = await admitted(a);
    const { reservation } = await a.reservations.hold(fan, { seatId: seat.id, requestId: "h-1" });
    expect(await listed(b, dateId)).to.not.include(7);
    expect((await b.catalog.getSeat(seat.id)).state).to.equal("HELD");

    // B refuses a rival from the shared gate, without asking the database.
    const rival = await admitted(b);
    let refusal: unknown;
    try {
      await b.reservations.hold(rival, { seatId: seat.id, requestId: "h-2" });
    } catch (error) {
      refusal = error;
    }
    expect((refusal as { reason?: string }).reason).to.equal("SEAT_UNAVAILABLE");

    await a.wallet.recharge(fan, { amount: reservation.price, requestId: "r-1" });
    await a.payments.pay(fan, {
      reservationId: reservation.id,
      amount: reservation.price,
      requestId: "p-1",
    });
    expect(await listed(b, dateId)).to.not.include(7);
    expect((await b.catalog.getSeat(seat.id)).state).to.equal("SOLD");
  });

  it("shows a release made on one instance on the other at once", async () => {
    const concert = await a.catalog.defaultConcert();
    const [date] = await a.catalog.listBookableDates(concert.id);
    const dateId = date?.date.id ?? "";
    const seat = await a.catalog.findSeat(dateId, 8);
    const fan = await admitted(a);
    const { reservation } = await a.reservations.hold(fan, { seatId: seat.id, requestId: "h-3" });
    expect(await listed(b, dateId)).to.not.include(8);
    await a.reservations.release(fan, { reservationId: reservation.id, requestId: "x-1" });
    expect(await listed(b, dateId)).to.include(8);
    const rival = await admitted(b);
    const won = await b.reservations.hold(rival, { seatId: seat.id, requestId: "h-4" });
    expect(won.reservation.userId).to.equal(rival.userId);
  });
});
