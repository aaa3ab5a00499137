import type { EntityManager } from "@mikro-orm/postgresql";
import { expect } from "chai";
import pg from "pg";
import { transaction } from "../../../server/src/persistence/database.js";
import { statement, TxConnection } from "../../../server/src/persistence/sql.js";
import { StatementPipeline } from "../../../server/src/persistence/statement-pipeline.js";
import { ServiceHarness } from "../reservations/service-harness.js";

/** Echoes its parameters in the types the hot paths use, as `pg` reads them back. */
const ECHO = statement<{ n: number; big: string; at_ms: number; doc: unknown; none: null }>(
  "test_pipeline_echo",
  `select $1::int as n, $2::bigint as big, (extract(epoch from $3::timestamptz) * 1000)::float8 as at_ms,
          $4::jsonb as doc, $5::text as none`,
);
const INSERT = statement<{ label: string }>(
  "test_pipeline_insert",
  "insert into pipeline_probe (label) values ($1) returning label",
);
const COUNT = statement<{ n: number }>(
  "test_pipeline_count",
  "select count(*)::int as n from pipeline_probe",
);

/** Waits for a transaction-scoped advisory lock. */
const LOCK = statement<never>(
  "test_pipeline_lock",
  "select pg_advisory_xact_lock($1)::text as locked",
);

