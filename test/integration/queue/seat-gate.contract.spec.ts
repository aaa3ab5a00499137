import { expect } from "chai";
import { MemoryQueueStore } from "../../../server/src/modules/queue/memory-queue-store.js";
import type { QueueLimits, QueueStore } from "../../../server/src/modules/queue/queue-store.js";
import type { QueueRedisClient } from "../../../server/src/modules/queue/redis-queue-store.js";
import { RedisQueueStore } from "../../../server/src/modules/queue/redis-queue-store.js";
import {
  type DateChanges,
  type GateDate,
  SEAT_LOG_LIMIT,
  type SeatChange,
  type SeatGate,
} from "../../../server/src/modules/queue/seat-gate.js";
import { FakeClock } from "../../support/fake-clock.js";
import {
  connectTestRedis,
  reportRedisSkipped,
  testRedisUrl,
  uniqueKeyPrefix,
} from "../../support/redis.js";
import {
  redisClusterUnavailable,
  reportRedisClusterSkipped,
  sharedRedisCluster,
} from "../../support/redis-cluster.js";

/**
 * How the contract reaches one gate implementation: through the queue store
 * that carries it (`store.seats`), as the server does.
 */
interface GateHarness {
  /** A store (and its gate) over fresh, empty state. */
  open(): Promise<QueueStore>;
  /**
   * Deletes every key of one date of `store`'s gate, as if Redis lost them
   * (only a gate kept outside the process can lose part of its state).
   * Resolves to how many keys were deleted.
   */
  loseDate?(store: QueueStore, date: GateDate): Promise<number>;
  /** Releases what the test opened (its keys included). */
  cleanUp(): Promise<void>;
  dispose(): Promise<void>;
}

const LIMITS: QueueLimits = {
  maxActive: 5,
  admissionTtlMs: 60_000,
  idleMs: 30_000,
  graceMs: 600_000,
};

/** The fields of a logged change the contract pins (the log does not carry owners). */
function logged(change: SeatChange) {
  return {
    seatId: change.seatId,
    seatVersion: change.seatVersion,
    state: change.state,
    heldUntil: change.heldUntil,
  };
}

