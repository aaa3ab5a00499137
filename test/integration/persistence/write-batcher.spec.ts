import type { EntityManager } from "@mikro-orm/postgresql";
import { expect } from "chai";
import { createLogger } from "../../../server/src/logger.js";
import { PaymentsService } from "../../../server/src/modules/payments/index.js";
import { SeatGateWriter } from "../../../server/src/modules/queue/index.js";
import { ReservationsService } from "../../../server/src/modules/reservations/index.js";
import { WalletService } from "../../../server/src/modules/wallet/index.js";
import { transaction } from "../../../server/src/persistence/database.js";
import { statement, TxConnection } from "../../../server/src/persistence/sql.js";
import { WriteBatcher } from "../../../server/src/persistence/write-batcher.js";
import { DomainError } from "../../../server/src/shared/domain-error.js";
import { IGNORED_SALE_EVENTS } from "../../../server/src/shared/sale-events.js";
import { deferred } from "../../support/deferred.js";
import {
  expectDomainError,
  expectLedgerMatchesBalances,
  moneySnapshot,
  must,
  ServiceHarness,
} from "../reservations/service-harness.js";

/** The id of the transaction a statement runs in. */
const TXID = statement<{ txid: string }>("test_batch_txid", "select txid_current()::text as txid");
/** Writes one probe row. */
const PROBE = statement<never>("test_batch_probe", "insert into batch_probe (label) values ($1)");
/** Writes a probe row whose twin `x` may already exist: only the COMMIT checks. */
const TWIN = statement<never>(
  "test_batch_twin",
  "insert into batch_probe (label, twin) values ($1, 'x')",
);

/** The harness's pool size (ServiceHarness opens its ORM with 10 connections). */
const POOL_MAX = 10;

