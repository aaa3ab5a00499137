import { expect } from "chai";
import type { Services } from "../../../server/src/container.js";
import { REQUEST_ID_RETENTION_MS } from "../../../server/src/jobs/background-jobs.js";
import { createLogger } from "../../../server/src/logger.js";
import { entities } from "../../../server/src/modules/entities.js";
import { pruneRequestIds } from "../../../server/src/modules/idempotency/index.js";
import { type Orm, openOrm } from "../../../server/src/persistence/orm.js";
import { analyzeGrowingTables } from "../../../server/src/persistence/table-statistics.js";
import { RaceDb } from "../../concurrency/race-support.js";
import { must, ServiceHarness } from "../reservations/service-harness.js";

const INSTANCES = 3;
const HOLDS = 90;
const HOUR = 3_600_000;

/**
 * The background jobs of three instances on one database, run at once, as
 * every instance runs them: each job is safe because its work is claimed row
 * by row (`FOR UPDATE SKIP LOCKED`: the hold sweeper and the request-id
 * pruner) or under a transaction-scoped advisory lock (table statistics), so
 * no row is worked on twice and no instance waits on another. (The queue
 * admitter's promotion is one atomic Redis script; the many-instances suite
 * runs it on three processes.)
 */
describe("background jobs of three instances on one database", () => {
  let h: ServiceHarness;
  const orms: Orm[] = [];
  let instances: Services[];
  const warnings: string[] = [];

  before(async () => {
    h = await ServiceHarness.start({ HOLD_TTL_SECONDS: "60" });
    const logger = createLogger("warn", { write: (line: string) => warnings.push(line) });
    instances = [h.graph({ HOLD_TTL_SECONDS: "60" }, { logger })];
    for (let i = 1; i < INSTANCES; i++) {
      // Each instance with a pool of its own, as separate processes have.
      const orm = await openOrm({ url: h.database.url, entities, poolMax: 4 });
      orms.push(orm);
      instances.push(h.graph({ HOLD_TTL_SECONDS: "60" }, { db: orm.em, logger }));
    }
  });

  after(async () => {
    for (const orm of orms) await orm.close();
    await h?.close();
  });

  it(`${INSTANCES} hold sweepers expire each of ${HOLDS} ended holds exactly once`, async () => {
    const extra = await h.createConcert([{ daysFromNow: 30, seats: HOLDS }]);
    const dateId = must(extra.dates[0], "date").id;
    const holder = must(instances[0], "instance");
    const reservationIds: string[] = [];
    for (let n = 1; n <= HOLDS; n++) {
      const caller = await h.admit(h.user(`sweep-${n}`), {
        concertId: extra.concertId,
        services: holder,
      });
      const view = await holder.reservations.hold(caller.principal, {
        seatId: await h.seatId(dateId, n),
        requestId: `sweep-${n}`,
      });
      reservationIds.push(view.reservation.id);
    }
    const before = await h.sql<{ id: string; version: number }>(
      "select id, version from seat where concert_date_id = $1 order by number",
      [dateId],
    );
    h.clock.advance(61_000);

    // Small batches, so the three interleave on the same rows.
    const expired = await Promise.all(
      instances.map(async (instance) => {
        let total = 0;
        for (;;) {
          const n = await instance.reservations.expireStaleHolds(4);
          if (n === 0) return total;
          total += n;
        }
      }),
    );
    expect(
      expired.reduce((a, b) => a + b, 0),
      `expired per instance: ${expired.join(", ")}`,
    ).to.equal(HOLDS);

    const reservations = await h.sql<{ status: string; ended: boolean }>(
      "select status, ended_at = held_until as ended from reservation where id = any($1::uuid[])",
      [reservationIds],
    );
    expect(reservations.filter((r) => r.status === "EXPIRED" && r.ended)).to.have.length(HOLDS);
    const after = await h.sql<{ id: string; version: number; status: string }>(
      "select id, version, status from seat where concert_date_id = $1 order by number",
      [dateId],
    );
    // Freed once each: a second expiry of the same hold would have moved the version twice.
    expect(after.map((seat) => [seat.status, seat.version])).to.deep.equal(
      before.map((seat) => ["AVAILABLE", seat.version + 1]),
    );
  });

  it(`${INSTANCES} request-id pruners delete each due claim once and keep the rest`, async () => {
    const now = h.clock.ms();
    const insert = (user: string, count: number, ageMs: number) =>
      h.sql(
        `insert into idempotency_key (user_id, request_id, operation, request_hash, result_id, created_at)
         select $1, 'r-' || n, 'pay', 'h', gen_random_uuid(), $2::timestamptz - n * interval '1 ms'
           from generate_series(1, $3::int) n`,
        [user, new Date(now - ageMs), count],
      );
    await insert("many-due", 3000, REQUEST_ID_RETENTION_MS + HOUR);
    await insert("many-kept", 200, HOUR);
    const before = new Date(now - REQUEST_ID_RETENTION_MS);
    const deleted = await Promise.all(
      [h.orm, ...orms].map((orm) => pruneRequestIds(orm.em.fork(), before, { batchSize: 50 })),
    );
    expect(
      deleted.reduce((a, b) => a + b, 0),
      `deleted per instance: ${deleted.join(", ")}`,
    ).to.equal(3000);
    const left = await h.sql<{ user_id: string; n: number }>(
      `select user_id, count(*)::int as n from idempotency_key
        where user_id like 'many-%' group by user_id`,
    );
    expect(left).to.deep.equal([{ user_id: "many-kept", n: 200 }]);
  });

  it(`${INSTANCES} statistics keepers never analyse a table twice at once`, async () => {
    await h.sql(
      `insert into wallet (user_id, balance, version, created_at, updated_at)
       select 'stats-many-' || n, 0, 0, now(), now() from generate_series(1, 3000) n`,
    );
    await h.sql("select pg_stat_force_next_flush()");
    const analysed = await Promise.all([h.orm, ...orms].map((orm) => analyzeGrowingTables(orm.em)));
    const all = analysed.flat();
    expect(new Set(all).size, `analysed: ${JSON.stringify(analysed)}`).to.equal(all.length);
  });

  it(`every job of ${INSTANCES} instances, run at once and again, fails nowhere and leaves the invariants`, async () => {
    h.clock.advance(REQUEST_ID_RETENTION_MS);
    for (let round = 0; round < 3; round++) {
      await Promise.all(instances.flatMap((instance) => instance.jobs.map((job) => job.runOnce())));
    }
    expect(warnings, "warnings logged by the jobs").to.deep.equal([]);
    const db = new RaceDb(h.database.url);
    try {
      await db.expectInvariants(h.clock.now());
    } finally {
      await db.close();
    }
  });
});