/** The one contract both gates must pass. */
function seatGateContract(
  name: string,
  makeHarness: () => Promise<GateHarness>,
  features: { readonly losesKeys: boolean },
): void {
  describe(`${name}.seats (SeatGate contract)`, () => {
    let harness: GateHarness;
    let store: QueueStore;
    let gate: SeatGate;
    let clock: FakeClock;
    let dates = 0;

    /** A date no other test uses, of the given concert. */
    const newDate = (concertId = "concert-1"): GateDate => ({
      concertId,
      dateId: `date-${++dates}`,
    });

    before(async () => {
      harness = await makeHarness();
    });
    beforeEach(async () => {
      clock = new FakeClock();
      store = await harness.open();
      gate = store.seats;
    });
    afterEach(async () => {
      await harness.cleanUp();
    });
    after(async () => {
      await harness?.dispose();
    });

    function held(seatId: string, seatVersion: number, owner = "ann"): SeatChange {
      return { seatId, seatVersion, state: "held", heldUntil: clock.ms() + 300_000, owner };
    }
    function sold(seatId: string, seatVersion: number, owner = "ann"): SeatChange {
      return { seatId, seatVersion, state: "sold", heldUntil: 0, owner };
    }
    function free(seatId: string, seatVersion: number): SeatChange {
      return { seatId, seatVersion, state: "free", heldUntil: 0, owner: "" };
    }

    async function changesOf(date: GateDate, afterVersion: number): Promise<DateChanges> {
      const [changes] = await gate.changesSince([{ ...date, afterVersion }]);
      if (changes === undefined) throw new Error("changesSince answered no date");
      return changes;
    }

    /** Records the changes one after another (each lands before the next is sent). */
    async function recordAll(date: GateDate, changes: readonly SeatChange[]): Promise<void> {
      for (const change of changes) await gate.record(date, change);
    }

    describe("entries", () => {
      it("peek of a seat the gate never saw is null", async () => {
        expect(await gate.peek(newDate(), "seat-1")).to.equal(null);
      });

      it("peek returns what was recorded: version, state, held-until and owner", async () => {
        const date = newDate();
        const hold = held("seat-1", 2, "ann");
        await gate.record(date, hold);
        expect(await gate.peek(date, "seat-1")).to.deep.equal({
          seatVersion: 2,
          state: "held",
          heldUntil: hold.heldUntil,
          owner: "ann",
        });
        await gate.record(date, sold("seat-2", 3, "bob"));
        expect(await gate.peek(date, "seat-2")).to.deep.equal({
          seatVersion: 3,
          state: "sold",
          heldUntil: 0,
          owner: "bob",
        });
        await gate.record(date, free("seat-3", 4));
        expect(await gate.peek(date, "seat-3")).to.deep.equal({
          seatVersion: 4,
          state: "free",
          heldUntil: 0,
          owner: "",
        });
      });

      it("an older or equal row version never replaces a newer entry (out-of-order writes)", async () => {
        const date = newDate();
        const hold = held("seat-1", 5, "ann");
        await gate.record(date, hold);
        await gate.record(date, free("seat-1", 4)); // older: the release before this hold
        await gate.record(date, sold("seat-1", 5, "bob")); // same version, other content
        expect(await gate.peek(date, "seat-1")).to.deep.equal({
          seatVersion: 5,
          state: "held",
          heldUntil: hold.heldUntil,
          owner: "ann",
        });

        await gate.record(date, sold("seat-1", 6, "ann"));
        expect(await gate.peek(date, "seat-1")).to.deep.equal({
          seatVersion: 6,
          state: "sold",
          heldUntil: 0,
          owner: "ann",
        });
      });

      it("invalidate marks the seat unknown at the newer of the two versions", async () => {
        const date = newDate();
        await gate.record(date, held("seat-1", 3, "bob"));
        await gate.invalidate(date, "seat-1", 4);
        expect(await gate.peek(date, "seat-1")).to.deep.equal({
          seatVersion: 4,
          state: "unknown",
          heldUntil: 0,
          owner: "",
        });

        // Invalidating with an older version keeps the newest version known.
        await gate.record(date, sold("seat-2", 7, "bob"));
        await gate.invalidate(date, "seat-2", 2);
        expect(await gate.peek(date, "seat-2")).to.deep.equal({
          seatVersion: 7,
          state: "unknown",
          heldUntil: 0,
          owner: "",
        });
      });

      it("after invalidate, a late older (or equal) write cannot bring back 'held'; a newer one applies", async () => {
        const date = newDate();
        await gate.record(date, held("seat-1", 3, "bob"));
        await gate.invalidate(date, "seat-1", 4);

        await gate.record(date, held("seat-1", 3, "bob")); // the hold's write, arriving late
        await gate.record(date, held("seat-1", 4, "bob")); // equal to the invalidated version
        expect((await gate.peek(date, "seat-1"))?.state).to.equal("unknown");

        await gate.record(date, free("seat-1", 5)); // the release that was being committed
        expect(await gate.peek(date, "seat-1")).to.deep.equal({
          seatVersion: 5,
          state: "free",
          heldUntil: 0,
          owner: "",
        });
      });

      it("invalidate of a seat the gate never saw creates an unknown entry that older writes cannot replace", async () => {
        const date = newDate();
        await gate.invalidate(date, "seat-1", 9);
        expect(await gate.peek(date, "seat-1")).to.deep.equal({
          seatVersion: 9,
          state: "unknown",
          heldUntil: 0,
          owner: "",
        });
        await gate.record(date, held("seat-1", 8));
        expect((await gate.peek(date, "seat-1"))?.state).to.equal("unknown");
      });

      it("keeps the seats of different dates apart, even with the same seat id", async () => {
        const first = newDate();
        const second = newDate();
        await gate.record(first, sold("seat-1", 5, "ann"));
        expect(await gate.peek(second, "seat-1")).to.equal(null);

        // A lower version on the other date is not compared with the first date's.
        await gate.record(second, held("seat-1", 1, "bob"));
        expect((await gate.peek(second, "seat-1"))?.owner).to.equal("bob");
        expect((await gate.peek(first, "seat-1"))?.owner).to.equal("ann");

        await gate.invalidate(second, "seat-1", 2);
        expect((await gate.peek(first, "seat-1"))?.state).to.equal("sold");

        expect((await changesOf(first, 0)).version).to.equal(1);
        expect((await changesOf(second, 0)).version).to.equal(1);
      });

      it("stores held-until times beyond what Lua's number formatting keeps exactly", async () => {
        const date = newDate();
        const times = [1_893_456_000_123, 8_640_000_000_000_000, Number.MAX_SAFE_INTEGER];
        for (const [i, heldUntil] of times.entries()) {
          await gate.record(date, {
            seatId: `seat-${i}`,
            seatVersion: 1,
            state: "held",
            heldUntil,
            owner: "ann",
          });
        }
        for (const [i, heldUntil] of times.entries()) {
          expect((await gate.peek(date, `seat-${i}`))?.heldUntil).to.equal(heldUntil);
        }
        const log = await changesOf(date, 0);
        expect(log.changes?.map((change) => change.heldUntil)).to.deep.equal(times);
      });
    });

    describe("change log", () => {
      it("a date the gate never saw has epoch '', version 0 and no changes", async () => {
        expect(await changesOf(newDate(), 0)).to.deep.equal({
          epoch: "",
          version: 0,
          changes: [],
        });
      });

      it("answers no dates for no queries", async () => {
        expect(await gate.changesSince([])).to.deep.equal([]);
      });

      it("returns exactly the changes after the asked version, oldest first, as recorded", async () => {
        const date = newDate();
        const recorded = [
          held("seat-1", 2, "ann"),
          sold("seat-2", 5, "bob"),
          free("seat-3", 3),
          sold("seat-1", 3, "ann"),
          { ...held("seat-4", 11, "cat"), heldUntil: 1_893_456_000_123 },
        ];
        await recordAll(date, recorded);

        const all = await changesOf(date, 0);
        expect(all.epoch).to.be.a("string").and.not.equal("");
        expect(all.version).to.equal(5);
        expect(all.changes?.map(logged)).to.deep.equal(recorded.map(logged));

        const later = await changesOf(date, 2);
        expect(later.epoch).to.equal(all.epoch);
        expect(later.version).to.equal(5);
        expect(later.changes?.map(logged)).to.deep.equal(recorded.slice(2).map(logged));

        expect(await changesOf(date, 5)).to.deep.equal({
          epoch: all.epoch,
          version: 5,
          changes: [],
        });
      });

      it("numbers the changes contiguously after the asked version", async () => {
        const date = newDate();
        await recordAll(
          date,
          Array.from({ length: 6 }, (_, i) => free(`seat-${i}`, 1)),
        );
        const log = await changesOf(date, 3);
        expect(log.version).to.equal(6);
        expect(log.changes).to.have.length(3);
        // A gate that exposes each change's number must number them after + 1 … version.
        const numbers = log.changes?.map((change) => (change as { n?: number }).n);
        if (numbers?.every((n) => n !== undefined)) expect(numbers).to.deep.equal([4, 5, 6]);
      });

      it("answers several dates (of several concerts) in one call, in the order asked", async () => {
        const a = newDate();
        const b = newDate("concert-2");
        const c = newDate("concert-3");
        await recordAll(a, [held("seat-a1", 1), held("seat-a2", 1)]);
        await recordAll(c, [free("seat-c1", 1), sold("seat-c2", 2), free("seat-c3", 1)]);

        const [forC, forB, forA] = await gate.changesSince([
          { ...c, afterVersion: 1 },
          { ...b, afterVersion: 0 },
          { ...a, afterVersion: 0 },
        ]);
        expect(forC?.version).to.equal(3);
        expect(forC?.changes?.map((change) => change.seatId)).to.deep.equal(["seat-c2", "seat-c3"]);
        expect(forB).to.deep.equal({ epoch: "", version: 0, changes: [] });
        expect(forA?.version).to.equal(2);
        expect(forA?.changes?.map((change) => change.seatId)).to.deep.equal(["seat-a1", "seat-a2"]);
        expect(forA?.epoch).to.be.a("string").and.not.equal("");
        expect(forC?.epoch).to.be.a("string").and.not.equal("");
      });

      it("a record that is ignored (not newer) appends nothing to the log", async () => {
        const date = newDate();
        await gate.record(date, held("seat-1", 4));
        await gate.record(date, free("seat-1", 3));
        await gate.record(date, sold("seat-1", 4));
        const log = await changesOf(date, 0);
        expect(log.version).to.equal(1);
        expect(log.changes?.map(logged)).to.deep.equal([logged(held("seat-1", 4))]);
      });

      it("invalidate appends nothing to the log, and a write it made stale appends nothing either", async () => {
        const date = newDate();
        await gate.record(date, held("seat-1", 4));
        await gate.invalidate(date, "seat-1", 5);
        await gate.record(date, held("seat-1", 5));
        expect((await changesOf(date, 1)).changes).to.deep.equal([]);
        expect((await changesOf(date, 0)).version).to.equal(1);
      });

      it("a caller ahead of the counter gets null changes (the counter started again)", async () => {
        const date = newDate();
        await recordAll(date, [free("seat-1", 1), free("seat-2", 1)]);
        const log = await changesOf(date, 9);
        expect(log.version).to.equal(2);
        expect(log.changes).to.equal(null);
      });

      it("a caller ahead of a date the gate has never seen gets null changes too", async () => {
        expect(await changesOf(newDate(), 4)).to.deep.equal({
          epoch: "",
          version: 0,
          changes: null,
        });
      });

      it("a caller further behind than the trimmed log gets null; one within it gets the rest", async function () {
        this.timeout(120_000);
        const date = newDate();
        const total = SEAT_LOG_LIMIT + 300;
        // A gate may keep more than SEAT_LOG_LIMIT changes (the in-process one trims in
        // chunks), never fewer; a caller behind all of them must rebuild.
        // Sent without waiting for each answer, in order on one connection / one process.
        const writes: Promise<void>[] = [];
        for (let i = 0; i < total; i++) writes.push(gate.record(date, free(`seat-${i}`, 1)));
        await Promise.all(writes);

        const behind = await changesOf(date, 0);
        expect(behind.version).to.equal(total);
        expect(behind.changes).to.equal(null);

        const within = await changesOf(date, total - SEAT_LOG_LIMIT);
        expect(within.version).to.equal(total);
        expect(within.epoch).to.equal(behind.epoch);
        expect(within.changes).to.have.length(SEAT_LOG_LIMIT);
        expect(within.changes?.[0]?.seatId).to.equal(`seat-${total - SEAT_LOG_LIMIT}`);
        expect(within.changes?.at(-1)?.seatId).to.equal(`seat-${total - 1}`);

        const last = await changesOf(date, total - 1);
        expect(last.changes?.map((change) => change.seatId)).to.deep.equal([`seat-${total - 1}`]);
      });
    });

    describe("lookupWithSeat", () => {
      it("returns the token's snapshot and the seat's entry together", async () => {
        const date = newDate();
        const hold = held("seat-1", 3, "bob");
        await gate.record(date, hold);
        const issued = await store.issue({
          concertId: "concert-1",
          userId: "ann",
          tokenId: "tok-1",
          tokenHash: "hash-1",
          now: clock.ms(),
        });

        const found = await store.lookupWithSeat("concert-1", "hash-1", clock.ms(), false, {
          dateId: date.dateId,
          seatId: "seat-1",
        });
        expect(found.snapshot).to.deep.equal(issued.snapshot);
        expect(found.seat).to.deep.equal({
          seatVersion: 3,
          state: "held",
          heldUntil: hold.heldUntil,
          owner: "bob",
        });

        const unknownSeat = await store.lookupWithSeat("concert-1", "hash-1", clock.ms(), false, {
          dateId: date.dateId,
          seatId: "seat-2",
        });
        expect(unknownSeat).to.deep.equal({ snapshot: issued.snapshot, seat: null });
      });

      it("returns a null snapshot with the seat's entry for an unknown token hash", async () => {
        const date = newDate();
        await gate.record(date, sold("seat-1", 2, "bob"));
        const found = await store.lookupWithSeat("concert-1", "hash-unknown", clock.ms(), true, {
          dateId: date.dateId,
          seatId: "seat-1",
        });
        expect(found).to.deep.equal({
          snapshot: null,
          seat: { seatVersion: 2, state: "sold", heldUntil: 0, owner: "bob" },
        });
      });
    });

    describe("keyed by concert and date", () => {
      it("reads a seat of a token's lookup under the token's concert only", async () => {
        const elsewhere = newDate("concert-2");
        await gate.record(elsewhere, sold("seat-1", 2, "bob"));
        await store.issue({
          concertId: "concert-1",
          userId: "ann",
          tokenId: "tok-1",
          tokenHash: "hash-1",
          now: clock.ms(),
        });
        const found = await store.lookupWithSeat("concert-1", "hash-1", clock.ms(), false, {
          dateId: elsewhere.dateId,
          seatId: "seat-1",
        });
        expect(found.snapshot?.tokenId).to.equal("tok-1");
        // Unknown there: the hold goes to the database, which refuses another concert's seat.
        expect(found.seat).to.equal(null);
        expect(await gate.peek({ ...elsewhere, concertId: "concert-1" }, "seat-1")).to.equal(null);
        expect((await gate.peek(elsewhere, "seat-1"))?.state).to.equal("sold");
      });
    });

    // Only a gate kept outside the process can lose part of its state.
    if (!features.losesKeys) return;

    describe("losing a date's keys", () => {
      it("starts a new epoch and counter on the next record, so listings rebuild", async () => {
        const lose = harness.loseDate?.bind(harness);
        if (lose === undefined) throw new Error("this harness cannot lose a date's keys");
        const date = newDate();
        await recordAll(date, [held("seat-1", 4), free("seat-2", 1), sold("seat-3", 2)]);
        const before = await changesOf(date, 0);
        expect(before.version).to.equal(3);

        expect(await lose(store, date)).to.be.greaterThan(0);
        expect(await gate.peek(date, "seat-1")).to.equal(null);
        expect(await changesOf(date, 3)).to.deep.equal({ epoch: "", version: 0, changes: null });

        await gate.record(date, free("seat-1", 5));
        const after = await changesOf(date, 0);
        expect(after.epoch).to.be.a("string").and.not.equal("");
        expect(after.epoch).not.to.equal(before.epoch);
        expect(after.version).to.equal(1);
        expect(after.changes?.map(logged)).to.deep.equal([logged(free("seat-1", 5))]);
        // A listing still at the old counter is told to rebuild.
        expect((await changesOf(date, 3)).changes).to.equal(null);
      });
    });
  });
}

