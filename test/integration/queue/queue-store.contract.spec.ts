import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import { expect } from "chai";
import { MemoryQueueStore } from "../../../server/src/modules/queue/memory-queue-store.js";
import { drawOrder } from "../../../server/src/modules/queue/opening-draw.js";
import type {
  IssueResult,
  LineDigest,
  LineSettings,
  QueueLimits,
  QueueSnapshot,
  QueueStore,
} from "../../../server/src/modules/queue/queue-store.js";
import { queueScripts } from "../../../server/src/modules/queue/redis-queue-scripts.js";
import {
  type QueueRedis,
  RedisQueueStore,
} from "../../../server/src/modules/queue/redis-queue-store.js";
import { createRedisClient } from "../../../server/src/redis/redis-client.js";
import { FakeClock } from "../../support/fake-clock.js";
import {
  redisClusterUnavailable,
  reportRedisClusterSkipped,
  sharedRedisCluster,
} from "../../support/redis-cluster.js";
import { must } from "../../unit/unit-helpers.js";

/**
 * How the contract reaches one store implementation. Everything a harness
 * opens during a test is released by `cleanUp`, everything else by `dispose`.
 */
interface StoreHarness {
  /** A store over a fresh, empty line. */
  open(limits: QueueLimits): Promise<QueueStore>;
  /** The same line as seen by a server that restarted after `store` shut down. */
  restart(store: QueueStore, limits: QueueLimits): Promise<QueueStore>;
  /** `count` handles on the line of `store` that really race each other. */
  racers(store: QueueStore, limits: QueueLimits, count: number): Promise<QueueStore[]>;
  cleanUp(): Promise<void>;
  dispose(): Promise<void>;
}

const CONCERT = "concert-1";
const LIMITS: QueueLimits = {
  maxActive: 1,
  admissionTtlMs: 60_000,
  idleMs: 30_000,
  graceMs: 600_000,
};

