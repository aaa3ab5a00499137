import { expect } from "chai";
import { pruneRequestIds } from "../../../server/src/modules/idempotency/index.js";
import { ServiceHarness } from "../reservations/service-harness.js";

const DAY = 86_400_000;

/**
 * pruneRequestIds on its own: batch after batch until nothing is due, never
 * past the cut-off, and never waiting on a row someone else holds.
 */
describe("pruneRequestIds on PostgreSQL", () => {
  let h: ServiceHarness;

  before(async () => {
    h = await ServiceHarness.start();
  });
  after(async () => {
    await h?.close();
  });
  beforeEach(async () => {
    await h.sql("delete from idempotency_key");
  });

  /** `count` claims of `userId`, created `ageMs` before the clock's now (oldest last). */
  async function claims(userId: string, count: number, ageMs: number): Promise<void> {
    await h.sql(
      `insert into idempotency_key (user_id, request_id, operation, request_hash, result_id, created_at)
       select $1, 'r-' || n, 'hold', 'h', gen_random_uuid(), $2::timestamptz - n * interval '1 ms'
         from generate_series(1, $3::int) n`,
      [userId, new Date(h.clock.ms() - ageMs), count],
    );
  }

  async function left(): Promise<Record<string, number>> {
    const rows = await h.sql<{ user_id: string; n: number }>(
      "select user_id, count(*)::int as n from idempotency_key group by user_id order by user_id",
    );
    return Object.fromEntries(rows.map((row) => [row.user_id, row.n]));
  }

  const cutoff = () => new Date(h.clock.ms() - DAY);

  it("deletes every due claim, batch after batch, and returns how many", async () => {
    await claims("due", 1234, 2 * DAY);
    await claims("fresh", 7, 0);
    expect(await pruneRequestIds(h.orm.em.fork(), cutoff(), { batchSize: 100 })).to.equal(1234);
    expect(await left()).to.deep.equal({ fresh: 7 });
    expect(await pruneRequestIds(h.orm.em.fork(), cutoff(), { batchSize: 100 })).to.equal(0);
  });

  it("keeps claims created at the cut-off or after it", async () => {
    const at = cutoff();
    await h.sql(
      `insert into idempotency_key (user_id, request_id, operation, request_hash, result_id, created_at)
       values ('edge', 'before', 'hold', 'h', gen_random_uuid(), $1::timestamptz - interval '1 ms'),
              ('edge', 'at', 'hold', 'h', gen_random_uuid(), $1),
              ('edge', 'after', 'hold', 'h', gen_random_uuid(), $1::timestamptz + interval '1 ms')`,
      [at],
    );
    expect(await pruneRequestIds(h.orm.em.fork(), at)).to.equal(1);
    const rows = await h.sql<{ request_id: string }>(
      "select request_id from idempotency_key order by request_id",
    );
    expect(rows.map((row) => row.request_id)).to.deep.equal(["after", "at"]);
  });

  it("stops after the current batch once asked to", async () => {
    await claims("due", 500, 2 * DAY);
    let batches = 0;
    const deleted = await pruneRequestIds(h.orm.em.fork(), cutoff(), {
      batchSize: 100,
      shouldStop: () => ++batches === 2,
    });
    expect(deleted).to.equal(200);
    expect(await left()).to.deep.equal({ due: 300 });
  });

  it("passes over a due row another transaction holds instead of waiting for it", async () => {
    await claims("due", 250, 2 * DAY);
    const client = await h.pool.connect();
    try {
      await client.query("begin");
      // Another pruner (another instance) is in the middle of deleting this one.
      await client.query(
        "select 1 from idempotency_key where user_id = 'due' and request_id = 'r-1' for update",
      );
      const deleted = await pruneRequestIds(h.orm.em.fork(), cutoff(), { batchSize: 100 });
      expect(deleted).to.equal(249);
      await client.query("rollback");
    } finally {
      client.release();
    }
    expect(await left()).to.deep.equal({ due: 1 });
    expect(await pruneRequestIds(h.orm.em.fork(), cutoff())).to.equal(1);
    expect(await left()).to.deep.equal({});
  });
});
