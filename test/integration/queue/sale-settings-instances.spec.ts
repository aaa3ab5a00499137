import { QueueTokenState } from "@stagedoor/sdk";
import { expect } from "chai";
import pg from "pg";
import { drawOrder } from "../../../server/src/modules/queue/index.js";
import { must, newRequestId, pollUntil, uniqueUser } from "../../rpc/rpc-kit.js";
import { clientFor } from "../../support/clients.js";
import { createTestDatabase } from "../../support/postgres.js";
import {
  deleteKeys,
  reportRedisSkipped,
  testRedisUrl,
  uniqueKeyPrefix,
} from "../../support/redis.js";
import { startTestServer, type TestServer } from "../../support/test-server.js";

const OPS = { name: "ops" };

/**
 * Two server instances on one database and one Redis, both running their
 * admitters: a setting changed through one is enforced by the other (the
 * store holds it), the opening is drawn exactly once whichever admitter gets
 * there first, and its record is persisted once.
 */
if (testRedisUrl === undefined) {
  describe("sale settings across instances", () => {
    reportRedisSkipped("sale settings across instances");
  });
} else {
  const redisUrl = testRedisUrl;
  describe("sale settings across instances (one Redis, one database)", () => {
    let a: TestServer;
    let b: TestServer;
    let db: pg.Pool;
    const prefix = uniqueKeyPrefix();

    before(async () => {
      const database = await createTestDatabase();
      const env = { REDIS_KEY_PREFIX: prefix, QUEUE_MAX_ACTIVE: "2" };
      a = await startTestServer({ queue: "redis", env, database });
      // The database is dropped once, by the first instance's stop().
      b = await startTestServer({
        queue: "redis",
        env,
        database: { url: database.url, drop: async () => {} },
      });
      db = new pg.Pool({ connectionString: database.url, max: 2 });
    });
    after(async () => {
      await db?.end();
      await b?.stop();
      await a?.stop();
      await deleteKeys(redisUrl, prefix);
    });

    async function newConcert(server: TestServer): Promise<string> {
      const concert = await server.services.catalogAdmin.createConcert(OPS, {
        title: "Two instances",
        venue: "Hall",
        timeZone: "UTC",
        requestId: newRequestId(),
      });
      return concert.id;
    }

    it("enforces a pause set through one instance on the other, and resumes", async () => {
      const concertId = await newConcert(a);
      await a.services.saleSettings.pause(OPS, {
        concertId,
        requestId: newRequestId(),
        reason: "",
      });
      const fans = clientFor("connect", b.url);
      const issued = await fans.queue.issueQueueToken({ concertId, userId: uniqueUser("p") });
      expect(issued.status?.state).to.equal(QueueTokenState.WAITING);
      expect(issued.status?.admissionPaused).to.equal(true);
      await b.services.queue.promoteAll();
      const me = clientFor("connect", a.url, issued.token);
      expect((await me.queue.getQueueStatus({})).status?.state).to.equal(QueueTokenState.WAITING);
      await b.services.saleSettings.resume(OPS, { concertId, requestId: newRequestId() });
      await pollUntil(
        async () => (await me.queue.getQueueStatus({})).status?.state === QueueTokenState.ADMITTED,
        10_000,
        "admission after resume",
      );
    });

    it("draws the opening once across instances and records it once", async () => {
      const concertId = await newConcert(a);
      const opensAt = new Date(Date.now() + 1_500);
      await a.services.saleSettings.update(OPS, {
        concertId,
        requestId: newRequestId(),
        fields: ["opens_at"],
        opensAt,
        maxAdmitted: 0,
        admissionMs: 0,
        holdMs: 0,
      });
      const issued = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          clientFor("connect", i % 2 === 0 ? a.url : b.url).queue.issueQueueToken({
            concertId,
            userId: uniqueUser(`lobby-${i}`),
          }),
        ),
      );
      for (const r of issued) expect(r.status?.state).to.equal(QueueTokenState.LOBBY);
      await pollUntil(
        async () => (await a.services.saleSettings.get(concertId)).drawState === "drawn",
        15_000,
        "the draw",
      );
      const fromA = await a.services.saleSettings.openingDraw({
        concertId,
        pageSize: 0,
        pageToken: "",
      });
      const fromB = await b.services.saleSettings.openingDraw({
        concertId,
        pageSize: 0,
        pageToken: "",
      });
      expect(fromB).to.deep.equal(fromA);
      expect(fromA.lobbySize).to.equal(10);
      expect(fromA.drawnAt.getTime()).to.be.at.least(opensAt.getTime());
      expect(fromA.order).to.deep.equal(drawOrder(fromA.seed, fromA.order));
      // Both instances' recorders ran; the record is one row, the store's draw.
      await a.services.saleSettings.recordDraws();
      await b.services.saleSettings.recordDraws();
      const { rows } = await db.query<{ seed: string; lobby_size: number }>(
        "select seed, lobby_size from opening_draw where concert_id = $1",
        [concertId],
      );
      expect(rows).to.deep.equal([{ seed: fromA.seed, lobby_size: 10 }]);
      // Two admitted (QUEUE_MAX_ACTIVE), the first two of the draw.
      const states = await Promise.all(
        issued.map(async (r) => {
          const { status } = await clientFor("connect", b.url, r.token).queue.getQueueStatus({});
          return must(status);
        }),
      );
      const admitted = states.filter((s) => s.state === QueueTokenState.ADMITTED);
      expect(admitted).to.have.length(2);
      const places = states.map((s) => Number(s.position)).sort((x, y) => x - y);
      expect(places).to.deep.equal([0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    });
  });
}
