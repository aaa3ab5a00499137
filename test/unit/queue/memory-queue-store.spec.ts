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
    /** Every file of the line: the snapshot and its journals, by name. */
    async function filesOf(file: string): Promise<string[]> {
      const base = path.basename(file);
      return (await readdir(path.dirname(file))).filter((f) => f.startsWith(base)).sort();
    }

    /** Everything the store would answer about these tokens (read-only: nothing is due). */
    async function everything(store: MemoryQueueStore, tokenIds: string[]) {
      return {
        concerts: await store.concerts(),
        versions: await store.versions([CONCERT]),
        snapshots: [...(await store.snapshots(CONCERT, tokenIds, clock.ms(), false))],
      };
    }

    it("keeps its files private to their owner, with ids and hashes only", async () => {
      const file = path.join(dir, "nested", "queue.json");
      // Compacts at every checkpoint whose journal outgrew the snapshot.
      const store = new MemoryQueueStore(LIMITS, { persistPath: file, compactAfterBytes: 0 });
      await join(store, "ann");
      await store.checkpoint();
      await join(store, "bob");
      await store.close();

      const files = await filesOf(file);
      expect(files).to.deep.equal(["queue.json", "queue.json.2.journal"]);
      for (const name of files) {
        expect((await stat(path.join(path.dirname(file), name))).mode & 0o777).to.equal(0o600);
      }
      const lines = [
        ...(await readFile(file, "utf8")).trim().split("\n"),
        ...(await readFile(`${file}.2.journal`, "utf8")).trim().split("\n"),
      ].map((line) => JSON.parse(line) as unknown);
      expect(lines[0]).to.deep.equal({ format: "stagedoor-memory-queue", version: 2, journal: 2 });
      const tokens = lines.filter((line) => Array.isArray(line) && line[0] === "t") as unknown[][];
      expect(tokens.map((t) => [t[1], t[2], t[4]])).to.deep.include.members([
        [`tok-${ids - 1}`, "ann", `hash-${ids - 1}`],
        [`tok-${ids}`, "bob", `hash-${ids}`],
      ]);
    });

    it("writes nothing at a checkpoint when nothing changed, however often the admitter ran", async () => {
      const file = path.join(dir, "idle.json");
      const store = new MemoryQueueStore(LIMITS, { persistPath: file });
      await store.checkpoint();
      expect(await filesOf(file), "nothing happened yet").to.deep.equal([]);

      const ann = (await join(store, "ann")).snapshot.tokenId;
      const bob = (await join(store, "bob")).snapshot.tokenId;
      await store.checkpoint();
      expect(await filesOf(file)).to.deep.equal(["idle.json.1.journal"]);
      const written = await readFile(`${file}.1.journal`, "utf8");

      // The admitter every 250 ms, reads, touches that move nothing: no change.
      for (let i = 0; i < 8; i++) {
        await store.promote(CONCERT, clock.ms());
        await store.lookup(CONCERT, `hash-${ids}`, clock.ms(), true);
        await store.snapshots(CONCERT, [ann, bob], clock.ms(), false);
        await store.versions([CONCERT]);
        await store.checkpoint();
      }
      expect(await readFile(`${file}.1.journal`, "utf8")).to.equal(written);

      // A touch that moves the idle clock is a change, and only that record is written.
      clock.advance(1000);
      await store.lookup(CONCERT, `hash-${ids}`, clock.ms(), true);
      await store.checkpoint();
      const added = (await readFile(`${file}.1.journal`, "utf8")).slice(written.length);
      const records = added
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as unknown[]);
      expect(records.map((r) => [r[0], r[1]])).to.deep.equal([
        ["t", bob],
        ["k", 2],
      ]);
      await store.close();
    });

    it("checkpoints while running, so a crash without close() keeps the line", async () => {
      const file = path.join(dir, "checkpointed.json");
      const store = new MemoryQueueStore(LIMITS, { persistPath: file });
      await join(store, "ann");
      const bob = await join(store, "bob");
      await store.checkpoint();

      // The process "crashes": no close(). A new store reads the checkpoint.
      const revived = new MemoryQueueStore(LIMITS, { persistPath: file });
      const [a, b] = await Promise.all([
        revived.lookup(CONCERT, `hash-${ids - 1}`, clock.ms(), false),
        revived.lookup(CONCERT, `hash-${ids}`, clock.ms(), false),
      ]);
      expect(a?.state).to.equal("admitted");
      expect([b?.state, b?.position]).to.deep.equal(["waiting", 1]);
      expect(bob.snapshot.position).to.equal(1);
      await revived.close();
      await store.close();
    });

    it("restores the same line from a snapshot and the journal after it", async () => {
      const file = path.join(dir, "compacted.json");
      const limits = { ...LIMITS, maxActive: 3, idleMs: 3_600_000 };
      const store = new MemoryQueueStore(limits, { persistPath: file, compactAfterBytes: 0 });
      const tokens: string[] = [];
      for (let round = 0; round < 6; round++) {
        for (let i = 0; i < 40; i++)
          tokens.push((await join(store, `r${round}-${i}`)).snapshot.tokenId);
        await store.leave(CONCERT, tokens[round * 7] as string, clock.ms());
        await store.complete(CONCERT, tokens[round] as string, clock.ms());
        clock.advance(10);
        await store.lookup(CONCERT, `hash-${ids - 3}`, clock.ms(), true);
        await store.checkpoint();
      }
      // Changes after the last checkpoint are in the last batch close() writes.
      await store.leave(CONCERT, tokens[100] as string, clock.ms());
      const before = await everything(store, tokens);
      await store.close();
      expect((await filesOf(file)).length, "a snapshot and its journal").to.equal(2);

      const reopened = new MemoryQueueStore(limits, { persistPath: file });
      expect(await everything(reopened, tokens)).to.deep.equal(before);
      await reopened.close();
    });

    it("restores the previous or the new state when a crash tore the last batch", async () => {
      const file = path.join(dir, "torn.json");
      const limits = { ...LIMITS, maxActive: 2, idleMs: 3_600_000 };
      const store = new MemoryQueueStore(limits, { persistPath: file });
      const tokens: string[] = [];
      for (let i = 0; i < 6; i++) tokens.push((await join(store, `u${i}`)).snapshot.tokenId);
      await store.checkpoint();
      // The id the late arrival below will get: null before it exists.
      tokens.push(`tok-${ids + 1}`);
      const previous = await everything(store, tokens);
      const journal = `${file}.1.journal`;
      const committed = (await readFile(journal)).length;

      // One batch that changes several records at once: an admission ends,
      // the next waiter is admitted, everyone behind moves up.
      await store.complete(CONCERT, tokens[0] as string, clock.ms());
      await store.leave(CONCERT, tokens[3] as string, clock.ms());
      expect((await join(store, "late")).snapshot.tokenId).to.equal(tokens.at(-1));
      await store.checkpoint();
      const next = await everything(store, tokens);
      const full = await readFile(journal);
      await store.close();
      expect(full.length).to.be.greaterThan(committed);

      for (let cut = committed; cut <= full.length; cut++) {
        await writeFile(journal, full.subarray(0, cut));
        const revived = new MemoryQueueStore(limits, { persistPath: file });
        const seen = await everything(revived, tokens);
        // A crash can only lose the batch being written, whole.
        expect(seen).to.deep.equal(cut === full.length ? next : previous, `cut at ${cut}`);
      }
    });

    it("reads a file written before journals (version 1)", async () => {
      const file = path.join(dir, "version-1.json");
      const token = (id: string, user: string, state: string, extra: object = {}) => ({
        tokenId: id,
        userId: user,
        concertId: CONCERT,
        tokenHash: `h-${id}`,
        state,
        issuedAt: 1,
        admissionExpiresAt: 0,
        lastSeenAt: clock.ms(),
        authenticates: true,
        dropAt: null,
        ...extra,
      });
      await writeFile(
        file,
        JSON.stringify({
          format: "stagedoor-memory-queue",
          version: 1,
          concerts: [{ id: CONCERT, version: 4, averageMs: 1234, waiting: ["w2", "w1"] }],
          tokens: [
            token("w1", "one", "waiting"),
            token("a", "adm", "admitted", {
              admissionExpiresAt: clock.ms() + 1000,
              dropAt: clock.ms() + 5000,
            }),
            token("w2", "two", "waiting"),
          ],
          users: [
            [CONCERT, "one", "w1"],
            [CONCERT, "two", "w2"],
            [CONCERT, "adm", "a"],
          ],
        }),
      );
      const store = new MemoryQueueStore(LIMITS, { persistPath: file });
      const snaps = await store.snapshots(CONCERT, ["w2", "w1", "a"], clock.ms(), false);
      expect([...snaps.values()].map((s) => [s?.state, s?.position])).to.deep.equal([
        ["waiting", 1],
        ["waiting", 2],
        ["admitted", 0],
      ]);
      expect(snaps.get("a")?.averageAdmissionMs).to.equal(1234);
      expect(await store.versions([CONCERT])).to.deep.equal([4]);
      // The next arrival stands behind the ones the old file listed.
      const late = await join(store, "late");
      expect(late.snapshot.position).to.equal(3);
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
      await store.complete(CONCERT, a, clock.ms());
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
      expect((await store.lookup(CONCERT, hash, clock.ms(), false))?.state).to.equal("evicted");

      clock.advance(LIMITS.graceMs - 1);
      expect((await store.lookup(CONCERT, hash, clock.ms(), false))?.state).to.equal("evicted");
      clock.advance(1);
      expect(await store.lookup(CONCERT, hash, clock.ms(), false)).to.equal(null);
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
      expect((await store.lookup(CONCERT, hash, clock.ms(), false))?.state).to.equal("expired");
      clock.advance(1);
      expect(await store.lookup(CONCERT, hash, clock.ms(), false)).to.equal(null);
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
          await store.leave(CONCERT, gone as string, clock.ms());
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
        await store.lookup(CONCERT, busyHash, clock.ms(), true);
      }
      clock.advance(LIMITS.idleMs - 4999);
      await store.promote(CONCERT, clock.ms());
      const snaps = await store.snapshots(CONCERT, [snapshot.tokenId, quiet], clock.ms(), false);
      expect(snaps.get(snapshot.tokenId)).to.deep.include({ state: "waiting", position: 1 });
      expect(snaps.get(quiet)?.state).to.equal("evicted");
    });
  });
});