/** The one contract both stores must pass. */
function queueStoreContract(name: string, makeHarness: () => Promise<StoreHarness>): void {
  describe(`${name} (QueueStore contract)`, () => {
    let harness: StoreHarness;
    let clock: FakeClock;
    let ids = 0;

    before(async () => {
      harness = await makeHarness();
    });
    beforeEach(() => {
      clock = new FakeClock();
    });
    afterEach(async () => {
      await harness.cleanUp();
    });
    after(async () => {
      await harness?.dispose();
    });

    /** Issues a token for the user with fresh ids. */
    function join(store: QueueStore, userId: string, concertId = CONCERT): Promise<IssueResult> {
      ids++;
      return store.issue({
        concertId,
        userId,
        tokenId: `tok-${ids}`,
        tokenHash: `hash-${ids}`,
        now: clock.ms(),
      });
    }

    async function state(store: QueueStore, tokenId: string): Promise<QueueSnapshot | null> {
      const map = await store.snapshots(CONCERT, [tokenId], clock.ms(), false);
      return map.get(tokenId) ?? null;
    }

    async function positions(store: QueueStore, tokenIds: string[]): Promise<number[]> {
      const map = await store.snapshots(CONCERT, tokenIds, clock.ms(), false);
      return tokenIds.map((id) => map.get(id)?.position ?? -1);
    }

    async function version(store: QueueStore, concertId = CONCERT): Promise<number> {
      const [v] = await store.versions([concertId]);
      return v ?? -1;
    }

    /** Joins each user in turn (not concurrently), so arrival order is the list's order. */
    async function joinAll(store: QueueStore, users: string[]): Promise<string[]> {
      const tokens: string[] = [];
      for (const user of users) tokens.push((await join(store, user)).snapshot.tokenId);
      return tokens;
    }

    describe("admission", () => {
      it("admits a newcomer in the issue call when a slot is free and nobody waits", async () => {
        const store = await harness.open(LIMITS);
        const { created, snapshot } = await join(store, "ann");
        expect(created).to.equal(true);
        expect(snapshot).to.deep.include({
          userId: "ann",
          concertId: CONCERT,
          state: "admitted",
          position: 0,
          waitingCount: 0,
          lastSeenAt: 0,
          admissionExpiresAt: clock.ms() + LIMITS.admissionTtlMs,
          averageAdmissionMs: LIMITS.admissionTtlMs,
        });
      });

      it("admits a newcomer who finds the line empty without moving the line, after ending what expired", async () => {
        const store = await harness.open({ ...LIMITS, idleMs: 3_600_000 });
        const [a] = (await joinAll(store, ["a"])) as [string];
        const before = await version(store);
        clock.advance(LIMITS.admissionTtlMs);
        // a's admission ends in the same call, which frees the one place for b.
        const b = (await join(store, "b")).snapshot;
        expect([b.state, b.position, b.waitingCount]).to.deep.equal(["admitted", 0, 0]);
        expect((await state(store, a))?.state).to.equal("expired");
        // Nobody's position moved: the watchers' version stays.
        expect(await version(store)).to.equal(before);
        // The place is taken now: the next newcomer waits, first in line.
        const c = (await join(store, "c")).snapshot;
        expect([c.state, c.position, c.waitingCount]).to.deep.equal(["waiting", 1, 1]);
        const { admissions } = await store.drainAdmissions(CONCERT);
        expect(admissions.map((x) => [x.arrival, x.joinedAt, x.admittedAt])).to.deep.equal([
          [1, clock.ms() - LIMITS.admissionTtlMs, clock.ms() - LIMITS.admissionTtlMs],
          [2, clock.ms(), clock.ms()],
        ]);
      });

      it("admits in arrival order (FIFO) as slots free up", async () => {
        const store = await harness.open({ ...LIMITS, maxActive: 2 });
        const [a, b, c, d, e] = await joinAll(store, ["a", "b", "c", "d", "e"]);
        expect(await positions(store, [a, b, c, d, e] as string[])).to.deep.equal([0, 0, 1, 2, 3]);

        await store.complete(CONCERT, a as string, clock.ms());
        expect((await state(store, c as string))?.state).to.equal("admitted");
        expect(await positions(store, [d, e] as string[])).to.deep.equal([1, 2]);

        await store.leave(CONCERT, b as string, clock.ms());
        expect((await state(store, d as string))?.state).to.equal("admitted");
        expect((await state(store, e as string))?.position).to.equal(1);
      });

      it("fills a slot freed by expiry at the next promote, in order", async () => {
        const limits = { ...LIMITS, idleMs: 3_600_000 };
        const store = await harness.open(limits);
        const [a, b, c] = (await joinAll(store, ["a", "b", "c"])) as [string, string, string];
        clock.advance(LIMITS.admissionTtlMs - 1);
        expect(await store.promote(CONCERT, clock.ms())).to.equal(0);
        expect((await state(store, a))?.state).to.equal("admitted");

        clock.advance(1);
        expect((await state(store, a))?.state).to.equal("expired");
        expect((await state(store, b))?.state).to.equal("waiting");
        expect(await store.promote(CONCERT, clock.ms())).to.equal(1);
        const admitted = await state(store, b);
        expect(admitted?.state).to.equal("admitted");
        expect(admitted?.admissionExpiresAt).to.equal(clock.ms() + LIMITS.admissionTtlMs);
        expect((await state(store, c))?.position).to.equal(1);
      });

      it("fills a slot freed by leave or complete at once", async () => {
        const store = await harness.open(LIMITS);
        const [a, b, c] = (await joinAll(store, ["a", "b", "c"])) as [string, string, string];
        await store.leave(CONCERT, a, clock.ms());
        expect((await state(store, b))?.state).to.equal("admitted");
        await store.complete(CONCERT, b, clock.ms());
        expect((await state(store, c))?.state).to.equal("admitted");
        expect(await store.promote(CONCERT, clock.ms())).to.equal(0);
      });

      it("never admits more than maxActive, even with racing admitters", async () => {
        const limits = { ...LIMITS, maxActive: 3, idleMs: 3_600_000 };
        const store = await harness.open(limits);
        const racers = await harness.racers(store, limits, 5);
        const issued: string[] = [];
        let peak = 0;
        let observations = 0;

        const observe = async (view: QueueStore) => {
          const snaps = await view.snapshots(CONCERT, [...issued], clock.ms(), false);
          const admitted = [...snaps.values()].filter((s) => s?.state === "admitted").length;
          // Recorded, not asserted here: a throw inside a loop would surface
          // as an unhandled rejection instead of this test's failure.
          peak = Math.max(peak, admitted);
          observations++;
        };
        let running = true;
        const admitters = racers.map(async (view) => {
          // At least 40 rounds each, so the admitters overlap all of the churn.
          for (let round = 0; running || round < 40; round++) {
            await view.promote(CONCERT, clock.ms());
            await observe(view);
            await nextTurn();
          }
        });
        // Users keep arriving through every instance while the others admit.
        const issuers = racers.map(async (racer, r) => {
          for (let i = 0; i < 12; i++) {
            const { snapshot } = await join(racer, `user-${r}-${i}`);
            issued.push(snapshot.tokenId);
            expect(snapshot.state === "admitted" || snapshot.state === "waiting").to.equal(true);
            await nextTurn();
          }
        });
        const churn = (async () => {
          for (let round = 0; round < 30; round++) {
            const racer = racers[round % racers.length] as QueueStore;
            const snaps = await racer.snapshots(CONCERT, [...issued], clock.ms(), false);
            const admitted = [...snaps.values()].filter((s) => s?.state === "admitted");
            const first = admitted[0];
            if (first !== undefined && first !== null) {
              if (round % 2 === 0) await racer.complete(CONCERT, first.tokenId, clock.ms());
              else await racer.leave(CONCERT, first.tokenId, clock.ms());
            }
            if (round % 10 === 9) clock.advance(limits.admissionTtlMs);
            await nextTurn();
          }
        })();
        try {
          await Promise.all([...issuers, churn]);
        } finally {
          // Stops the admitters even when an issuer failed, so the test ends.
          running = false;
          await Promise.all(admitters);
        }

        await store.promote(CONCERT, clock.ms());
        await observe(store);
        const snaps = [...(await store.snapshots(CONCERT, issued, clock.ms(), false)).values()];
        const admitted = snaps.filter((s) => s?.state === "admitted");
        const waiting = snaps.filter((s) => s?.state === "waiting") as QueueSnapshot[];
        expect(observations).to.be.greaterThan(5 * 40);
        // Full at some point, and never beyond the limit at any observation.
        expect(peak).to.equal(limits.maxActive);
        expect(admitted.length).to.equal(limits.maxActive);
        // The line stays one consistent order: positions 1..n, each exactly once.
        expect(waiting.map((s) => s.position).sort((x, y) => x - y)).to.deep.equal(
          waiting.map((_, i) => i + 1),
        );
        for (const s of waiting) expect(s.waitingCount).to.equal(waiting.length);
      });
    });

    describe("idle eviction", () => {
      it("evicts a waiter idle past idleMs on lookup, not a moment before", async () => {
        const store = await harness.open(LIMITS);
        await join(store, "a");
        const { snapshot } = await join(store, "b");
        const hash = `hash-${ids}`;
        expect(snapshot.lastSeenAt).to.equal(clock.ms());

        clock.advance(LIMITS.idleMs);
        const still = await store.lookup(CONCERT, hash, clock.ms(), false);
        expect(still?.state).to.equal("waiting");
        expect(still?.lastSeenAt).to.equal(snapshot.lastSeenAt);

        clock.advance(1);
        const evicted = await store.lookup(CONCERT, hash, clock.ms(), false);
        expect(evicted).to.deep.include({
          tokenId: snapshot.tokenId,
          state: "evicted",
          position: 0,
          waitingCount: 0,
          lastSeenAt: 0,
        });
        expect((await store.lookup(CONCERT, hash, clock.ms(), true))?.state).to.equal("evicted");
      });

      it("keeps the place of a waiter whose lookups touch it", async () => {
        const store = await harness.open(LIMITS);
        await join(store, "a");
        const [, c] = (await joinAll(store, ["b", "c"])) as [string, string];
        const cHash = `hash-${ids}`;
        clock.advance(LIMITS.idleMs - 1);
        const touched = await store.lookup(CONCERT, cHash, clock.ms(), true);
        expect(touched?.lastSeenAt).to.equal(clock.ms());

        clock.advance(2);
        await store.promote(CONCERT, clock.ms());
        const kept = await store.lookup(CONCERT, cHash, clock.ms(), false);
        expect(kept).to.deep.include({
          tokenId: c,
          state: "waiting",
          position: 1,
          waitingCount: 1,
        });
      });

      it("does not let evicted waiters block the line", async () => {
        const store = await harness.open(LIMITS);
        const [a, b, c, d] = (await joinAll(store, ["a", "b", "c", "d"])) as string[];
        clock.advance(LIMITS.idleMs / 2);
        await store.snapshots(CONCERT, [d as string], clock.ms(), true);
        clock.advance(LIMITS.idleMs / 2 + 1);

        await store.complete(CONCERT, a as string, clock.ms());
        expect((await state(store, d as string))?.state).to.equal("admitted");
        expect((await state(store, b as string))?.state).to.equal("evicted");
        expect((await state(store, c as string))?.state).to.equal("evicted");
        const { snapshot } = await join(store, "e");
        expect(snapshot).to.deep.include({ state: "waiting", position: 1, waitingCount: 1 });
      });

      it("evicts idle waiters in snapshots, like lookup", async () => {
        const store = await harness.open(LIMITS);
        const [, b, c] = (await joinAll(store, ["a", "b", "c"])) as [string, string, string];
        clock.advance(LIMITS.idleMs / 2);
        await store.snapshots(CONCERT, [c], clock.ms(), true);
        clock.advance(LIMITS.idleMs / 2 + 1);
        const snaps = await store.snapshots(CONCERT, [b, c], clock.ms(), false);
        expect(snaps.get(b)?.state).to.equal("evicted");
        expect(snaps.get(c)).to.deep.include({ state: "waiting", position: 1, waitingCount: 1 });
      });
    });

    describe("positions", () => {
      it("are live: someone ahead leaves and the places behind move up", async () => {
        const store = await harness.open(LIMITS);
        const [, b, c, d, e] = (await joinAll(store, ["a", "b", "c", "d", "e"])) as string[];
        const line = [b, c, d, e] as string[];
        expect(await positions(store, line)).to.deep.equal([1, 2, 3, 4]);
        await store.leave(CONCERT, c as string, clock.ms());
        expect(await positions(store, line)).to.deep.equal([1, 0, 2, 3]);
        await store.leave(CONCERT, b as string, clock.ms());
        expect(await positions(store, line)).to.deep.equal([0, 0, 1, 2]);
        expect((await state(store, e as string))?.waitingCount).to.equal(2);
      });

      it("are right in a long line (20k waiting)", async () => {
        const store = await harness.open(LIMITS);
        const users = Array.from({ length: 20_001 }, (_, i) => `u${i}`);
        const tokens: string[] = [];
        for (let i = 0; i < users.length; i += 500) {
          // Calls on one store execute in call order, so arrival order is kept.
          const batch = users.slice(i, i + 500).map((u) => join(store, u));
          for (const r of await Promise.all(batch)) tokens.push(r.snapshot.tokenId);
        }
        const gone = new Set<number>();
        for (let i = 1; i <= 3000; i += 7) gone.add(i);
        await Promise.all(
          [...gone].map((i) => store.leave(CONCERT, tokens[i] as string, clock.ms())),
        );

        const samples = [1, 2, 3, 6, 8, 999, 1000, 2999, 3000, 3001, 12_345, 19_999, 20_000];
        for (let k = 0; k < 40; k++) samples.push(1 + Math.floor(Math.random() * 20_000));
        const expected = samples.map((i) => {
          if (gone.has(i)) return 0;
          let removedAhead = 0;
          for (const g of gone) if (g < i) removedAhead++;
          return i - removedAhead;
        });
        expect(
          await positions(
            store,
            samples.map((i) => tokens[i] as string),
          ),
        ).to.deep.equal(expected);
        const last = await store.lookup(CONCERT, `hash-${ids}`, clock.ms(), false);
        expect(last?.waitingCount).to.equal(20_000 - gone.size);
        expect(last?.position).to.equal(20_000 - gone.size);
      });
    });

    describe("issue", () => {
      it("returns one token and one place for 50 concurrent issues by one user", async () => {
        const store = await harness.open(LIMITS);
        await join(store, "someone-admitted");
        const racers = await harness.racers(store, LIMITS, 5);
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            join(racers[i % racers.length] as QueueStore, "zoe"),
          ),
        );
        const tokenIds = new Set(results.map((r) => r.snapshot.tokenId));
        expect(tokenIds.size).to.equal(1);
        expect(results.filter((r) => r.created)).to.have.length(1);
        for (const r of results)
          expect(r.snapshot).to.deep.include({ position: 1, waitingCount: 1 });
      });

      it("returns the live waiting token and touches it", async () => {
        const store = await harness.open(LIMITS);
        await join(store, "a");
        const first = await join(store, "b");
        clock.advance(1000);
        const again = await join(store, "b");
        expect(again.created).to.equal(false);
        expect(again.snapshot).to.deep.include({
          tokenId: first.snapshot.tokenId,
          state: "waiting",
          position: 1,
          lastSeenAt: clock.ms(),
        });
      });

      it("returns the live admitted token", async () => {
        const store = await harness.open(LIMITS);
        const first = await join(store, "a");
        clock.advance(1000);
        const again = await join(store, "a");
        expect(again.created).to.equal(false);
        expect(again.snapshot).to.deep.equal(first.snapshot);
      });

      for (const [ending, end] of [
        [
          "completion",
          async (store: QueueStore, tokenId: string) =>
            store.complete(CONCERT, tokenId, clock.ms()),
        ],
        [
          "expiry",
          async () => {
            clock.advance(LIMITS.admissionTtlMs);
          },
        ],
      ] as const) {
        it(`issues a new token at the back after ${ending}, revoking the old one`, async () => {
          const store = await harness.open({ ...LIMITS, idleMs: 3_600_000 });
          const old = await join(store, "a");
          const oldHash = `hash-${ids}`;
          await joinAll(store, ["b", "c"]);
          await end(store, old.snapshot.tokenId);
          await store.promote(CONCERT, clock.ms());

          const fresh = await join(store, "a");
          expect(fresh.created).to.equal(true);
          expect(fresh.snapshot.tokenId).to.not.equal(old.snapshot.tokenId);
          expect(fresh.snapshot).to.deep.include({
            state: "waiting",
            position: 2,
            waitingCount: 2,
          });
          expect(await store.lookup(CONCERT, oldHash, clock.ms(), false)).to.equal(null);
          expect((await state(store, old.snapshot.tokenId))?.state).to.equal("revoked");
        });
      }

      it("issues a new token at the back after eviction, revoking the old one", async () => {
        const store = await harness.open(LIMITS);
        await join(store, "a");
        const old = await join(store, "b");
        const oldHash = `hash-${ids}`;
        clock.advance(LIMITS.idleMs + 1);
        const [c] = await joinAll(store, ["c"]);

        const fresh = await join(store, "b");
        expect(fresh.created).to.equal(true);
        expect(fresh.snapshot.tokenId).to.not.equal(old.snapshot.tokenId);
        expect(fresh.snapshot).to.deep.include({ state: "waiting", position: 2, waitingCount: 2 });
        expect((await state(store, c as string))?.position).to.equal(1);
        expect(await store.lookup(CONCERT, oldHash, clock.ms(), false)).to.equal(null);
      });

      it("issues a new token after the user left", async () => {
        const store = await harness.open(LIMITS);
        const old = await join(store, "a");
        await store.leave(CONCERT, old.snapshot.tokenId, clock.ms());
        expect(await store.lookup(CONCERT, `hash-${ids}`, clock.ms(), false)).to.equal(null);
        expect((await state(store, old.snapshot.tokenId))?.state).to.equal("left");
        const fresh = await join(store, "a");
        expect(fresh.created).to.equal(true);
        expect(fresh.snapshot.state).to.equal("admitted");
      });

      it("rejects a token id or hash that is already in use", async () => {
        const store = await harness.open(LIMITS);
        const first = await join(store, "a");
        const attempt = store.issue({
          concertId: CONCERT,
          userId: "b",
          tokenId: first.snapshot.tokenId,
          tokenHash: "hash-unused",
          now: clock.ms(),
        });
        let failure: unknown;
        await attempt.catch((err: unknown) => {
          failure = err;
        });
        expect(failure).to.be.instanceOf(Error);
        expect(String((failure as Error).message)).to.match(/already in use/);
        expect((await state(store, first.snapshot.tokenId))?.userId).to.equal("a");
      });
    });

    describe("completion and averages", () => {
      it("keeps a completed token as `completed` until its admission would end", async () => {
        const store = await harness.open(LIMITS);
        const { snapshot } = await join(store, "a");
        const hash = `hash-${ids}`;
        clock.advance(10_000);
        await store.complete(CONCERT, snapshot.tokenId, clock.ms());
        const done = await store.lookup(CONCERT, hash, clock.ms(), true);
        expect(done).to.deep.include({
          state: "completed",
          position: 0,
          admissionExpiresAt: snapshot.admissionExpiresAt,
          averageAdmissionMs: 10_000,
        });
        clock.set(snapshot.admissionExpiresAt - 1);
        expect((await store.lookup(CONCERT, hash, clock.ms(), false))?.state).to.equal("completed");
        clock.advance(1);
        expect((await store.lookup(CONCERT, hash, clock.ms(), false))?.state).to.equal("expired");
      });

      it("ignores complete for tokens that are not admitted", async () => {
        const store = await harness.open(LIMITS);
        await join(store, "a");
        const { snapshot } = await join(store, "b");
        await store.complete(CONCERT, snapshot.tokenId, clock.ms());
        expect((await state(store, snapshot.tokenId))?.state).to.equal("waiting");
        await store.complete(CONCERT, "tok-unknown", clock.ms());
        await store.leave(CONCERT, "tok-unknown", clock.ms());
      });

      it("averages admission durations (EWMA), starting from the admission TTL", async () => {
        const store = await harness.open(LIMITS);
        const [a, b, c] = (await joinAll(store, ["a", "b", "c"])) as [string, string, string];
        expect((await state(store, a))?.averageAdmissionMs).to.equal(LIMITS.admissionTtlMs);
        await store.snapshots(CONCERT, [b, c], clock.ms() + 10_000, true);
        clock.advance(10_000);
        await store.complete(CONCERT, a, clock.ms());
        expect((await state(store, b))?.averageAdmissionMs).to.equal(10_000);
        clock.advance(20_000);
        await store.snapshots(CONCERT, [c], clock.ms(), true);
        await store.leave(CONCERT, b, clock.ms());
        expect((await state(store, c))?.averageAdmissionMs).to.equal(12_000);
        clock.advance(LIMITS.admissionTtlMs);
        await store.promote(CONCERT, clock.ms());
        expect((await state(store, c))?.averageAdmissionMs).to.equal(21_600);
      });
    });

    describe("versions and concerts", () => {
      it("change when positions move, not when someone joins at the back", async () => {
        const store = await harness.open(LIMITS);
        expect(await store.versions([CONCERT, "no-such-concert"])).to.deep.equal([0, 0]);
        const [a, b] = (await joinAll(store, ["a", "b"])) as [string, string];
        let before = await version(store);

        await joinAll(store, ["c", "d"]);
        await store.lookup(CONCERT, `hash-${ids}`, clock.ms(), true);
        await store.promote(CONCERT, clock.ms());
        expect(await version(store)).to.equal(before);

        await store.leave(CONCERT, b, clock.ms());
        expect(await version(store)).to.not.equal(before);

        before = await version(store);
        await store.complete(CONCERT, a, clock.ms());
        expect(await version(store)).to.not.equal(before);

        before = await version(store);
        clock.advance(LIMITS.idleMs + 1);
        await store.promote(CONCERT, clock.ms());
        expect(await version(store)).to.not.equal(before);
      });

      it("does not change when an admission ends and nobody waits", async () => {
        const store = await harness.open(LIMITS);
        await join(store, "a");
        const before = await version(store);
        clock.advance(LIMITS.admissionTtlMs);
        await store.promote(CONCERT, clock.ms());
        expect(await version(store)).to.equal(before);
      });

      it("lists the concerts that have a line", async () => {
        const store = await harness.open(LIMITS);
        expect(await store.concerts()).to.deep.equal([]);
        await join(store, "a", "concert-x");
        await join(store, "a", "concert-y");
        await join(store, "b", "concert-x");
        expect((await store.concerts()).sort()).to.deep.equal(["concert-x", "concert-y"]);
      });
    });

    describe("line digests and batched touches (watch streams)", () => {
      /** What a watcher keeps from successive digests of one concert. */
      class DerivedLine {
        after = -1;
        head = 0;
        departed = new Set<number>();
        digests: LineDigest[] = [];

        async read(store: QueueStore, concertId = CONCERT): Promise<LineDigest> {
          const digest = await store.lineDigest(concertId, this.after);
          this.digests.push(digest);
          if (digest.reset) this.departed = new Set();
          for (const seq of digest.departed) this.departed.add(seq);
          for (const seq of this.departed) if (seq <= digest.head) this.departed.delete(seq);
          this.head = digest.head;
          this.after = digest.departures;
          return digest;
        }

        position(arrival: number): number {
          let ahead = 0;
          for (const seq of this.departed) if (seq < arrival) ahead++;
          return 1 + (arrival - this.head) - ahead;
        }
      }

      /** Every waiter's exact snapshot position next to the one derived from `line`. */
      async function compare(store: QueueStore, line: DerivedLine, tokenIds: string[]) {
        const snaps = await store.snapshots(CONCERT, tokenIds, clock.ms(), false);
        const exact: number[] = [];
        const derived: number[] = [];
        for (const tokenId of tokenIds) {
          const snap = snaps.get(tokenId);
          if (snap?.state !== "waiting") continue;
          exact.push(snap.position);
          derived.push(line.position(snap.arrival));
        }
        return { exact, derived };
      }

      it("number arrivals in line order, and only waiters carry one", async () => {
        const store = await harness.open(LIMITS);
        const [a, b, c] = (await joinAll(store, ["a", "b", "c"])) as string[];
        const snaps = await store.snapshots(CONCERT, [a, b, c] as string[], clock.ms(), false);
        expect(snaps.get(a as string)?.arrival).to.equal(0);
        const bArrival = must(snaps.get(b as string)).arrival;
        expect(bArrival).to.be.greaterThan(0);
        expect(must(snaps.get(c as string)).arrival).to.equal(bArrival + 1);
        // Another concert's line is numbered on its own.
        const other = await join(store, "z", "concert-2");
        const next = await join(store, "y", "concert-2");
        expect(other.snapshot.arrival).to.equal(0);
        expect(next.snapshot.arrival).to.equal(2);
      });

      it("derive every exact position through leaves, evictions, admissions and re-issues", async () => {
        const store = await harness.open({ ...LIMITS, maxActive: 2 });
        const users = Array.from({ length: 30 }, (_, i) => `u${i}`);
        const tokens = await joinAll(store, users);
        const line = new DerivedLine();
        const first = await line.read(store);
        expect(first.reset).to.equal(true);
        expect(first.waitingCount).to.equal(28);
        let { exact, derived } = await compare(store, line, tokens);
        expect(derived).to.deep.equal(exact);

        // Leaves from the middle and the back.
        for (const i of [10, 29, 11]) await store.leave(CONCERT, tokens[i] as string, clock.ms());
        // An admission ends: the head moves (not logged as a departure).
        await store.complete(CONCERT, tokens[0] as string, clock.ms());
        const step = await line.read(store);
        expect(step.reset).to.equal(false);
        expect([...step.departed].sort((a, b) => a - b)).to.have.length(3);
        ({ exact, derived } = await compare(store, line, tokens));
        expect(derived).to.deep.equal(exact);
        expect(exact).to.have.length(24);

        // Half the line goes idle and is evicted; one evicted fan joins again at the back.
        clock.advance(LIMITS.idleMs / 2);
        const keep = tokens.filter((_, i) => i % 2 === 0);
        await store.touchMany(CONCERT, keep, clock.ms());
        clock.advance(LIMITS.idleMs / 2 + 1);
        await store.promote(CONCERT, clock.ms());
        const again = await join(store, "u5");
        ({ exact, derived } = await (async () => {
          await line.read(store);
          return compare(store, line, [...tokens, again.snapshot.tokenId]);
        })());
        expect(derived).to.deep.equal(exact);
        expect(exact.length).to.be.greaterThan(5);

        // A newcomer (after = -1) gets the full set at once, and derives the same.
        const fresh = new DerivedLine();
        expect((await fresh.read(store)).reset).to.equal(true);
        const fromScratch = await compare(store, fresh, [...tokens, again.snapshot.tokenId]);
        expect(fromScratch.derived).to.deep.equal(exact);
      });

      it("report the head, the count and the version, and nothing new when nothing left", async () => {
        const store = await harness.open(LIMITS);
        const empty = await store.lineDigest(CONCERT, -1);
        expect(empty).to.deep.include({ waitingCount: 0, departures: 0, reset: true });
        expect(empty.departed).to.deep.equal([]);
        const [, b, c] = (await joinAll(store, ["a", "b", "c"])) as string[];
        const line = new DerivedLine();
        const digest = await line.read(store);
        const snapB = must(await state(store, b as string));
        expect(digest).to.deep.include({
          head: snapB.arrival,
          waitingCount: 2,
          version: await version(store),
          averageAdmissionMs: LIMITS.admissionTtlMs,
        });
        const [d] = (await joinAll(store, ["d"])) as string[];
        const same = await line.read(store);
        expect(same).to.deep.include({ reset: false, departures: digest.departures });
        expect(same.departed).to.deep.equal([]);
        // Nobody waits: the head is the next arrival number.
        for (const id of [b, c, d]) await store.leave(CONCERT, id as string, clock.ms());
        const drained = await line.read(store);
        expect(drained.waitingCount).to.equal(0);
        const next = await join(store, "e");
        expect(next.snapshot.arrival).to.equal(drained.head);
      });

      it("derive the same exact positions after a restart", async () => {
        let store = await harness.open(LIMITS);
        const tokens = await joinAll(store, ["a", "b", "c", "d", "e", "f", "g"]);
        for (const i of [2, 4]) await store.leave(CONCERT, tokens[i] as string, clock.ms());
        store = await harness.restart(store, LIMITS);
        const line = new DerivedLine();
        expect((await line.read(store)).reset).to.equal(true);
        let { exact, derived } = await compare(store, line, tokens);
        expect(exact).to.deep.equal([1, 2, 3, 4]);
        expect(derived).to.deep.equal(exact);
        // The restarted line numbers newcomers after the last arrival.
        const late = await join(store, "h");
        await store.leave(CONCERT, tokens[5] as string, clock.ms());
        await line.read(store);
        ({ exact, derived } = await compare(store, line, [...tokens, late.snapshot.tokenId]));
        expect(exact).to.deep.equal([1, 2, 3, 4]);
        expect(derived).to.deep.equal(exact);
      });

      it("restart from scratch once the caller's count is unknown to the log", async () => {
        const store = await harness.open(LIMITS);
        const tokens = await joinAll(store, ["a", "b", "c", "d", "e"]);
        await store.leave(CONCERT, tokens[2] as string, clock.ms());
        const digest = await store.lineDigest(CONCERT, -1);
        expect(digest.reset).to.equal(true);
        // A count from the future (another store's, or before a restart) is not trusted.
        const ahead = await store.lineDigest(CONCERT, digest.departures + 5);
        expect(ahead.reset).to.equal(true);
        expect(ahead.departed).to.deep.equal(digest.departed);
      });

      it("touch many waiters in one call, but not admitted, idle or other concerts' tokens", async () => {
        const store = await harness.open(LIMITS);
        const [a, b, c, d] = (await joinAll(store, ["a", "b", "c", "d"])) as string[];
        const other = await join(store, "x", "concert-2");
        clock.advance(LIMITS.idleMs / 2);
        const touched = await store.touchMany(
          CONCERT,
          [a, b, c, other.snapshot.tokenId, "no-such-token"] as string[],
          clock.ms(),
        );
        expect(touched).to.equal(2);
        expect((await state(store, b as string))?.lastSeenAt).to.equal(clock.ms());
        expect((await state(store, d as string))?.lastSeenAt).to.equal(
          clock.ms() - LIMITS.idleMs / 2,
        );
        // Never backwards.
        expect(await store.touchMany(CONCERT, [b as string], clock.ms() - 10)).to.equal(0);
        expect((await state(store, b as string))?.lastSeenAt).to.equal(clock.ms());
        // A place already lost is not given back.
        clock.advance(LIMITS.idleMs / 2 + 1);
        expect(await store.touchMany(CONCERT, [d as string], clock.ms())).to.equal(0);
        expect((await state(store, d as string))?.state).to.equal("evicted");
        expect((await state(store, c as string))?.state).to.equal("waiting");
      });
    });

    describe("retire (a concert whose sale ended)", () => {
      async function retire(store: QueueStore, concertId = CONCERT): Promise<boolean> {
        if (store.retire === undefined) expect.fail("the store cannot retire a concert");
        return store.retire(concertId, clock.ms());
      }

      it("lets the waiters go a batch at a time, then leaves the list; admissions run their course", async () => {
        const store = await harness.open(LIMITS);
        const admitted = (await join(store, "first")).snapshot.tokenId;
        await join(store, "other", "concert-other");
        // More waiters than one call evicts (the scripts' BATCH of 1000).
        const waiters = await joinAll(
          store,
          Array.from({ length: 1005 }, (_, i) => `waiter-${i}`),
        );
        const before = await version(store);

        expect(await retire(store)).to.equal(false);
        expect((await store.concerts()).sort()).to.deep.equal(["concert-other", CONCERT].sort());
        const last = await state(store, waiters.at(-1) as string);
        expect([last?.state, last?.position, last?.waitingCount]).to.deep.equal(["waiting", 5, 5]);
        expect(await version(store)).to.equal(before + 1);

        expect(await retire(store)).to.equal(true);
        expect(await store.concerts()).to.deep.equal(["concert-other"]);
        for (const tokenId of [waiters[0], waiters.at(-1)] as string[]) {
          expect((await state(store, tokenId))?.state).to.equal("evicted");
        }
        // The waiters' records stay for the grace period, like any evicted token's.
        expect((await store.lookup(CONCERT, `hash-${ids}`, clock.ms(), true))?.state).to.equal(
          "evicted",
        );
        expect((await state(store, admitted))?.state).to.equal("admitted");
        expect(await retire(store), "again: nothing to do").to.equal(true);
        expect(await retire(store, "never-seen")).to.equal(true);

        // Someone queueing again (a date added later) opens the line again.
        const again = await join(store, "late");
        expect(again.snapshot.state).to.equal("waiting");
        expect((await store.concerts()).sort()).to.deep.equal(["concert-other", CONCERT].sort());
      });

      it("stays retired across a restart", async () => {
        const store = await harness.open(LIMITS);
        await joinAll(store, ["a", "b", "c"]);
        await join(store, "a", "concert-other");
        expect(await retire(store)).to.equal(true);
        const versions = await store.versions([CONCERT]);
        const reopened = await harness.restart(store, LIMITS);
        expect(await reopened.concerts()).to.deep.equal(["concert-other"]);
        expect(await reopened.versions([CONCERT])).to.deep.equal(versions);
      });
    });

    describe("scheduled opening, lobby and the brake", () => {
      const OPEN: LineSettings = {
        opensAt: 0,
        paused: false,
        maxActive: 0,
        admissionTtlMs: 0,
        holdMs: 0,
      };

      it("keeps early arrivals in a lobby, then draws them ahead of late arrivals", async () => {
        const store = await harness.open({ ...LIMITS, maxActive: 2 });
        const opensAt = clock.ms() + 60_000;
        expect(await store.configure(CONCERT, { ...OPEN, opensAt })).to.equal(true);
        const lobby = await joinAll(store, ["a", "b", "c", "d", "e", "f"]);
        for (const tokenId of lobby) {
          expect(await state(store, tokenId)).to.deep.include({
            state: "lobby",
            position: 0,
            arrival: 0,
            opensAt,
          });
        }
        // Coming back before the opening returns the same lobby token.
        expect((await join(store, "c")).created).to.equal(false);
        // Leaving the lobby takes the fan out of the draw.
        await store.leave(CONCERT, lobby[5] as string, clock.ms());
        clock.advance(59_999);
        expect(await store.promote(CONCERT, clock.ms())).to.equal(0);
        expect(await store.openingDraw(CONCERT)).to.equal(null);

        clock.advance(1);
        // The opening has come: the first call (here an issue) draws.
        const late = await joinAll(store, ["late-1", "late-2"]);
        const draw = must(await store.openingDraw(CONCERT));
        expect(draw.seed).to.match(/^[0-9a-f]{64}$/);
        expect(draw.drawnAt).to.equal(clock.ms());
        const stayed = lobby.slice(0, 5);
        expect([...draw.tokenIds].sort()).to.deep.equal([...stayed].sort());
        // Anyone can derive the order again from the seed and the lobby.
        expect(draw.tokenIds).to.deep.equal(drawOrder(draw.seed, stayed));
        const order = [...draw.tokenIds, ...late];
        const snaps = await store.snapshots(CONCERT, order, clock.ms(), false);
        expect(order.map((id) => snaps.get(id)?.state)).to.deep.equal([
          "admitted",
          "admitted",
          "waiting",
          "waiting",
          "waiting",
          "waiting",
          "waiting",
        ]);
        expect(order.map((id) => snaps.get(id)?.position)).to.deep.equal([0, 0, 1, 2, 3, 4, 5]);
        for (const snap of snaps.values()) expect(snap?.opensAt).to.equal(0);
        // The draw happens once: later calls change nothing.
        await store.promote(CONCERT, clock.ms() + 1);
        expect(await store.openingDraw(CONCERT)).to.deep.equal(draw);
      });

      it("keeps the lobby across a restart (settings mirrored again at startup)", async () => {
        const store = await harness.open(LIMITS);
        const opensAt = clock.ms() + 5_000;
        await store.configure(CONCERT, { ...OPEN, opensAt });
        const lobby = await joinAll(store, ["a", "b", "c"]);
        const reopened = await harness.restart(store, LIMITS);
        expect(await reopened.configure(CONCERT, { ...OPEN, opensAt })).to.equal(true);
        expect((await state(reopened, lobby[1] as string))?.state).to.equal("lobby");
        clock.advance(5_000);
        await reopened.promote(CONCERT, clock.ms());
        const draw = must(await reopened.openingDraw(CONCERT));
        expect(draw.tokenIds).to.deep.equal(drawOrder(draw.seed, lobby));
      });

      it("draws exactly once when many instances race at the opening", async () => {
        const limits = { ...LIMITS, maxActive: 3, idleMs: 3_600_000 };
        const store = await harness.open(limits);
        const racers = await harness.racers(store, limits, 5);
        const opensAt = clock.ms() + 1_000;
        expect(await store.configure(CONCERT, { ...OPEN, opensAt })).to.equal(true);
        const early = await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            join(racers[i % racers.length] as QueueStore, `early-${i}`),
          ),
        );
        expect(early.every((r) => r.snapshot.state === "lobby")).to.equal(true);
        clock.advance(1_000);
        // Every instance's admitter and new arrivals at once.
        const lateIds: string[] = [];
        await Promise.all([
          ...racers.map((racer) => racer.promote(CONCERT, clock.ms())),
          ...racers.map(async (racer, r) => {
            for (let i = 0; i < 4; i++) {
              lateIds.push((await join(racer, `late-${r}-${i}`)).snapshot.tokenId);
              await nextTurn();
            }
          }),
          ...racers.map((racer) => racer.promote(CONCERT, clock.ms())),
        ]);
        const draws = await Promise.all(racers.map((racer) => racer.openingDraw(CONCERT)));
        const draw = must(draws[0]);
        for (const other of draws) expect(other).to.deep.equal(draw);
        const lobbyIds = early.map((r) => r.snapshot.tokenId);
        expect(draw.tokenIds).to.have.length(40);
        expect(draw.tokenIds).to.deep.equal(drawOrder(draw.seed, lobbyIds));
        // Everyone from the lobby stands ahead of every late arrival.
        const all = [...draw.tokenIds, ...lateIds];
        const snaps = await store.snapshots(CONCERT, all, clock.ms(), false);
        const rank = (id: string) => {
          const snap = must(snaps.get(id));
          return snap.state === "admitted" ? 0 : snap.position;
        };
        const drawnRanks = draw.tokenIds.map(rank);
        expect(drawnRanks.slice(0, 3)).to.deep.equal([0, 0, 0]);
        expect(drawnRanks.slice(3)).to.deep.equal(drawnRanks.slice(3).map((_, i) => i + 1));
        const lateRanks = lateIds.map(rank).sort((x, y) => x - y);
        expect(lateRanks).to.deep.equal(lateIds.map((_, i) => 38 + i));
      });

      it("refuses to move the opening once drawn, and takes other changes", async () => {
        const store = await harness.open(LIMITS);
        const opensAt = clock.ms() + 1_000;
        expect(await store.configure(CONCERT, { ...OPEN, opensAt })).to.equal(true);
        expect(await store.configure(CONCERT, { ...OPEN, opensAt: opensAt + 5 })).to.equal(true);
        clock.advance(1_005);
        await store.promote(CONCERT, clock.ms());
        const draw = must(await store.openingDraw(CONCERT));
        expect(draw.tokenIds).to.deep.equal([]);
        expect(await store.configure(CONCERT, { ...OPEN, opensAt: opensAt + 9_000 })).to.equal(
          false,
        );
        expect(await store.configure(CONCERT, { ...OPEN })).to.equal(false);
        expect(
          await store.configure(CONCERT, { ...OPEN, opensAt: opensAt + 5, maxActive: 4 }),
        ).to.equal(true);
        expect(await store.openingDraw(CONCERT)).to.deep.equal(draw);
      });

      it("draws a lobby at once when its opening is cleared", async () => {
        const store = await harness.open({ ...LIMITS, maxActive: 5 });
        await store.configure(CONCERT, { ...OPEN, opensAt: clock.ms() + 3_600_000 });
        const lobby = await joinAll(store, ["a", "b", "c"]);
        await store.configure(CONCERT, { ...OPEN });
        await store.promote(CONCERT, clock.ms());
        const draw = must(await store.openingDraw(CONCERT));
        expect(draw.tokenIds).to.deep.equal(drawOrder(draw.seed, lobby));
        const snaps = await store.snapshots(CONCERT, lobby, clock.ms(), false);
        expect([...snaps.values()].map((s) => s?.state)).to.deep.equal([
          "admitted",
          "admitted",
          "admitted",
        ]);
      });

      it("admits nobody while paused, keeps everyone's place, and resumes in order", async () => {
        const store = await harness.open({ ...LIMITS, maxActive: 2, idleMs: 3_600_000 });
        const [a] = await joinAll(store, ["a"]);
        expect(await store.configure(CONCERT, { ...OPEN, paused: true })).to.equal(true);
        const waiting = await joinAll(store, ["b", "c", "d"]);
        // A free slot, and still nobody is admitted; tokens are still issued.
        expect(await store.promote(CONCERT, clock.ms())).to.equal(0);
        expect(await positions(store, waiting)).to.deep.equal([1, 2, 3]);
        const paused = must(await state(store, waiting[0] as string));
        expect(paused.paused).to.equal(true);
        expect((await store.lineDigest(CONCERT, -1)).paused).to.equal(true);
        // The admitted fan keeps the admission and can finish.
        expect((await state(store, a as string))?.state).to.equal("admitted");
        await store.complete(CONCERT, a as string, clock.ms());
        expect(await store.promote(CONCERT, clock.ms())).to.equal(0);

        expect(await store.configure(CONCERT, { ...OPEN })).to.equal(true);
        expect(await store.promote(CONCERT, clock.ms())).to.equal(2);
        expect(await positions(store, waiting)).to.deep.equal([0, 0, 1]);
        expect((await state(store, waiting[2] as string))?.paused).to.equal(false);
      });

      it("enforces a concert's own admission limit and length, and passes its hold length on", async () => {
        const store = await harness.open({ ...LIMITS, maxActive: 1 });
        await store.configure(CONCERT, {
          ...OPEN,
          maxActive: 3,
          admissionTtlMs: 20_000,
          holdMs: 45_000,
        });
        const tokens = await joinAll(store, ["a", "b", "c", "d"]);
        const snaps = await store.snapshots(CONCERT, tokens, clock.ms(), false);
        expect(tokens.map((id) => snaps.get(id)?.state)).to.deep.equal([
          "admitted",
          "admitted",
          "admitted",
          "waiting",
        ]);
        expect(snaps.get(tokens[0] as string)?.admissionExpiresAt).to.equal(clock.ms() + 20_000);
        expect(snaps.get(tokens[0] as string)?.holdMs).to.equal(45_000);
        // Another concert keeps the store's limits.
        const other = await join(store, "x", "concert-other");
        expect(other.snapshot.admissionExpiresAt).to.equal(clock.ms() + LIMITS.admissionTtlMs);
        expect(other.snapshot.holdMs).to.equal(0);
      });
    });

    describe("lookups", () => {
      it("return null for unknown hashes and other concerts' tokens", async () => {
        const store = await harness.open(LIMITS);
        const { snapshot } = await join(store, "a", "concert-x");
        const hash = `hash-${ids}`;
        expect(await store.lookup(CONCERT, "hash-unknown", clock.ms(), true)).to.equal(null);
        // A token is found only under its own concert (the one its token names).
        expect(await store.lookup(CONCERT, hash, clock.ms(), true)).to.equal(null);
        expect((await store.lookup("concert-x", hash, clock.ms(), true))?.tokenId).to.equal(
          snapshot.tokenId,
        );
        // Leave and complete under another concert change nothing.
        await store.leave(CONCERT, snapshot.tokenId, clock.ms());
        await store.complete(CONCERT, snapshot.tokenId, clock.ms());
        expect((await store.lookup("concert-x", hash, clock.ms(), true))?.state).to.equal(
          "admitted",
        );
        const snaps = await store.snapshots(
          CONCERT,
          [snapshot.tokenId, "tok-unknown"],
          clock.ms(),
          false,
        );
        expect([...snaps.entries()]).to.deep.equal([
          [snapshot.tokenId, null],
          ["tok-unknown", null],
        ]);
      });
    });

    describe("restart", () => {
      it("keeps the line: same order, positions, versions and tokens", async () => {
        const limits = { ...LIMITS, maxActive: 2 };
        const store = await harness.open(limits);
        const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
        const tokens = await joinAll(store, users);
        await store.leave(CONCERT, tokens[4] as string, clock.ms());
        await store.complete(CONCERT, tokens[0] as string, clock.ms());
        const before = await store.snapshots(CONCERT, tokens, clock.ms(), false);
        const versions = await store.versions([CONCERT]);

        const reopened = await harness.restart(store, limits);
        expect(await reopened.snapshots(CONCERT, tokens, clock.ms(), false)).to.deep.equal(before);
        expect(await reopened.versions([CONCERT])).to.deep.equal(versions);
        expect(await reopened.concerts()).to.deep.equal([CONCERT]);
        const last = await reopened.lookup(CONCERT, `hash-${ids}`, clock.ms(), false);
        expect(last).to.deep.equal(before.get(tokens[11] as string));

        // The line goes on where it stopped.
        await reopened.leave(CONCERT, tokens[1] as string, clock.ms());
        expect((await state(reopened, tokens[3] as string))?.state).to.equal("admitted");
        const again = await join(reopened, "user-5");
        expect(again.created).to.equal(false);
        expect(again.snapshot.position).to.equal(1);
      });
    });

    describe("figures (lineCounts, drainAdmissions)", () => {
      it("counts waiters and unexpired admissions per concert; an unknown line reads as zeros", async () => {
        const store = await harness.open({ ...LIMITS, maxActive: 2 });
        await joinAll(store, ["a", "b", "c", "d", "e"]);
        await join(store, "x", "concert-2");
        expect(await store.lineCounts([CONCERT, "concert-2", "nobody"], clock.ms())).to.deep.equal([
          { waiting: 3, admitted: 2 },
          { waiting: 0, admitted: 1 },
          { waiting: 0, admitted: 0 },
        ]);
        // Admissions past their end count no more, before any promotion step.
        clock.advance(LIMITS.admissionTtlMs);
        const [after] = await store.lineCounts([CONCERT], clock.ms());
        expect(after).to.deep.equal({ waiting: 3, admitted: 0 });
      });

      it("hands each admission over once, in admission order, with arrival, join time and the line's highest before", async () => {
        const store = await harness.open({ ...LIMITS, maxActive: 2 });
        const joinedAt = clock.ms();
        const [a, b] = await joinAll(store, ["a", "b", "c", "d"]);
        const first = await store.drainAdmissions(CONCERT);
        expect(first).to.deep.equal({
          total: 2,
          admissions: [
            { arrival: 1, joinedAt, admittedAt: joinedAt, highestBefore: 0 },
            { arrival: 2, joinedAt, admittedAt: joinedAt, highestBefore: 1 },
          ],
        });
        clock.advance(5_000);
        // Admissions made inside complete and leave are recorded like the admitter's.
        await store.complete(CONCERT, a as string, clock.ms());
        clock.advance(1_000);
        await store.leave(CONCERT, b as string, clock.ms());
        // The line's highest admitted arrival carries over from the last drain.
        expect(await store.drainAdmissions(CONCERT)).to.deep.equal({
          total: 4,
          admissions: [
            { arrival: 3, joinedAt, admittedAt: joinedAt + 5_000, highestBefore: 2 },
            { arrival: 4, joinedAt, admittedAt: joinedAt + 6_000, highestBefore: 3 },
          ],
        });
        expect(await store.drainAdmissions(CONCERT)).to.deep.equal({ total: 4, admissions: [] });
        expect(await store.drainAdmissions("nobody")).to.deep.equal({ total: 0, admissions: [] });
      });

      it("shares the admissions among racing drainers without losing or repeating one", async () => {
        const limits = { ...LIMITS, maxActive: 1000 };
        const store = await harness.open(limits);
        const racers = await harness.racers(store, limits, 3);
        const users = Array.from({ length: 60 }, (_, i) => `r-${i}`);
        const drained: number[] = [];
        await Promise.all(
          users.map(async (user, i) => {
            await join(racers[i % racers.length] as QueueStore, user);
            const batch = await (racers[(i + 1) % racers.length] as QueueStore).drainAdmissions(
              CONCERT,
            );
            drained.push(...batch.admissions.map((admission) => admission.arrival));
          }),
        );
        const rest = await store.drainAdmissions(CONCERT);
        drained.push(...rest.admissions.map((admission) => admission.arrival));
        expect(rest.total).to.equal(60);
        expect([...drained].sort((x, y) => x - y)).to.deep.equal(
          Array.from({ length: 60 }, (_, i) => i + 1),
        );
      });
    });
  });
}