/** The `pg` connection of `em`'s transaction, with a count of what is sent to it. */
async function spied(em: EntityManager): Promise<{ sent: unknown[]; restore(): void }> {
  const trx = em.getTransactionContext<{ client: { acquireConnection(): Promise<unknown> } }>();
  const client = (await trx?.client.acquireConnection()) as pg.ClientBase;
  const query = client.query;
  const sent: unknown[] = [];
  client.query = function (this: pg.ClientBase, ...args: unknown[]) {
    sent.push(args[0]);
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof client.query;
  return {
    sent,
    restore: () => {
      client.query = query;
    },
  };
}

describe("TxConnection pipelining (statements asked for in the same tick share a round trip)", () => {
  let h: ServiceHarness;

  before(async () => {
    h = await ServiceHarness.start();
    await h.sql("create table pipeline_probe (label text primary key)");
  });
  afterEach(async () => {
    await h.sql("delete from pipeline_probe");
  });
  after(async () => {
    await h?.close();
  });

  /** Runs `work` in a transaction whose statements are already prepared on its connection. */
  function warm<T>(work: (tx: TxConnection, em: EntityManager) => Promise<T>): Promise<T> {
    return transaction(h.orm.em, async (em) => {
      const tx = await TxConnection.of(em);
      await tx.all(ECHO, [0, "0", new Date(0), {}, null]);
      await tx.all(INSERT, ["warm-up"]);
      await tx.all(COUNT, []);
      return work(tx, em);
    });
  }

  it("sends statements asked for together in one round trip, in order, each with its own rows", async () => {
    const at = new Date("2026-12-07T10:00:00.123Z");
    await transaction(h.orm.em, async (em) => {
      const tx = await TxConnection.of(em);
      // Prepared on this connection first (one round trip each).
      await tx.all(ECHO, [0, "0", at, {}, null]);
      await tx.all(INSERT, ["first"]);
      await tx.all(COUNT, []);
      const spy = await spied(em);
      try {
        const [echo, a, b, count] = await Promise.all([
          tx.one(ECHO, [7, 9_007_199_254_740_993n, at, { seat: [1, 2] }, null]),
          tx.one(INSERT, ["a"]),
          tx.one(INSERT, ["b"]),
          tx.one(COUNT, []),
        ]);
        expect(spy.sent).to.have.length(1);
        expect(spy.sent[0]).to.be.instanceOf(StatementPipeline);
        // Read back exactly as `client.query` reads them.
        expect(echo).to.deep.equal({
          n: 7,
          big: "9007199254740993",
          at_ms: at.getTime(),
          doc: { seat: [1, 2] },
          none: null,
        });
        expect([a?.label, b?.label]).to.deep.equal(["a", "b"]);
        // The count ran after both inserts of the same round trip.
        expect(count?.n).to.equal(3);
      } finally {
        spy.restore();
      }
    });
    const rows = await h.sql<{ label: string }>("select label from pipeline_probe order by 1");
    expect(rows.map((row) => row.label)).to.deep.equal(["a", "b", "first"]);
  });

  it("gives the statement that fails its own error; the ones before it keep their rows, the ones after it did not run", async () => {
    let outcomes: PromiseSettledResult<unknown>[] = [];
    await warm(async (tx) => {
      await tx.all(INSERT, ["taken"]);
      outcomes = await Promise.allSettled([
        tx.one(INSERT, ["before"]),
        tx.one(INSERT, ["taken"]),
        tx.one(INSERT, ["after"]),
      ]);
    }).catch(() => undefined);
    expect(outcomes.map((o) => o.status)).to.deep.equal(["fulfilled", "rejected", "rejected"]);
    expect((outcomes[0] as PromiseFulfilledResult<{ label: string }>).value.label).to.equal(
      "before",
    );
    const [, failed, skipped] = outcomes as PromiseRejectedResult[];
    expect(failed?.reason.constructor.name).to.equal("UniqueConstraintViolationException");
    expect(String(skipped?.reason)).to.match(/not run: an earlier statement/);
    // The transaction was rolled back: nothing of it stayed.
    expect(await h.sql("select label from pipeline_probe")).to.deep.equal([]);
  });

  it("sends statements not yet prepared on the connection one round trip each, in order", async () => {
    const fresh = statement<{ x: number }>("test_pipeline_fresh", "select $1::int + 1 as x");
    await transaction(h.orm.em, async (em) => {
      const tx = await TxConnection.of(em);
      const spy = await spied(em);
      try {
        const rows = await Promise.all([
          tx.one(fresh, [1]),
          tx.one(fresh, [2]),
          tx.one(fresh, [3]),
        ]);
        expect(rows.map((row) => row?.x)).to.deep.equal([2, 3, 4]);
        expect(spy.sent).to.have.length(3);
        expect(spy.sent.some((sent) => sent instanceof StatementPipeline)).to.equal(false);
        // Now prepared: together again.
        spy.sent.length = 0;
        await Promise.all([tx.one(fresh, [1]), tx.one(fresh, [2])]);
        expect(spy.sent).to.have.length(1);
      } finally {
        spy.restore();
      }
    });
  });

  it("holds what is asked while a round trip is in flight, and sends it all together right after", async () => {
    // Another session holds the lock the first statement waits for, so that
    // statement stays in flight until the test lets it go.
    const other = new pg.Client({ connectionString: h.database.url });
    await other.connect();
    try {
      await other.query("select pg_advisory_lock(4242)");
      await warm(async (tx, em) => {
        await tx.one(LOCK, [4241]);
        const spy = await spied(em);
        try {
          const first = tx.one(LOCK, [4242]);
          // Asked for in two later ticks, while the first waits on the wire.
          await new Promise((resolve) => setImmediate(resolve));
          const x = tx.one(INSERT, ["x"]);
          await new Promise((resolve) => setImmediate(resolve));
          const rest = Promise.all([tx.one(INSERT, ["y"]), tx.one(COUNT, [])]);
          expect(spy.sent).to.have.length(1);
          await other.query("select pg_advisory_unlock(4242)");
          const [, inserted, [, count]] = await Promise.all([first, x, rest]);
          expect(inserted?.label).to.equal("x");
          expect(count?.n).to.equal(3);
          expect(spy.sent).to.have.length(2);
          expect(spy.sent[1]).to.be.instanceOf(StatementPipeline);
        } finally {
          spy.restore();
        }
      });
    } finally {
      await other.end();
    }
  });

  it("refuses a value it cannot send before anything goes out, and the connection stays usable", async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await warm(async (tx) => {
      const outcomes = await Promise.allSettled([
        tx.one(COUNT, []),
        tx.one(ECHO, [1, "1", new Date(), circular, null]),
        tx.one(COUNT, []),
      ]);
      expect(outcomes.map((o) => o.status)).to.deep.equal(["rejected", "rejected", "rejected"]);
      const [before, failed, after] = outcomes as PromiseRejectedResult[];
      expect(String(failed?.reason)).to.match(/circular/i);
      expect(String(before?.reason)).to.match(/not run/);
      expect(String(after?.reason)).to.match(/not run/);
      expect((await tx.one(COUNT, []))?.n).to.equal(1);
    });
  });
});
