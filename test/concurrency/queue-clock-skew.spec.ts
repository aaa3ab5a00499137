import { expect } from "chai";
import { MemoryQueueStore } from "../../server/src/modules/queue/memory-queue-store.js";
import type { QueueLimits, QueueStore } from "../../server/src/modules/queue/queue-store.js";
import {
  type QueueRedisClient,
  RedisQueueStore,
} from "../../server/src/modules/queue/redis-queue-store.js";
import {
  connectTestRedis,
  deleteKeys,
  reportRedisSkipped,
  testRedisUrl,
  uniqueKeyPrefix,
} from "../support/redis.js";

/**
 * The waiting room's time comes from one source per call: the "now" of the
 * server instance handling it (each reads its own clock once per request and
 * hands it to the store). Instances' clocks must agree within the tolerated
 * skew, TOLERATED_SKEW_MS below and in the README. This drives two instances
 * whose clocks differ by that much over one line and checks what the skew can
 * and cannot do: the admission limit and FIFO order always hold, and no
 * admission ends more than the skew before the end its admitting instance
 * announced.
 */
const TOLERATED_SKEW_MS = 1_000;
const CONCERT = "skew-concert";
const LIMITS: QueueLimits = {
  maxActive: 3,
  admissionTtlMs: 10_000,
  idleMs: 3_600_000,
  graceMs: 600_000,
};
const USERS = 24;

function skewSuite(name: string, open: () => Promise<{ a: QueueStore; b: QueueStore }>) {
  it(`${name}: two instances ${TOLERATED_SKEW_MS} ms apart keep the limit, FIFO order and every admission's length within the skew`, async () => {
    const { a, b } = await open();
    // Real time, and each instance's reading of it.
    let real = Date.UTC(2030, 0, 1);
    const instances = [
      { store: a, now: () => real },
      { store: b, now: () => real + TOLERATED_SKEW_MS },
    ];
    const order: string[] = [];
    for (let i = 0; i < USERS; i++) {
      const instance = instances[i % 2] ?? instances[0];
      const issued = await instance?.store.issue({
        concertId: CONCERT,
        userId: `fan-${i}`,
        tokenId: `skew-tok-${i}`,
        tokenHash: `skew-hash-${i}`,
        now: instance.now(),
      });
      order.push(issued?.snapshot.tokenId ?? "");
      real += 7;
    }

    const admittedAt = new Map<string, number>();
    /** Each token's announced admission end, as the instance that admitted it wrote it. */
    const announcedEnd = new Map<string, number>();
    const ended = new Map<string, number>();
    let step = 0;
    while (ended.size < USERS && step < 2_000) {
      step++;
      // Alternate instances and move real time unevenly.
      const instance = instances[step % 2] ?? instances[0];
      real += 150 + ((step * 7919) % 900);
      await instance?.store.promote(CONCERT, instance.now());
      const snapshots = await instance?.store.snapshots(CONCERT, order, instance.now(), false);
      let admitted = 0;
      for (const tokenId of order) {
        const snapshot = snapshots?.get(tokenId);
        if (snapshot?.state === "admitted") {
          admitted++;
          if (!admittedAt.has(tokenId)) {
            admittedAt.set(tokenId, real);
            announcedEnd.set(tokenId, snapshot.admissionExpiresAt);
          }
        } else if (admittedAt.has(tokenId) && !ended.has(tokenId)) {
          ended.set(tokenId, real);
        }
      }
      expect(admitted, `admitted at once at step ${step}`).to.be.at.most(LIMITS.maxActive);
    }
    expect(ended.size, "every admission ended").to.equal(USERS);
    // FIFO: admitted in the order they joined.
    const byAdmission = [...admittedAt.entries()].sort((x, y) => x[1] - y[1]).map(([id]) => id);
    expect(byAdmission).to.deep.equal(order);
    // No admission is cut short by more than the skew (in real time).
    for (const [tokenId, end] of ended) {
      expect(end, tokenId).to.be.at.least((announcedEnd.get(tokenId) ?? 0) - TOLERATED_SKEW_MS);
    }
  });
}

describe("concurrency: the waiting room under clock skew between instances", () => {
  skewSuite("in-process store", async () => {
    const store = new MemoryQueueStore(LIMITS);
    // One in-process line seen by both "instances" (as the embedded default has one process).
    return { a: store, b: store };
  });

  if (!testRedisUrl) {
    reportRedisSkipped("queue clock skew");
    return;
  }
  const url = testRedisUrl;
  const clients: QueueRedisClient[] = [];
  const prefix = uniqueKeyPrefix();
  after(async () => {
    for (const client of clients) client.destroy();
    await deleteKeys(url, prefix);
  });
  skewSuite("Redis store", async () => {
    const [one, two] = [await connectTestRedis(url), await connectTestRedis(url)];
    clients.push(one, two);
    return {
      a: new RedisQueueStore(one, LIMITS, prefix),
      b: new RedisQueueStore(two, LIMITS, prefix),
    };
  });
});