seatGateContract(
  "MemoryQueueStore",
  async () => ({
    async open() {
      return new MemoryQueueStore(LIMITS);
    },
    async cleanUp() {},
    async dispose() {},
  }),
  { losesKeys: false },
);

const redisUrl = testRedisUrl;
if (redisUrl === undefined) {
  describe("RedisQueueStore.seats (SeatGate contract)", () => {
    reportRedisSkipped("RedisQueueStore.seats (SeatGate contract)");
  });
} else {
  seatGateContract(
    "RedisQueueStore",
    async () => {
      const client: QueueRedisClient = await connectTestRedis(redisUrl);
      const prefixes = new WeakMap<QueueStore, string>();
      let opened: string[] = [];

      async function deleteMatching(pattern: string): Promise<number> {
        let deleted = 0;
        for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: 1000 })) {
          if (keys.length > 0) deleted += await client.del(keys);
        }
        return deleted;
      }

      return {
        async open() {
          const prefix = uniqueKeyPrefix();
          opened.push(prefix);
          const store = new RedisQueueStore(client, LIMITS, prefix);
          prefixes.set(store, prefix);
          return store;
        },
        async loseDate(store, date) {
          const prefix = prefixes.get(store);
          if (prefix === undefined) throw new Error("a store this harness did not open");
          // Every key of one date starts with the same name (see redis-keys.ts).
          return deleteMatching(`${prefix}{${date.concertId}}:g:${date.dateId}:*`);
        },
        async cleanUp() {
          const done = opened;
          opened = [];
          for (const prefix of done) await deleteMatching(`${prefix}*`);
        },
        async dispose() {
          client.destroy();
        },
      };
    },
    { losesKeys: true },
  );
}

