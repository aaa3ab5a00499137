import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { MemoryQueueStore } from "../../../server/src/modules/queue/memory-queue-store.js";
import type { QueueLimits } from "../../../server/src/modules/queue/queue-store.js";
import { FakeClock } from "../../support/fake-clock.js";

const CONCERT = "concert-1";
const LIMITS: QueueLimits = {
  maxActive: 1,
  admissionTtlMs: 60_000,
  idleMs: 30_000,
  graceMs: 120_000,
};

/**
 * What the shared contract cannot show for the in-process store: the file
 * it persists to, forgetting records after their grace period, and its
 * position index under heavy churn.
 */
describe("MemoryQueueStore", () => {
  let dir: string;
  let clock: FakeClock;
  let ids = 0;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-memory-queue-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    clock = new FakeClock();
  });

  function join(store: MemoryQueueStore, userId: string) {
    ids++;
    return store.issue({
      concertId: CONCERT,
      userId,
      tokenId: `tok-${ids}`,
      tokenHash: `hash-${ids}`,
      now: clock.ms(),
    });
  }

  describe("persistence", () => {
    it("writes the file atomically, private to its owner, with ids and hashes only", async () => {
      const file = path.join(dir, "nested", "queue.json");
      const store = new MemoryQueueStore(LIMITS, { persistPath: file });
      await join(store, "ann");
      await join(store, "bob");
      await store.close();

      expect((await stat(file)).mode & 0o777).to.equal(0o600);
      expect((await readdir(path.dirname(file))).filter((f) => f.endsWith(".tmp"))).to.deep.equal(
        [],
      );
      const saved = JSON.parse(await readFile(file, "utf8")) as {
        tokens: Record<string, unknown>[];
      };
      expect(Object.keys(saved.tokens[0] ?? {}).sort()).to.deep.equal([
        "admissionExpiresAt",
        "authenticates",
        "concertId",
        "dropAt",
        "issuedAt",
        "lastSeenAt",
        "state",
        "tokenHash",
        "tokenId",
        "userId",
      ]);
    });

    it("checkpoints while running, so a crash without close() keeps the line", async () => {
      const file = path.join(dir, "checkpointed.json");
      const store = new MemoryQueueStore(LIMITS, { persistPath: file });
      await store.checkpoint();
      const empty = await stat(file).then(
        () => true,
        () => false,
      );
      expect(empty, "nothing happened yet, so nothing is written").to.equal(false);

      await join(store, "ann");
      const bob = await join(store, "bob");
      await store.checkpoint();
      const written = (await stat(file)).mtimeMs;
      await store.checkpoint();
      expect((await stat(file)).mtimeMs, "an idle checkpoint rewrites nothing").to.equal(written);

      // The process "crashes": no close(). A new store reads the checkpoint.
      const revived = new MemoryQueueStore(LIMITS, { persistPath: file });
      const [a, b] = await Promise.all([
        revived.lookup(`hash-${ids - 1}`, clock.ms(), false),
        revived.lookup(`hash-${ids}`, clock.ms(), false),
      ]);
      expect(a?.state).to.equal("admitted");
      expect([b?.state, b?.position]).to.deep.equal(["waiting", 1]);
      expect(bob.snapshot.position).to.equal(1);
      await revived.close();
      await store.close();
    });

    it("starts empty when the file does not exist yet", async () => {
      const store = new MemoryQueueStore(LIMITS, { persistPath: path.join(dir, "absent.json") });
      expect(await store.concerts()).to.deep.equal([]);
    });

    it("refuses to start from an unreadable file rather than lose the line", async () => {
      const file = path.join(dir, "corrupt.json");
      await writeFile(file, '{"format":"something-else"}');
      expect(() => new MemoryQueueStore(LIMITS, { persistPath: file })).to.throw(
        /saved queue .* is unreadable/,
      );
    });

    it("keeps admissions, averages and idle clocks across a restart", async () => {
      const file = path.join(dir, "restart.json");
      const store = new MemoryQueueStore(LIMITS, { persistPath: file });
      const a = (await join(store, "a")).snapshot.tokenId;
      const b = (await join(store, "b")).snapshot.tokenId;
      clock.advance(10_000);
      await store.complete(a, clock.ms());
      const c = (await join(store, "c")).snapshot.tokenId;
      await store.close();

      const reopened = new MemoryQueueStore(LIMITS, { persistPath: file });
      clock.advance(LIMITS.idleMs + 1);
      // b's admission still ends on time; c's idle clock kept running.
      await reopened.promote(CONCERT, clock.ms());
      const snaps = await reopened.snapshots(CONCERT, [a, b, c], clock.ms(), false);
      expect(snaps.get(a)?.state).to.equal("completed");
      expect(snaps.get(b)).to.deep.include({ state: "admitted", averageAdmissionMs: 10_000 });
      expect(snaps.get(c)?.state).to.equal("evicted");
      clock.advance(LIMITS.admissionTtlMs);
      await reopened.promote(CONCERT, clock.ms());
      const later = await reopened.snapshots(CONCERT, [b], clock.ms(), false);
      expect(later.get(b)).to.deep.include({ state: "expired", averageAdmissionMs: 20_000 });
    });
  });

  describe("grace period", () => {
    it("forgets a dead token's record when its grace period is over", async () => {
      const store = new MemoryQueueStore(LIMITS);
      await join(store, "a");
      const { snapshot } = await join(store, "b");
      const hash = `hash-${ids}`;
      clock.advance(LIMITS.idleMs + 1);
      expect((await store.lookup(hash, clock.ms(), false))?.state).to.equal("evicted");

      clock.advance(LIMITS.graceMs - 1);
      expect((await store.lookup(hash, clock.ms(), false))?.state).to.equal("evicted");
      clock.advance(1);
      expect(await store.lookup(hash, clock.ms(), false)).to.equal(null);
      const snaps = await store.snapshots(CONCERT, [snapshot.tokenId], clock.ms(), false);
      expect(snaps.get(snapshot.tokenId)).to.equal(null);
      const again = await join(store, "b");
      expect(again.created).to.equal(true);
    });

    it("keeps an admitted token authenticating until its admission end plus grace", async () => {
      const store = new MemoryQueueStore(LIMITS);
      const { snapshot } = await join(store, "a");
      const hash = `hash-${ids}`;
      clock.set(snapshot.admissionExpiresAt + LIMITS.graceMs - 1);
      expect((await store.lookup(hash, clock.ms(), false))?.state).to.equal("expired");
      clock.advance(1);
      expect(await store.lookup(hash, clock.ms(), false)).to.equal(null);
    });
  });

  describe("position index", () => {
    it("agrees with a plain array through heavy churn", async () => {
      const store = new MemoryQueueStore({ ...LIMITS, idleMs: Number.MAX_SAFE_INTEGER });
      await join(store, "holder");
      const model: string[] = [];
      let seed = 42;
      const random = () => {
        // A fixed linear congruential generator keeps failures reproducible.
        seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
        return seed / 2_147_483_648;
      };
      for (let step = 0; step < 12_000; step++) {
        if (model.length === 0 || random() < 0.6) {
          model.push((await join(store, `user-${step}`)).snapshot.tokenId);
        } else {
          const [gone] = model.splice(Math.floor(random() * model.length), 1);
          await store.leave(gone as string, clock.ms());
        }
        if (step % 997 === 0 && model.length > 0) {
          const snaps = await store.snapshots(CONCERT, model, clock.ms(), false);
          expect(model.map((id) => snaps.get(id)?.position)).to.deep.equal(
            model.map((_, i) => i + 1),
          );
        }
      }
      const snaps = await store.snapshots(CONCERT, model, clock.ms(), false);
      expect(model.map((id) => snaps.get(id)?.position)).to.deep.equal(model.map((_, i) => i + 1));
    });

    it("still evicts in activity order after many touches", async () => {
      const store = new MemoryQueueStore(LIMITS);
      await join(store, "holder");
      const { snapshot } = await join(store, "busy");
      const busyHash = `hash-${ids}`;
      const quiet = (await join(store, "quiet")).snapshot.tokenId;
      for (let i = 0; i < 5000; i++) {
        clock.advance(1);
        await store.lookup(busyHash, clock.ms(), true);
      }
      clock.advance(LIMITS.idleMs - 4999);
      await store.promote(CONCERT, clock.ms());
      const snaps = await store.snapshots(CONCERT, [snapshot.tokenId, quiet], clock.ms(), false);
      expect(snaps.get(snapshot.tokenId)).to.deep.include({ state: "waiting", position: 1 });
      expect(snaps.get(quiet)?.state).to.equal("evicted");
    });
  });
});