queueStoreContract("MemoryQueueStore", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-queue-"));
  const files = new WeakMap<QueueStore, string>();
  let n = 0;
  return {
    async open(limits) {
      n++;
      const persistPath = path.join(dir, `line-${n}.json`);
      const store = new MemoryQueueStore(limits, { persistPath });
      files.set(store, persistPath);
      return store;
    },
    async restart(store, limits) {
      await store.close();
      const persistPath = files.get(store) as string;
      const reopened = new MemoryQueueStore(limits, { persistPath });
      files.set(reopened, persistPath);
      return reopened;
    },
    // One process holds one in-memory line; its callers interleave at every await.
    async racers(store, _limits, count) {
      return Array.from({ length: count }, () => store);
    },
    async cleanUp() {},
    async dispose() {
      await rm(dir, { recursive: true, force: true });
    },
  };
});

/** A Redis the Redis harness runs on: one primary, or a cluster. */
interface RedisTarget {
  /** A new connection with the queue scripts; closed by the harness. */
  connect(): Promise<QueueRedis & { close(): Promise<void> }>;
  /** Deletes every key matching the pattern. */
  deleteMatching(pattern: string): Promise<unknown>;
}

/** The Redis store's harness on a target: one key prefix per store, deleted at the end. */
function redisHarness(target: RedisTarget): () => Promise<StoreHarness> {
  return async () => {
    // One prefix per run keeps parallel runs apart and makes cleanup a SCAN.
    const runPrefix = `stagedoor-test:${randomBytes(6).toString("hex")}:`;
    const main = await target.connect();
    const extra: { close(): Promise<void> }[] = [];
    const prefixes = new WeakMap<QueueStore, string>();
    let n = 0;

    const connect = async () => {
      const client = await target.connect();
      extra.push(client);
      return client;
    };
    const storeOn = (client: QueueRedis, limits: QueueLimits, prefix: string) => {
      const store = new RedisQueueStore(client, limits, prefix);
      prefixes.set(store, prefix);
      return store;
    };
    const prefixOf = (store: QueueStore) => prefixes.get(store) as string;

    return {
      async open(limits) {
        n++;
        return storeOn(main, limits, `${runPrefix}${n}:`);
      },
      async restart(store, limits) {
        await store.close();
        return storeOn(await connect(), limits, prefixOf(store));
      },
      async racers(store, limits, count) {
        const clients = await Promise.all(Array.from({ length: count }, connect));
        return clients.map((client) => storeOn(client, limits, prefixOf(store)));
      },
      async cleanUp() {
        await Promise.all(extra.splice(0).map((client) => client.close()));
      },
      async dispose() {
        try {
          await target.deleteMatching(`${runPrefix}*`);
        } finally {
          await main.close();
        }
      },
    };
  };
}