// The same contract on the three-master Redis Cluster the tests start: a
// token lookup and a seat's entry are read in one script, so they must share
// the concert's slot, or the cluster refuses the call.
const clusterMissing = await redisClusterUnavailable();
if (clusterMissing !== undefined) {
  describe("RedisQueueStore on Redis Cluster.seats (SeatGate contract)", () => {
    reportRedisClusterSkipped("RedisQueueStore on Redis Cluster.seats", clusterMissing);
  });
} else {
  seatGateContract(
    "RedisQueueStore on Redis Cluster",
    async () => {
      const cluster = await sharedRedisCluster();
      const client = await cluster.connect();
      const prefixes = new WeakMap<QueueStore, string>();
      let opened: string[] = [];
      return {
        async open() {
          const prefix = uniqueKeyPrefix();
          opened.push(prefix);
          const store = new RedisQueueStore(client, LIMITS, prefix);
          prefixes.set(store, prefix);
          return store;
        },
        async loseDate(store, date) {
          const prefix = prefixes.get(store);
          if (prefix === undefined) throw new Error("a store this harness did not open");
          return cluster.deleteMatching(`${prefix}{${date.concertId}}:g:${date.dateId}:*`);
        },
        async cleanUp() {
          const done = opened;
          opened = [];
          for (const prefix of done) await cluster.deleteMatching(`${prefix}*`);
        },
        async dispose() {
          await client.close();
        },
      };
    },
    { losesKeys: true },
  );
}
