import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { type QueueLimits, queueScripts } from "../../server/src/modules/queue/index.js";
import { RedisQueueStore } from "../../server/src/modules/queue/redis-queue-store.js";
import { createRedisClient, type RedisClient } from "../../server/src/redis/redis-client.js";
import { findRedisServer, RedisProcess } from "./fault-kit.js";

const LIMITS: QueueLimits = {
  maxActive: 3,
  admissionTtlMs: 60_000,
  idleMs: 30_000,
  graceMs: 600_000,
};

/**
 * A Redis that stops reading (frozen with SIGSTOP: a script stuck on a huge
 * key, or a link that silently drops packets) while a large command fills
 * the socket. Commands that cannot be sent must not wait for as long as Redis
 * does: they share a deadline of 5 to 6 s instead of a timer each
 * (server/src/redis/shared-deadline.ts), and fail with an error that callers
 * answer as "unavailable". Once Redis goes on, so does the store, on the same
 * connection.
 */
describe("fault: a Redis that stops reading", function () {
  // The deadline is 5–6 s; mocha's own timeout is what a call left waiting would hit.
  this.timeout(30_000);
  let redis: RedisProcess | undefined;
  let client: RedisClient<typeof queueScripts> | undefined;

  before(async function () {
    if ((await findRedisServer()) === undefined) {
      // CI installs redis-server (.ci/run); a machine without it cannot run this file.
      this.skip();
    }
    redis = await RedisProcess.start(false);
    // The client's error events (the connection it keeps) are not what this file checks.
    client = await createRedisClient({ url: redis.url, scripts: queueScripts, onError: () => {} });
  });
  after(async () => {
    redis?.thaw();
    await client?.close().catch(() => undefined);
    await redis?.remove();
  });

  function issue(store: RedisQueueStore) {
    const tokenId = randomUUID();
    return store.issue({
      concertId: "concert-frozen",
      userId: `fan-${tokenId}`,
      tokenId,
      tokenHash: `hash-${tokenId}`,
      now: Date.now(),
    });
  }

  it("fails the queue's and the gate's commands that cannot be sent, then works again once Redis does", async () => {
    const redisClient = client as RedisClient<typeof queueScripts>;
    const store = new RedisQueueStore(redisClient, LIMITS, `frozen:${randomUUID()}:`);
    await issue(store);
    const date = { concertId: "concert-frozen", dateId: "date-1" };
    expect(await store.seats.peek(date, "seat-1")).to.equal(null);

    (redis as RedisProcess).freeze();
    // 64 MiB that a frozen Redis does not read: the socket's buffers fill up,
    // and every later command waits to be sent.
    const big = redisClient.set(`frozen:big:${randomUUID()}`, "x".repeat(64 * 1024 * 1024));
    const outcomes = await Promise.allSettled([
      issue(store),
      store.seats.peek(date, "seat-1"),
      issue(store),
    ]);
    (redis as RedisProcess).thaw();

    expect(outcomes.map((outcome) => outcome.status)).to.deep.equal([
      "rejected",
      "rejected",
      "rejected",
    ]);
    for (const outcome of outcomes) {
      // node-redis's AbortError: the shared deadline fired.
      expect(String((outcome as PromiseRejectedResult).reason)).to.match(/command was aborted/);
    }
    expect(await big).to.equal("OK");
    const after = await issue(store);
    expect(after.created).to.equal(true);
    expect(after.snapshot.state).to.equal("admitted");
    expect(await store.seats.peek(date, "seat-1")).to.equal(null);
  });
});