const redisUrl = process.env.TEST_REDIS_URL;
if (redisUrl === undefined || redisUrl === "") {
  describe("RedisQueueStore (QueueStore contract)", () => {
    console.log(
      "RedisQueueStore contract: not run, because TEST_REDIS_URL is not set " +
        "(e.g. TEST_REDIS_URL=redis://127.0.0.1:6379/3).",
    );
  });
} else {
  const url = redisUrl;
  const onError = (err: unknown) => console.error("redis client error in test:", err);
  queueStoreContract(
    "RedisQueueStore",
    redisHarness({
      connect: () => createRedisClient({ url, onError, scripts: queueScripts }),
      async deleteMatching(pattern) {
        const client = await createRedisClient({ url, onError, scripts: queueScripts });
        try {
          for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: 1000 })) {
            if (keys.length > 0) await client.del(keys);
          }
        } finally {
          client.destroy();
        }
      },
    }),
  );
}

// The same contract on a real three-master Redis Cluster that the tests start
// themselves: every script's keys must share one slot, or the cluster refuses
// the call (CROSSSLOT, or "non local key"), so passing it is the proof.
const clusterMissing = await redisClusterUnavailable();
if (clusterMissing !== undefined) {
  describe("RedisQueueStore on Redis Cluster (QueueStore contract)", () => {
    reportRedisClusterSkipped("RedisQueueStore on Redis Cluster", clusterMissing);
  });
} else {
  queueStoreContract(
    "RedisQueueStore on Redis Cluster",
    redisHarness({
      connect: async () => (await sharedRedisCluster()).connect(),
      deleteMatching: async (pattern) => (await sharedRedisCluster()).deleteMatching(pattern),
    }),
  );
}
