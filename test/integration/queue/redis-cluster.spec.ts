import { expect } from "chai";
import type { QueueLimits } from "../../../server/src/modules/queue/queue-store.js";
import { lineBase, registryKey } from "../../../server/src/modules/queue/redis-keys.js";
import { RedisQueueStore } from "../../../server/src/modules/queue/redis-queue-store.js";
import { FakeClock } from "../../support/fake-clock.js";
import { uniqueKeyPrefix } from "../../support/redis.js";
import {
  type QueueRedisCluster,
  redisClusterUnavailable,
  reportRedisClusterSkipped,
  sharedRedisCluster,
  type TestRedisCluster,
} from "../../support/redis-cluster.js";

const LIMITS: QueueLimits = {
  maxActive: 3,
  admissionTtlMs: 60_000,
  idleMs: 30_000,
  graceMs: 600_000,
};

const missing = await redisClusterUnavailable();

describe("RedisQueueStore on a three-master Redis Cluster", () => {
  if (missing !== undefined) {
    reportRedisClusterSkipped("RedisQueueStore on Redis Cluster", missing);
    return;
  }

  let cluster: TestRedisCluster;
  let clients: QueueRedisCluster[];
  let prefix: string;
  let clock: FakeClock;

  before(async () => {
    cluster = await sharedRedisCluster();
  });
  beforeEach(async () => {
    // Two clients: two server instances sharing the cluster.
    clients = [await cluster.connect(), await cluster.connect()];
    prefix = uniqueKeyPrefix();
    clock = new FakeClock();
  });
  afterEach(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await cluster.deleteMatching(`${prefix}*`);
  });

  /** Two concert ids whose lines live on different masters (the cluster decides). */
  async function concertsOnTwoMasters(): Promise<[string, string]> {
    const first = "concert-a";
    const firstMaster = await cluster.masterOfSlot(
      await cluster.keySlot(`${lineBase(prefix, first)}q:w`),
    );
    for (let i = 0; i < 100; i++) {
      const other = `concert-${i}`;
      const slot = await cluster.keySlot(`${lineBase(prefix, other)}q:w`);
      if ((await cluster.masterOfSlot(slot)) !== firstMaster) return [first, other];
    }
    throw new Error("no concert id landed on another master");
  }

  it("keeps every key of a concert's line and seat gate in one slot", async () => {
    const store = new RedisQueueStore(clients[0] as QueueRedisCluster, LIMITS, prefix);
    for (let i = 0; i < 6; i++) {
      await store.issue({
        concertId: "concert-a",
        userId: `user-${i}`,
        tokenId: `tok-${i}`,
        tokenHash: `hash-${i}`,
        now: clock.ms(),
      });
    }
    await store.leave("concert-a", "tok-4", clock.ms());
    await store.seats.record(
      { concertId: "concert-a", dateId: "date-1" },
      { seatId: "seat-1", seatVersion: 2, state: "held", heldUntil: clock.ms() + 1000, owner: "x" },
    );
    const lineSlot = await cluster.keySlot(`${lineBase(prefix, "concert-a")}q:w`);
    const keys = await keysUnder(`${prefix}{concert-a}:*`);
    // Tokens, records, users, the line's sets and counters, the lease, the gate.
    for (const part of [":t:", ":s:", ":u:", ":q:w", ":q:a", ":q:reg", ":g:date-1:s:seat-1"]) {
      expect(
        keys.some((key) => key.includes(part)),
        part,
      ).to.equal(true);
    }
    for (const key of keys) expect(await cluster.keySlot(key), key).to.equal(lineSlot);
    // The registry is the one key elsewhere, read and written outside the scripts.
    expect(await store.concerts()).to.deep.equal(["concert-a"]);
    expect(keys).not.to.include(registryKey(prefix));
  });

  it("runs two concerts whose lines are on different masters at once: limit, FIFO, eviction", async () => {
    const [a, b] = await concertsOnTwoMasters();
    const slotA = await cluster.keySlot(`${lineBase(prefix, a)}q:w`);
    const slotB = await cluster.keySlot(`${lineBase(prefix, b)}q:w`);
    expect(slotA).to.not.equal(slotB);
    expect(await cluster.masterOfSlot(slotA)).to.not.equal(await cluster.masterOfSlot(slotB));

    const [one, two] = clients.map((client) => new RedisQueueStore(client, LIMITS, prefix)) as [
      RedisQueueStore,
      RedisQueueStore,
    ];
    // Users join both lines at once, half through each instance, in order per line.
    const join = async (concertId: string, count: number) => {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const store = i % 2 === 0 ? one : two;
        const { snapshot } = await store.issue({
          concertId,
          userId: `user-${i}`,
          tokenId: `${concertId}-tok-${i}`,
          tokenHash: `${concertId}-hash-${i}`,
          now: clock.ms(),
        });
        ids.push(snapshot.tokenId);
      }
      return ids;
    };
    const [idsA, idsB] = await Promise.all([join(a, 12), join(b, 12)]);
    expect((await one.concerts()).sort()).to.deep.equal([a, b].sort());

    const statesOf = async (concertId: string, ids: string[]) => {
      const snaps = await two.snapshots(concertId, ids, clock.ms(), false);
      return ids.map((id) => snaps.get(id)?.state);
    };
    const firstThreeAdmitted = ["admitted", "admitted", "admitted", ...Array(9).fill("waiting")];
    expect(await statesOf(a, idsA)).to.deep.equal(firstThreeAdmitted);
    expect(await statesOf(b, idsB)).to.deep.equal(firstThreeAdmitted);

    // Both instances promote both lines concurrently while admissions end: never past the limit.
    await Promise.all([
      one.complete(a, idsA[0] as string, clock.ms()),
      two.leave(b, idsB[1] as string, clock.ms()),
      ...[one, two].flatMap((store) => [
        store.promote(a, clock.ms()),
        store.promote(b, clock.ms()),
      ]),
    ]);
    const afterA = await statesOf(a, idsA);
    const afterB = await statesOf(b, idsB);
    expect(afterA.filter((s) => s === "admitted")).to.have.length(3);
    expect(afterB.filter((s) => s === "admitted")).to.have.length(3);
    // FIFO: the next in line (the 4th arrival) took each freed slot.
    expect(afterA.slice(0, 5)).to.deep.equal([
      "completed",
      "admitted",
      "admitted",
      "admitted",
      "waiting",
    ]);
    expect(afterB.slice(0, 5)).to.deep.equal([
      "admitted",
      "left",
      "admitted",
      "admitted",
      "waiting",
    ]);
    expect(await one.versions([a, b])).to.satisfy((v: number[]) => v.every((n) => n > 0));

    // Idle eviction on both lines, by one promotion each.
    clock.advance(LIMITS.idleMs + 1);
    await Promise.all([one.promote(a, clock.ms()), two.promote(b, clock.ms())]);
    expect((await statesOf(a, idsA)).slice(4)).to.deep.equal(Array(8).fill("evicted"));
    expect((await statesOf(b, idsB)).slice(4)).to.deep.equal(Array(8).fill("evicted"));

    // Retiring one line leaves the other registered.
    expect(await one.retire(a, clock.ms())).to.equal(true);
    expect(await two.concerts()).to.deep.equal([b]);
  });

  it("authenticates and gates a hold in one script on the concert's node", async () => {
    const [a, b] = await concertsOnTwoMasters();
    const store = new RedisQueueStore(clients[0] as QueueRedisCluster, LIMITS, prefix);
    for (const concertId of [a, b]) {
      await store.issue({
        concertId,
        userId: "ann",
        tokenId: `${concertId}-tok`,
        tokenHash: `${concertId}-hash`,
        now: clock.ms(),
      });
      await store.seats.record(
        { concertId, dateId: `${concertId}-date` },
        { seatId: "seat-1", seatVersion: 1, state: "sold", heldUntil: 0, owner: "bob" },
      );
    }
    for (const concertId of [a, b]) {
      const found = await store.lookupWithSeat(concertId, `${concertId}-hash`, clock.ms(), true, {
        dateId: `${concertId}-date`,
        seatId: "seat-1",
      });
      expect(found.snapshot?.tokenId).to.equal(`${concertId}-tok`);
      expect(found.seat?.state).to.equal("sold");
    }
    // Listings read both concerts' logs in one call (one script per concert).
    const logs = await store.seats.changesSince([
      { concertId: a, dateId: `${a}-date`, afterVersion: 0 },
      { concertId: b, dateId: `${b}-date`, afterVersion: 0 },
    ]);
    expect(logs.map((log) => log.version)).to.deep.equal([1, 1]);
  });

  /** Every key matching a pattern, across all masters. */
  async function keysUnder(pattern: string): Promise<string[]> {
    const client = clients[0] as QueueRedisCluster;
    const found: string[] = [];
    for (const master of client.masters) {
      const node = await client.nodeClient(master);
      for await (const keys of node.scanIterator({ MATCH: pattern, COUNT: 1000 })) {
        found.push(...keys);
      }
    }
    return found;
  }
});
