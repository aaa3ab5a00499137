import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { REQUEST_ID_RETENTION_MS } from "../../../server/src/jobs/background-jobs.js";
import type { IntervalJob } from "../../../server/src/jobs/interval-job.js";
import { claimRequestId, PRUNE_BATCH } from "../../../server/src/modules/idempotency/index.js";
import { transaction } from "../../../server/src/persistence/database.js";
import { TxConnection } from "../../../server/src/persistence/sql.js";
import { expectDomainError, must, ServiceHarness } from "../reservations/service-harness.js";

const HOUR = 3_600_000;

/**
 * The jobs as the server runs them (built by buildServices): each run opens
 * its own fork, and together they admit waiting users, tidy expired holds,
 * and prune request ids only after the promised 24 hours.
 */
describe("background jobs on PostgreSQL", () => {
  let h: ServiceHarness;
  let requests = 0;

  before(async () => {
    h = await ServiceHarness.start({
      QUEUE_MAX_ACTIVE: "1",
      HOLD_TTL_SECONDS: "60",
      // Admissions end quickly; waiting users never go idle in these tests.
      TOKEN_TTL_SECONDS: "10",
      QUEUE_IDLE_SECONDS: "3600",
    });
  });
  after(async () => {
    await h?.close();
  });

  function job(name: string): IntervalJob {
    return must(h.services.jobs.find((candidate) => candidate.name === name));
  }

  function requestId(): string {
    requests += 1;
    return `job-req-${requests}`;
  }

  it("admits the next user in line when a slot frees up (queue-admitter)", async () => {
    const first = await h.services.queue.issueToken({
      concertId: h.concertId,
      userId: h.user("first"),
      assertion: undefined,
    });
    const second = await h.services.queue.issueToken({
      concertId: h.concertId,
      userId: h.user("second"),
      assertion: undefined,
    });
    expect([first.status.state, second.status.state]).to.deep.equal(["admitted", "waiting"]);
    // The first admission expires by time; only the job notices and promotes.
    h.clock.advance(first.status.expireTime.getTime() - h.clock.ms() + 1);
    await job("queue-admitter").runOnce();
    const session = await h.services.queue.authenticate(second.token);
    expect(session.status.state).to.equal("admitted");
    await h.services.queue.leave(session.principal);
  });

  it("marks every expired hold EXPIRED and frees its seat (hold-sweeper)", async () => {
    const holders = [];
    for (let i = 0; i < 3; i++) {
      const wide = h.graph({ QUEUE_MAX_ACTIVE: "100", HOLD_TTL_SECONDS: "60" });
      const caller = await h.admit(h.user(`sleeper-${i}`), { services: wide });
      const seat = h.takeSeat();
      const view = await wide.reservations.hold(caller.principal, {
        seatId: seat.id,
        requestId: requestId(),
      });
      holders.push({ view, seat });
    }
    h.clock.advance(61_000);
    await job("hold-sweeper").runOnce();
    for (const { view, seat } of holders) {
      const [reservation] = await h.sql<{ status: string }>(
        "select status from reservation where id = $1",
        [view.reservation.id],
      );
      const [row] = await h.sql<{ status: string; reservation_id: string | null }>(
        "select status, reservation_id from seat where id = $1",
        [seat.id],
      );
      expect(reservation?.status).to.equal("EXPIRED");
      expect([row?.status, row?.reservation_id]).to.deep.equal(["AVAILABLE", null]);
    }
  });

  it("keeps request ids for the whole retention window and prunes them after (request-id-pruner)", async () => {
    expect(REQUEST_ID_RETENTION_MS).to.be.at.least(24 * HOUR);
    const now = h.clock.ms();
    const ages = { fresh: HOUR, day: 25 * HOUR, stale: REQUEST_ID_RETENTION_MS + HOUR };
    for (const [label, age] of Object.entries(ages)) {
      await h.sql(
        `insert into idempotency_key (user_id, request_id, operation, request_hash, result_id, created_at)
         values ($1, $2, 'pay', 'h', gen_random_uuid(), $3)`,
        ["pruned-user", label, new Date(now - age)],
      );
    }
    await job("request-id-pruner").runOnce();
    const left = await h.sql<{ request_id: string }>(
      "select request_id from idempotency_key where user_id = 'pruned-user' order by request_id",
    );
    expect(left.map((row) => row.request_id)).to.deep.equal(["day", "fresh"]);
  });

  /** Inserts `count` claims of one user, each `ageMs` old (plus a few ms, oldest first). */
  async function claimsAged(userId: string, count: number, ageMs: number): Promise<void> {
    await h.sql(
      `insert into idempotency_key (user_id, request_id, operation, request_hash, result_id, created_at)
       select $1, 'r-' || n, 'pay', 'h', gen_random_uuid(), $2::timestamptz - n * interval '1 ms'
         from generate_series(1, $3::int) n`,
      [userId, new Date(h.clock.ms() - ageMs), count],
    );
  }

  async function claimCount(userId: string): Promise<number> {
    const [row] = await h.sql<{ n: number }>(
      "select count(*)::int as n from idempotency_key where user_id = $1",
      [userId],
    );
    return must(row).n;
  }

  it("prunes batch after batch until no request id is due, and nothing inside the window (request-id-pruner)", async () => {
    const due = 2 * PRUNE_BATCH + 345;
    await claimsAged("backlog-due", due, REQUEST_ID_RETENTION_MS + HOUR);
    // A minute short of the window: kept, however large the backlog before it.
    await claimsAged("backlog-kept", 50, REQUEST_ID_RETENTION_MS - 60_000);
    await job("request-id-pruner").runOnce();
    expect(await claimCount("backlog-due")).to.equal(0);
    expect(await claimCount("backlog-kept")).to.equal(50);

    // The window moves on with the clock: the kept ones go once they are due.
    h.clock.advance(60_001 + 50);
    await job("request-id-pruner").runOnce();
    expect(await claimCount("backlog-kept")).to.equal(0);
  });

  it("prunes while new request ids are claimed, losing none of them (request-id-pruner)", async () => {
    await claimsAged("racing-due", 3 * PRUNE_BATCH, REQUEST_ID_RETENTION_MS + HOUR);
    const claim = (n: number) =>
      transaction(h.orm.em, async (em) =>
        claimRequestId(
          await TxConnection.of(em),
          { userId: "racing-new", requestId: `new-${n}`, operation: "recharge", params: [n] },
          randomUUID(),
          h.clock.now(),
        ),
      );
    const claims: Promise<unknown>[] = [];
    const pruning = job("request-id-pruner").runOnce();
    // Claims keep arriving, one after another and a few at once, while the pruner works.
    for (let n = 0; n < 60; n++) {
      claims.push(claim(n));
      if (n % 3 === 0) await claims[n];
    }
    const [results] = await Promise.all([Promise.all(claims), pruning]);
    expect(results.every((r) => (r as { kind: string }).kind === "claimed")).to.equal(true);
    expect(await claimCount("racing-due")).to.equal(0);
    expect(await claimCount("racing-new")).to.equal(60);
  });

  it("replays a recharge whose request id is a day old", async () => {
    const wide = h.graph({ QUEUE_MAX_ACTIVE: "100" });
    const caller = await h.admit(h.user("patient"), { services: wide });
    const id = requestId();
    const first = await wide.wallet.recharge(caller.principal, { amount: 5_000n, requestId: id });
    h.clock.advance(25 * HOUR);
    await job("request-id-pruner").runOnce();
    const again = await wide.wallet.recharge(caller.principal, { amount: 5_000n, requestId: id });
    expect(again.entry.id).to.equal(first.entry.id);
    expect((await wide.wallet.get(caller.principal)).balance).to.equal(5_000n);
  });

  it("analyses a table the sale filled from empty, so cached plans stop scanning it (table-statistics)", async () => {
    const client = await h.pool.connect();
    try {
      const plan = async () =>
        (await client.query("explain execute wallet_balance('nobody')")).rows
          .map((row) => String(row["QUERY PLAN"]))
          .join("\n");
      const analysed = async () =>
        (
          await client.query<{ tuples: number }>(
            "select reltuples::int as tuples from pg_class where relname = 'wallet'",
          )
        ).rows[0]?.tuples ?? -1;
      // A pooled connection plans a lookup while the table is (nearly) empty...
      await client.query("set plan_cache_mode = force_generic_plan");
      await client.query("analyze wallet");
      await client.query(
        "prepare wallet_balance(text) as select balance from wallet where user_id = $1",
      );
      expect(await plan()).to.match(/Seq Scan on wallet/);

      // ...then the sale fills it.
      await client.query(
        `insert into wallet (user_id, balance, version, created_at, updated_at)
         select 'stats-' || n, 0, 0, now(), now() from generate_series(1, 3000) n`,
      );
      await client.query("select pg_stat_force_next_flush()");
      await job("table-statistics").runOnce();
      expect(await analysed()).to.be.at.least(3000);
      expect(await plan()).to.match(/Index Scan using wallet_pkey/);

      // Grown by less than the factor since: nothing to do.
      const before = await client.query(
        "select analyze_count from pg_stat_user_tables where relname = 'wallet'",
      );
      await job("table-statistics").runOnce();
      const after = await client.query(
        "select analyze_count from pg_stat_user_tables where relname = 'wallet'",
      );
      expect(after.rows).to.deep.equal(before.rows);
    } finally {
      await client.query("deallocate all");
      await client.query("reset plan_cache_mode");
      client.release();
    }
  });

  it("drops a concert whose last date has started from its list, letting its waiters go (queue-admitter)", async () => {
    // Two dates: the sale ends when the later one starts.
    const extra = await h.createConcert([
      { daysFromNow: 1, seats: 1 },
      { daysFromNow: 2, seats: 1 },
    ]);
    // The first date has started: still on sale for the second one.
    h.clock.advance(2 * 86_400_000 - 60_000);
    const issue = (label: string) =>
      h.services.queue.issueToken({
        concertId: extra.concertId,
        userId: h.user(label),
        assertion: undefined,
      });
    await issue("early");
    const waiter = await issue("late");
    expect(waiter.status.state).to.equal("waiting");
    await job("queue-admitter").runOnce();
    expect(await h.store.concerts()).to.include(extra.concertId);

    h.clock.advance(60_000);
    await job("queue-admitter").runOnce();
    expect(await h.store.concerts()).not.to.include(extra.concertId);
    await expectDomainError(
      h.services.queue.authenticate(waiter.token),
      "unauthenticated",
      "TOKEN_EXPIRED",
    );
  });
});