describe("WriteBatcher on PostgreSQL (group commit of recharges and payments)", () => {
  let h: ServiceHarness;

  before(async () => {
    h = await ServiceHarness.start();
    await h.sql(`create table batch_probe (
      label text primary key,
      -- A write that breaks it is only caught at COMMIT.
      twin text unique deferrable initially deferred
    )`);
  });
  afterEach(async () => {
    await h.sql("delete from batch_probe");
    await expectLedgerMatchesBalances(h);
  });
  after(async () => {
    await h?.close();
  });

  /** One lane: while `hold` keeps it busy, everything else waits and then goes in one batch. */
  function oneLane(env: Record<string, string> = {}): WriteBatcher {
    return h.writeBatcher({ DB_WRITE_LANES: "1", ...env });
  }

  /** A write that keeps its lane's transaction open until `release` is opened. */
  function hold(writes: WriteBatcher, release: Promise<void>): Promise<string> {
    return writes.run("hold", async (em) => {
      const tx = await TxConnection.of(em);
      await release;
      return must(await tx.one(TXID, [])).txid;
    });
  }

  /**
   * Starts writes while the only lane is held open, so they all wait for it;
   * then lets the lane go. Returns what `start` started and the load seen
   * while they waited.
   */
  async function behindHeldLane<T>(
    writes: WriteBatcher,
    start: () => T,
    waiting = 0,
  ): Promise<{ started: T; load: WriteBatcher["load"] }> {
    const release = deferred();
    const held = hold(writes, release.promise);
    const started = start();
    // Writes that do some work of their own first (a hold reads the seat
    // gate) join the line a few turns of the event loop later.
    while (writes.load.waiting < waiting) await new Promise((resolve) => setImmediate(resolve));
    const load = writes.load;
    release.resolve();
    await held;
    return { started, load };
  }

  /** A write that records its label, and returns the transaction it ran in. */
  function probe(label: string, order?: string[]) {
    return async (em: EntityManager): Promise<string> => {
      const tx = await TxConnection.of(em);
      order?.push(label);
      await tx.all(PROBE, [label]);
      return must(await tx.one(TXID, [])).txid;
    };
  }

  /**
   * Prepares the probe's statements on every connection of the pool (all of
   * them at once, so each transaction has its own), so a batch parses nothing.
   */
  async function prepareOnEveryConnection(): Promise<void> {
    const all = deferred();
    let ready = 0;
    await Promise.all(
      Array.from({ length: POOL_MAX }, (_, i) =>
        transaction(h.orm.em, async (em) => {
          await probe(`warm-${i}`)(em);
          ready += 1;
          if (ready === POOL_MAX) all.resolve();
          await all.promise;
        }),
      ),
    );
    await h.sql("delete from batch_probe");
  }

  /**
   * Writes that record their label in `runs` each time they run: `counted`
   * writes its probe row, `refused` writes it and then is refused with
   * `refusal` (a domain rule, as a payment too poor is).
   */
  function counting() {
    const runs: string[] = [];
    const refusal = new DomainError("failed_precondition", "INSUFFICIENT_BALANCE", "too poor");
    const counted = (label: string) => async (em: EntityManager) => {
      runs.push(label);
      return probe(label)(em);
    };
    const refused = (label: string) => async (em: EntityManager) => {
      await counted(label)(em);
      throw refusal;
    };
    return { runs, refusal, counted, refused };
  }

  async function labels(): Promise<string[]> {
    const rows = await h.sql<{ label: string }>("select label from batch_probe order by label");
    return rows.map((row) => row.label);
  }

  it("runs a write that finds a lane free at once, alone", async () => {
    const writes = oneLane();
    const txid = await writes.run("a", probe("a"));
    expect(txid).to.match(/^\d+$/);
    expect(writes.load).to.deep.equal({ waiting: 0, open: 0 });
    expect(await labels()).to.deep.equal(["a"]);
  });

  it("carries the writes that waited for a lane in one transaction, in key order, each with its result", async () => {
    const writes = oneLane();
    const release = deferred();
    const held = hold(writes, release.promise);
    const order: string[] = [];
    const waiting = ["m", "z", "a", "q"].map((key) => writes.run(key, probe(key, order)));
    const load = writes.load;
    release.resolve();
    expect(load).to.deep.equal({ waiting: 4, open: 1 });
    const [heldTxid, ...txids] = await Promise.all([held, ...waiting]);
    expect(new Set(txids).size).to.equal(1);
    expect(txids[0]).to.not.equal(heldTxid);
    expect(order).to.deep.equal(["a", "m", "q", "z"]);
    expect(await labels()).to.deep.equal(["a", "m", "q", "z"]);
    // Five writes in two transactions, as the metrics report them.
    expect(writes.figures).to.deep.equal({
      waiting: 0,
      open: 0,
      writes: 5,
      transactions: 2,
      refused: 0,
      undone: 0,
      takenBack: 0,
    });
  });

  it("carries at most DB_WRITE_BATCH writes per transaction", async () => {
    const writes = oneLane({ DB_WRITE_BATCH: "2" });
    const release = deferred();
    const held = hold(writes, release.promise);
    const waiting = ["a", "b", "c", "d", "e"].map((key) => writes.run(key, probe(key)));
    release.resolve();
    const txids = await Promise.all(waiting);
    await held;
    expect(txids[0]).to.equal(txids[1]);
    expect(txids[2]).to.equal(txids[3]);
    expect(new Set(txids).size).to.equal(3);
  });

  it("undoes a write that fails alone: it gets its own error, the others commit", async () => {
    const writes = oneLane();
    const release = deferred();
    const held = hold(writes, release.promise);
    const refused = new Error("refused after writing");
    const a = writes.run("a", probe("a"));
    const b = writes.run("b", async (em) => {
      await probe("b")(em);
      throw refused;
    });
    // An SQL error aborts the batch's transaction: the others run again.
    const c = writes.run("c", async (em) => {
      await probe("c")(em);
      await probe("a")(em); // duplicate key
    });
    const d = writes.run("d", probe("d"));
    release.resolve();
    await held;
    const outcomes = await Promise.allSettled([a, b, c, d]);
    expect(outcomes.map((o) => o.status)).to.deep.equal([
      "fulfilled",
      "rejected",
      "rejected",
      "fulfilled",
    ]);
    expect((outcomes[1] as PromiseRejectedResult).reason).to.equal(refused);
    expect(String((outcomes[2] as PromiseRejectedResult).reason)).to.match(/duplicate key/);
    const [ta, , , td] = outcomes.map((o) => (o.status === "fulfilled" ? o.value : undefined));
    expect(ta).to.equal(td);
    expect(await labels()).to.deep.equal(["a", "d"]);
  });

  it("sends the statements of a batch's writes together: one round trip per step, not per write", async () => {
    await prepareOnEveryConnection();
    const writes = oneLane();
    const release = deferred();
    const held = hold(writes, release.promise);
    let sent = 0;
    let spied = false;
    const counted = (label: string) => async (em: EntityManager) => {
      const trx = em.getTransactionContext<{ client: { acquireConnection(): Promise<unknown> } }>();
      const client = (await trx?.client.acquireConnection()) as {
        query(...args: unknown[]): unknown;
      };
      if (!spied) {
        spied = true;
        const query = client.query;
        client.query = function (this: unknown, ...args: unknown[]) {
          sent += 1;
          return query.apply(this, args);
        };
      }
      return probe(label)(em);
    };
    const batch = ["a", "b", "c", "d"].map((key) => writes.run(key, counted(key)));
    release.resolve();
    await held;
    const txids = await Promise.all(batch);
    expect(new Set(txids).size).to.equal(1);
    // Four writes of two statements each: two round trips (then COMMIT), not eight.
    expect(sent).to.equal(3);
  });

  it("rolls the batch back when a write without a take-back is refused: the refusal stands, the others run again in the next batch", async () => {
    const writes = oneLane();
    const release = deferred();
    const held = hold(writes, release.promise);
    const { runs, refusal, counted, refused } = counting();
    const a = writes.run("a", counted("a"));
    const b = writes.run("b", refused("b"));
    const c = writes.run("c", counted("c"));
    release.resolve();
    await held;
    const outcomes = await Promise.allSettled([a, b, c]);
    expect(outcomes.map((o) => o.status)).to.deep.equal(["fulfilled", "rejected", "fulfilled"]);
    expect((outcomes[1] as PromiseRejectedResult).reason).to.equal(refusal);
    // The refused write ran once; the others once in the undone batch, once in the next.
    expect(runs.sort()).to.deep.equal(["a", "a", "b", "c", "c"]);
    const [ta, , tc] = outcomes.map((o) => (o.status === "fulfilled" ? o.value : undefined));
    expect(ta).to.equal(tc);
    expect(await labels()).to.deep.equal(["a", "c"]);
    // The held write's, the undone batch's and the next one's.
    expect(writes.figures).to.include({ writes: 4, transactions: 3, undone: 1 });
  });

  /** Deletes the probe row of `label`: the take-back of a write that wrote it. */
  const UNPROBE = statement<never>(
    "test_batch_unprobe",
    "delete from batch_probe where label = $1",
  );

  it("commits the others when a refused write takes back what it wrote: every write runs once, in one transaction", async () => {
    const writes = oneLane();
    const { runs, refusal, counted, refused } = counting();
    const takenBack: string[] = [];
    const takeBack = (label: string) => async (em: EntityManager) => {
      takenBack.push(label);
      await (await TxConnection.of(em)).all(UNPROBE, [label]);
    };
    const { started } = await behindHeldLane(writes, () => [
      writes.run("a", counted("a")),
      writes.run("b", refused("b"), takeBack("b")),
      writes.run("c", counted("c")),
      writes.run("d", refused("d"), takeBack("d")),
    ]);
    const outcomes = await Promise.allSettled(started);
    expect(outcomes.map((o) => o.status)).to.deep.equal([
      "fulfilled",
      "rejected",
      "fulfilled",
      "rejected",
    ]);
    expect((outcomes[1] as PromiseRejectedResult).reason).to.equal(refusal);
    expect((outcomes[3] as PromiseRejectedResult).reason).to.equal(refusal);
    expect(runs.sort()).to.deep.equal(["a", "b", "c", "d"]);
    expect(takenBack.sort()).to.deep.equal(["b", "d"]);
    const [ta, , tc] = outcomes.map((o) => (o.status === "fulfilled" ? o.value : undefined));
    expect(ta).to.equal(tc);
    // The refused writes' rows were taken back; the others committed.
    expect(await labels()).to.deep.equal(["a", "c"]);
    // The held write's transaction and the batch's: nothing undone, nothing run twice.
    expect(writes.figures).to.include({ writes: 5, transactions: 2, undone: 0, takenBack: 2 });
  });

  it("rolls the batch back when a take-back fails: the refusal stands, the others run again", async () => {
    const writes = oneLane();
    const { runs, refusal, counted, refused } = counting();
    const { started } = await behindHeldLane(writes, () => [
      writes.run("a", counted("a")),
      writes.run("b", refused("b"), async () => {
        throw new Error("cannot take it back");
      }),
    ]);
    const outcomes = await Promise.allSettled(started);
    expect(outcomes.map((o) => o.status)).to.deep.equal(["fulfilled", "rejected"]);
    expect((outcomes[1] as PromiseRejectedResult).reason).to.equal(refusal);
    expect(runs.sort()).to.deep.equal(["a", "a", "b"]);
    expect(await labels()).to.deep.equal(["a"]);
    expect(writes.figures).to.include({ transactions: 3, undone: 1, takenBack: 0 });
  });

  it("runs a write that failed otherwise again alone, and gives it that run's outcome", async () => {
    const writes = oneLane();
    const release = deferred();
    const held = hold(writes, release.promise);
    let tries = 0;
    const flaky = writes.run("b", async (em) => {
      tries += 1;
      const txid = await probe("b")(em);
      if (tries === 1) throw new Error("lost the connection (once)");
      return txid;
    });
    const [a, c] = ["a", "c"].map((key) => writes.run(key, probe(key)));
    release.resolve();
    await held;
    const [ta, tb, tc] = await Promise.all([a, flaky, c]);
    expect(tries).to.equal(2);
    expect(ta).to.equal(tc);
    expect(tb).to.not.equal(ta);
    expect(await labels()).to.deep.equal(["a", "b", "c"]);
  });

  it("never puts two writes of one key in one batch: the second sees the first committed", async () => {
    const writes = oneLane();
    const release = deferred();
    const held = hold(writes, release.promise);
    const order: string[] = [];
    const first = writes.run("a", probe("a1", order));
    const second = writes.run("a", probe("a2", order));
    const other = writes.run("b", probe("b", order));
    release.resolve();
    await held;
    const [t1, t2, tb] = await Promise.all([first, second, other]);
    expect(t1).to.equal(tb);
    expect(t2).to.not.equal(t1);
    expect(order).to.deep.equal(["a1", "b", "a2"]);
  });

  it("runs one write of a key at a time, even with a lane free: the second waits for the first's commit", async () => {
    const writes = h.writeBatcher({ DB_WRITE_LANES: "2" });
    const release = deferred();
    const firstStarted = deferred();
    const order: string[] = [];
    const first = writes.run("a", async (em) => {
      firstStarted.resolve();
      await release.promise;
      order.push("first done");
      return probe("a-1")(em);
    });
    await firstStarted.promise;
    const second = writes.run("a", async (em) => {
      order.push("second started");
      return probe("a-2")(em);
    });
    // Another key takes the free lane at once, while the first still runs.
    const other = await writes.run("b", probe("b"));
    expect(other).to.match(/^\d+$/);
    expect(writes.load).to.deep.equal({ waiting: 1, open: 1 });
    expect(order).to.deep.equal([]);
    release.resolve();
    await Promise.all([first, second]);
    expect(order).to.deep.equal(["first done", "second started"]);
    expect(await labels()).to.deep.equal(["a-1", "a-2", "b"]);
  });

  it("runs every write again alone when the batch's COMMIT fails, so only the one at fault fails", async () => {
    const writes = oneLane();
    const release = deferred();
    const held = hold(writes, release.promise);
    const twin = (label: string) => async (em: EntityManager) => {
      const tx = await TxConnection.of(em);
      await tx.all(TWIN, [label]);
      return must(await tx.one(TXID, [])).txid;
    };
    await h.sql("insert into batch_probe (label, twin) values ('first', 'x')");
    const a = writes.run("a", probe("a"));
    // Breaks the deferred unique constraint: only the COMMIT finds out.
    const b = writes.run("b", twin("b"));
    const c = writes.run("c", probe("c"));
    release.resolve();
    await held;
    const outcomes = await Promise.allSettled([a, b, c]);
    expect(outcomes.map((o) => o.status)).to.deep.equal(["fulfilled", "rejected", "fulfilled"]);
    const [ta, , tc] = outcomes.map((o) => (o.status === "fulfilled" ? o.value : undefined));
    expect(ta).to.not.equal(tc);
    expect(await labels()).to.deep.equal(["a", "c", "first"]);
  });

  it("refuses as SERVER_BUSY, without running them, the writes that waited for a lane too long", async () => {
    let now = 0;
    const writes = new WriteBatcher(
      (work) => transaction(h.orm.em, work),
      { lanes: 1, maxBatch: 8, maxWaitMs: 10_000 },
      () => now,
    );
    const release = deferred();
    const held = hold(writes, release.promise);
    const stale = writes.run("a", probe("a"));
    now = 6_000;
    const fresh = writes.run("b", probe("b"));
    now = 10_001;
    release.resolve();
    await held;
    await expectDomainError(stale, "unavailable", "SERVER_BUSY");
    expect(await fresh).to.match(/^\d+$/);
    expect(await labels()).to.deep.equal(["b"]);
    expect(writes.figures).to.include({ writes: 3, transactions: 2, refused: 1 });
  });

  it("passes every write straight through with DB_WRITE_BATCH=1", async () => {
    const writes = oneLane({ DB_WRITE_BATCH: "1" });
    const release = deferred();
    const held = hold(writes, release.promise);
    // No lane to wait for: they run while the first is still open.
    const both = Promise.all(["a", "b"].map((key) => writes.run(key, probe(key))));
    const load = writes.load;
    const txids = await both.finally(() => release.resolve());
    await held;
    expect(new Set(txids).size).to.equal(2);
    expect(load).to.deep.equal({ waiting: 0, open: 0 });
  });

  describe("with recharges", () => {
    it("keeps each recharge's own outcome in a shared transaction: refused, replayed, applied", async () => {
      const writes = oneLane();
      const wallet = new WalletService(h.orm.em, writes, h.clock, {
        maxRecharge: 10_000n,
        maxBalance: 15_000n,
      });
      const [rich, twice, plain] = await Promise.all([
        h.admit(h.user("batch-rich")),
        h.admit(h.user("batch-twice")),
        h.admit(h.user("batch-plain")),
      ]);
      await wallet.recharge(rich.principal, { amount: 10_000n, requestId: "rich-1" });

      const { started, load } = await behindHeldLane(writes, () => ({
        over: wallet.recharge(rich.principal, { amount: 9_000n, requestId: "rich-2" }),
        first: wallet.recharge(twice.principal, { amount: 700n, requestId: "same" }),
        again: wallet.recharge(twice.principal, { amount: 700n, requestId: "same" }),
        ok: wallet.recharge(plain.principal, { amount: 300n, requestId: "plain-1" }),
      }));
      const { over, first, again, ok } = started;
      expect(load).to.deep.equal({ waiting: 4, open: 1 });

      await expectDomainError(over, "resource_exhausted", "BALANCE_LIMIT_REACHED");
      const [a, b, c] = await Promise.all([first, again, ok]);
      expect(b.entry.id).to.equal(a.entry.id);
      expect(a.wallet.balance).to.equal(700n);
      expect(c.wallet.balance).to.equal(300n);
      expect(await moneySnapshot(h, rich.principal.userId)).to.include({
        wallets: "10000/1",
        ledger: "1",
        keys: "1",
      });
      expect(await moneySnapshot(h, twice.principal.userId)).to.include({
        wallets: "700/1",
        ledger: "1",
        keys: "1",
      });
      // The refused recharge took back its claim and the batch committed
      // the others: nothing ran twice.
      expect(writes.figures).to.include({ undone: 0, takenBack: 1 });
      // The refused request id was taken back with its claim: it can be used again.
      const retried = await wallet.recharge(rich.principal, {
        amount: 5_000n,
        requestId: "rich-2",
      });
      expect(retried.wallet.balance).to.equal(15_000n);
    });
  });

  describe("with holds", () => {
    it("keeps each hold's own outcome in a shared transaction: one seat asked twice, the hold limit, one's own seat, a replay", async () => {
      const writes = oneLane();
      const reservations = new ReservationsService(
        h.orm.em,
        h.services.catalog,
        h.store.seats,
        new SeatGateWriter(h.store.seats, h.clock, createLogger("silent")),
        h.clock,
        600_000,
        IGNORED_SALE_EVENTS,
        writes,
      );
      const [first, second, holder, owner, plain] = await Promise.all(
        ["hold-first", "hold-second", "hold-holder", "hold-owner", "hold-plain"].map((label) =>
          h.admit(h.user(label)),
        ),
      );
      const [contested, other, held, owned, free] = [1, 2, 3, 4, 5].map(() => h.takeSeat());
      const hold = (caller: typeof first, seat: typeof contested, requestId: string) =>
        reservations.hold(caller.principal, { seatId: seat.id, requestId });
      await hold(holder, held, "holder-1");
      await hold(owner, owned, "owner-1");
      const before = writes.figures;

      const { started, load } = await behindHeldLane(
        writes,
        () => ({
          // Two fans on one free seat: a batch must not give it to both.
          firstTry: hold(first, contested, "first-1"),
          secondTry: hold(second, contested, "second-1"),
          limit: hold(holder, other, "holder-2"),
          own: hold(owner, owned, "owner-2"),
          plainHold: hold(plain, free, "plain-1"),
        }),
        5,
      );
      expect(load).to.deep.equal({ waiting: 5, open: 1 });
      const { firstTry, secondTry, limit, own, plainHold } = started;
      await expectDomainError(limit, "failed_precondition", "HOLD_LIMIT_REACHED");
      const tries = await Promise.allSettled([firstTry, secondTry]);
      const won = tries.flatMap((t) => (t.status === "fulfilled" ? [t.value] : []));
      expect(won, "one of the two wins the seat").to.have.length(1);
      const lost = tries.find((t) => t.status === "rejected") as PromiseRejectedResult;
      expect(lost.reason).to.be.instanceOf(DomainError);
      expect((lost.reason as DomainError).reason).to.equal("SEAT_UNAVAILABLE");
      const mine = await own;
      expect(mine.reservation.seatId).to.equal(owned.id);
      expect(mine.state).to.equal("HELD");
      expect((await plainHold).state).to.equal("HELD");

      // Every write ran once, in the batch's one transaction; the two
      // refusals took back their claims.
      const after = writes.figures;
      expect(after.transactions - before.transactions).to.equal(2);
      expect(after.writes - before.writes).to.equal(6);
      expect(after.undone - before.undone).to.equal(0);
      expect(after.takenBack - before.takenBack).to.equal(2);

      const holders = await h.sql<{ user_id: string }>(
        "select user_id from reservation where seat_id = $1 and status = 'HELD'",
        [contested.id],
      );
      expect(holders.map((row) => row.user_id)).to.deep.equal([won[0]?.reservation.userId]);
      const [seatRow] = await h.sql<{ status: string; reservation_id: string }>(
        "select status, reservation_id from seat where id = $1",
        [contested.id],
      );
      expect(seatRow).to.deep.equal({ status: "HELD", reservation_id: won[0]?.reservation.id });
      // Only the holds that were made keep their request ids.
      const claims = await h.sql<{ request_id: string }>(
        `select request_id from idempotency_key
          where operation = 'hold'
            and request_id in ('first-1', 'second-1', 'holder-2', 'owner-2', 'plain-1')
          order by request_id`,
      );
      const winnerId =
        won[0]?.reservation.userId === first.principal.userId ? "first-1" : "second-1";
      expect(claims.map((row) => row.request_id)).to.deep.equal([winnerId, "plain-1"].sort());
      // A replay of the winning request answers with its hold.
      const winner = winnerId === "first-1" ? first : second;
      const replay = await hold(winner, contested, winnerId);
      expect(replay.reservation.id).to.equal(won[0]?.reservation.id);
    });
  });

  describe("with payments", () => {
    it("keeps each payment's own outcome in a shared transaction: too poor, paid, replayed, paid", async () => {
      const writes = oneLane();
      const payments = new PaymentsService(
        h.orm.em,
        writes,
        h.services.catalog,
        h.services.queue,
        h.services.seatGate,
        h.clock,
        createLogger("silent"),
      );
      const holding = async (label: string, funds: bigint) => {
        const caller = await h.admit(h.user(label));
        const seat = h.takeSeat();
        if (funds > 0n) {
          await h.services.wallet.recharge(caller.principal, {
            amount: funds,
            requestId: `${label}-funds`,
          });
        }
        const view = await h.services.reservations.hold(caller.principal, {
          seatId: seat.id,
          requestId: `${label}-hold`,
        });
        return { caller, seat, reservationId: view.reservation.id };
      };
      const poor = await holding("batch-poor", 1n);
      const payer = await holding("batch-payer", 500_000n);
      const other = await holding("batch-other", 500_000n);
      const pay = (who: typeof poor, requestId: string) =>
        payments.pay(who.caller.principal, {
          reservationId: who.reservationId,
          amount: who.seat.price,
          requestId,
        });

      const { started, load } = await behindHeldLane(writes, () => ({
        refused: pay(poor, "poor-1"),
        paid: pay(payer, "payer-1"),
        replayed: pay(payer, "payer-1"),
        alsoPaid: pay(other, "other-1"),
      }));
      const { refused, paid, replayed, alsoPaid } = started;
      expect(load).to.deep.equal({ waiting: 4, open: 1 });

      await expectDomainError(refused, "failed_precondition", "INSUFFICIENT_BALANCE");
      const [first, again, third] = await Promise.all([paid, replayed, alsoPaid]);
      expect(again.payment.id).to.equal(first.payment.id);
      expect([first.reservation.state, third.reservation.state]).to.deep.equal([
        "CONFIRMED",
        "CONFIRMED",
      ]);
      expect(await moneySnapshot(h, payer.caller.principal.userId)).to.include({
        wallets: `${500_000n - payer.seat.price}/2`,
        payments: "1",
      });
      expect(await moneySnapshot(h, poor.caller.principal.userId)).to.include({
        wallets: "1/1",
        payments: "0",
      });
      expect(writes.figures).to.include({ undone: 0, takenBack: 1 });
      // The refused payment left its hold and its request id as they were: topped up, it goes through.
      await h.services.wallet.recharge(poor.caller.principal, {
        amount: poor.seat.price,
        requestId: "poor-top-up",
      });
      expect((await pay(poor, "poor-1")).reservation.state).to.equal("CONFIRMED");
    });
  });
});
