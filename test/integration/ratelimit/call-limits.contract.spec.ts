import { randomUUID } from "node:crypto";
import { expect } from "chai";
import {
  MemoryQueueStore,
  type QueueLimits,
  type QueueRedisClient,
  type QueueStore,
  RedisQueueStore,
} from "../../../server/src/modules/queue/index.js";
import {
  type BucketRule,
  type CallLimit,
  RateLimiter,
  type RateLimitRules,
} from "../../../server/src/modules/ratelimit/index.js";
import { DomainError } from "../../../server/src/shared/domain-error.js";
import {
  connectTestRedis,
  deleteKeys,
  reportRedisSkipped,
  testRedisUrl,
  uniqueKeyPrefix,
} from "../../support/redis.js";
import {
  type QueueRedisCluster,
  redisClusterUnavailable,
  reportRedisClusterSkipped,
  sharedRedisCluster,
} from "../../support/redis-cluster.js";

// Rate limits are taken by the queue store in the same step as it
// authenticates a call (a token lookup) or issues a token: on Redis inside
// the same Lua script (lua/bucket.lua, one round trip), in-process with the
// same arithmetic (takeToken). This contract runs against every store.

const START = Date.UTC(2030, 0, 1, 12);
/** No admission limit to speak of, and nobody idles out during a test. */
const LIMITS: QueueLimits = {
  maxActive: 1_000,
  admissionTtlMs: 3_600_000,
  idleMs: 3_600_000,
  graceMs: 60_000,
};
/** 5 at once, then 2 per second (one every 500 ms). */
const RULE: BucketRule = { burst: 5, refill: 2, periodMs: 1_000 };

/** A user bucket only. */
function perUser(rule: BucketRule, action: CallLimit["action"] = "hold"): CallLimit {
  return { action, user: rule, address: undefined };
}

/** What one limited call was told. */
interface Taken {
  readonly allowed: boolean;
  readonly retryAfterMs: number;
  readonly scope?: string;
}

/** The RATE_LIMITED refusal of a call, as {@link Taken}; other errors are rethrown. */
async function outcome(call: Promise<unknown>): Promise<Taken> {
  try {
    await call;
    return { allowed: true, retryAfterMs: 0 };
  } catch (error) {
    if (!(error instanceof DomainError) || error.reason !== "RATE_LIMITED") throw error;
    return {
      allowed: false,
      retryAfterMs: error.retryAfterMs ?? -1,
      scope: String(error.metadata?.scope),
    };
  }
}

/** A fan with a live token in one concert's line. */
interface Fan {
  readonly concertId: string;
  readonly userId: string;
  readonly tokenHash: string;
}

async function fanOf(store: QueueStore, concertId: string = randomUUID()): Promise<Fan> {
  const fan = { concertId, userId: `user-${randomUUID()}`, tokenHash: randomUUID() };
  await store.issue({ ...fan, tokenId: randomUUID(), now: START });
  return fan;
}

/** One authenticated call of `fan` that takes from `limit`'s buckets. */
function call(store: QueueStore, fan: Fan, limit: CallLimit, now: number): Promise<Taken> {
  return outcome(store.lookup(fan.concertId, fan.tokenHash, now, false, limit));
}

async function callsInTurn(
  store: QueueStore,
  fan: Fan,
  limit: CallLimit,
  now: number,
  count: number,
): Promise<boolean[]> {
  const allowed: boolean[] = [];
  for (let i = 0; i < count; i++) allowed.push((await call(store, fan, limit, now)).allowed);
  return allowed;
}

/** How the contract reaches one store implementation. */
interface StoreHarness {
  /** A store whose lines and buckets are all new. */
  open(): Promise<QueueStore>;
  /** `count` stores on the same data as `store`, on connections of their own, that really race. */
  racers(store: QueueStore, count: number): Promise<QueueStore[]>;
  dispose(): Promise<void>;
}

function callLimitContract(name: string, makeHarness: () => Promise<StoreHarness>): void {
  describe(`${name} (rate limits taken with the call)`, () => {
    let harness: StoreHarness;
    before(async () => {
      harness = await makeHarness();
    });
    after(async () => {
      await harness?.dispose();
    });

    it("lets the burst through, then refuses with the wait for the next token", async () => {
      const store = await harness.open();
      const fan = await fanOf(store);
      expect(await callsInTurn(store, fan, perUser(RULE), START, 6)).to.deep.equal([
        true,
        true,
        true,
        true,
        true,
        false,
      ]);
      expect(await call(store, fan, perUser(RULE), START + 100)).to.deep.equal({
        allowed: false,
        retryAfterMs: 400,
        scope: "user",
      });
    });

    it("refills at the rule's rate and never above the burst", async () => {
      const store = await harness.open();
      const fan = await fanOf(store);
      const limit = perUser(RULE);
      await callsInTurn(store, fan, limit, START, 5);
      expect((await call(store, fan, limit, START + 499)).allowed).to.equal(false);
      expect((await call(store, fan, limit, START + 500)).allowed).to.equal(true);
      expect((await call(store, fan, limit, START + 500)).allowed).to.equal(false);
      // A long pause fills the bucket to its burst, no further.
      expect(await callsInTurn(store, fan, limit, START + 1_800_000, 6)).to.deep.equal([
        true,
        true,
        true,
        true,
        true,
        false,
      ]);
    });

    it("counts slow rates exactly", async () => {
      const store = await harness.open();
      const fan = await fanOf(store);
      const perMinute = perUser({ burst: 1, refill: 10, periodMs: 60_000 });
      expect((await call(store, fan, perMinute, START)).allowed).to.equal(true);
      for (let n = 1; n <= 10; n++) {
        expect((await call(store, fan, perMinute, START + n * 6_000 - 1)).allowed).to.equal(false);
        expect((await call(store, fan, perMinute, START + n * 6_000)).allowed).to.equal(true);
      }
    });

    it("keeps users, actions and concerts apart, and a refusal costs nothing", async () => {
      const store = await harness.open();
      const ann = await fanOf(store);
      const bob = await fanOf(store, ann.concertId);
      const annElsewhere = await fanOf(store);
      await callsInTurn(store, ann, perUser(RULE), START, 5);
      // Many refusals in a row do not push the next token further away.
      await callsInTurn(store, ann, perUser(RULE), START + 100, 20);
      expect((await call(store, ann, perUser(RULE), START + 500)).allowed).to.equal(true);
      const fullBurst = [true, true, true, true, true];
      expect(await callsInTurn(store, bob, perUser(RULE), START, 5)).to.deep.equal(fullBurst);
      expect(await callsInTurn(store, ann, perUser(RULE, "payment"), START, 5)).to.deep.equal(
        fullBurst,
      );
      // The same user in another concert's line has buckets of their own there.
      const elsewhere = { ...annElsewhere, userId: ann.userId };
      await store.issue({
        ...elsewhere,
        tokenHash: randomUUID(),
        tokenId: randomUUID(),
        now: START,
      });
      expect(await callsInTurn(store, annElsewhere, perUser(RULE), START, 5)).to.deep.equal(
        fullBurst,
      );
    });

    it("mints nothing for a clock behind the bucket's last count (another instance's)", async () => {
      const store = await harness.open();
      const fan = await fanOf(store);
      await callsInTurn(store, fan, perUser(RULE), START, 5);
      expect(await call(store, fan, perUser(RULE), START - 1_000)).to.deep.equal({
        allowed: false,
        retryAfterMs: 500,
        scope: "user",
      });
      expect((await call(store, fan, perUser(RULE), START + 500)).allowed).to.equal(true);
    });

    it("takes both buckets, and answers the refusal with the longer wait", async () => {
      const store = await harness.open();
      const ann = await fanOf(store);
      const bob = await fanOf(store, ann.concertId);
      const rules: RateLimitRules = {
        token: { user: undefined, address: undefined },
        hold: {
          user: { burst: 2, refill: 1, periodMs: 1_000 },
          address: { burst: 3, refill: 1, periodMs: 10_000 },
        },
        payment: { user: undefined, address: undefined },
      };
      const limit = new RateLimiter(rules).forCall("hold", "10.0.0.1") as CallLimit;
      expect((await call(store, ann, limit, START)).allowed).to.equal(true);
      expect((await call(store, ann, limit, START)).allowed).to.equal(true);
      expect(await call(store, ann, limit, START)).to.deep.equal({
        allowed: false,
        retryAfterMs: 1_000,
        scope: "user",
      });
      // Another user from the same address has a bucket of their own, but the
      // address's is empty now (the refused call took from it too).
      expect(await call(store, bob, limit, START)).to.deep.equal({
        allowed: false,
        retryAfterMs: 10_000,
        scope: "address",
      });
      const otherAddress = new RateLimiter(rules).forCall("hold", "10.0.0.2") as CallLimit;
      expect((await call(store, bob, otherAddress, START)).allowed).to.equal(true);
    });

    it("takes nothing for an unknown token, and a refused issue issues nothing", async () => {
      const store = await harness.open();
      const fan = await fanOf(store);
      const tight = perUser({ burst: 1, refill: 1, periodMs: 3_600_000 });
      for (let i = 0; i < 5; i++) {
        expect(await store.lookup(fan.concertId, randomUUID(), START, false, tight)).to.equal(null);
      }
      expect((await call(store, fan, tight, START)).allowed).to.equal(true);
      const token = perUser({ burst: 1, refill: 1, periodMs: 3_600_000 }, "token");
      const newcomer = { concertId: fan.concertId, userId: `user-${randomUUID()}` };
      const first = await store.issue({
        ...newcomer,
        tokenId: randomUUID(),
        tokenHash: randomUUID(),
        now: START,
        limit: token,
      });
      const refusedHash = randomUUID();
      expect(
        await outcome(
          store.issue({
            ...newcomer,
            tokenId: randomUUID(),
            tokenHash: refusedHash,
            now: START,
            limit: token,
          }),
        ),
      ).to.deep.equal({ allowed: false, retryAfterMs: 3_600_000, scope: "user" });
      expect(await store.lookup(fan.concertId, refusedHash, START, false)).to.equal(null);
      const line = await store.snapshots(fan.concertId, [first.snapshot.tokenId], START, false);
      expect(line.get(first.snapshot.tokenId)?.state).to.be.oneOf(["waiting", "admitted"]);
    });

    it("lets exactly the burst through to racing callers on several connections", async () => {
      const store = await harness.open();
      const fan = await fanOf(store);
      const racers = await harness.racers(store, 4);
      const limit = perUser({ burst: 25, refill: 1, periodMs: 60_000 });
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          call(racers[i % racers.length] as QueueStore, fan, limit, START),
        ),
      );
      expect(results.filter((r) => r.allowed)).to.have.length(25);
    });
  });
}

callLimitContract("MemoryQueueStore", async () => ({
  open: async () => new MemoryQueueStore(LIMITS),
  // One process holds one set of buckets; its callers interleave at every await.
  racers: async (store, count) => Array.from({ length: count }, () => store),
  dispose: async () => {},
}));

/** The keys of a Redis store, for the checks on what the buckets leave behind. */
async function keysOf(client: QueueRedisClient, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
    keys.push(...batch);
  }
  return keys;
}

if (testRedisUrl === undefined) {
  describe("RedisQueueStore (rate limits taken with the call)", () => {
    it("needs TEST_REDIS_URL", () => reportRedisSkipped("RedisQueueStore rate limits"));
  });
} else {
  const url = testRedisUrl;
  const prefixes = new WeakMap<QueueStore, string>();
  callLimitContract("RedisQueueStore", async () => {
    const clients: QueueRedisClient[] = [await connectTestRedis(url)];
    const opened: string[] = [];
    return {
      async open() {
        const prefix = uniqueKeyPrefix();
        opened.push(prefix);
        const store = new RedisQueueStore(clients[0] as QueueRedisClient, LIMITS, prefix);
        prefixes.set(store, prefix);
        return store;
      },
      async racers(store, count) {
        const prefix = prefixes.get(store) as string;
        const racers: QueueStore[] = [];
        for (let i = 0; i < count; i++) {
          const client = await connectTestRedis(url);
          clients.push(client);
          racers.push(new RedisQueueStore(client, LIMITS, prefix));
        }
        return racers;
      },
      async dispose() {
        for (const client of clients) client.destroy();
        for (const prefix of opened) await deleteKeys(url, prefix);
      },
    };
  });

  describe("RedisQueueStore (rate-limit keys)", () => {
    let client: QueueRedisClient;
    const prefix = uniqueKeyPrefix();
    before(async () => {
      client = await connectTestRedis(url);
    });
    after(async () => {
      client?.destroy();
      await deleteKeys(url, prefix);
    });

    it("keeps buckets under the concert's hash tag, naming no address, gone once full again", async () => {
      const store = new RedisQueueStore(client, LIMITS, prefix);
      const now = Date.now();
      const fan = { concertId: randomUUID(), userId: "ann", tokenHash: randomUUID() };
      await store.issue({ ...fan, tokenId: randomUUID(), now });
      const before = new Set(await keysOf(client, prefix));
      const rules: RateLimitRules = {
        token: { user: undefined, address: undefined },
        hold: { user: RULE, address: RULE },
        payment: { user: undefined, address: undefined },
      };
      const limit = new RateLimiter(rules).forCall("hold", "203.0.113.7") as CallLimit;
      for (let i = 0; i < 3; i++)
        await store.lookup(fan.concertId, fan.tokenHash, now, false, limit);
      const buckets = (await keysOf(client, prefix)).filter((key) => !before.has(key));
      expect(buckets).to.have.length(2);
      for (const key of buckets) {
        expect(key.startsWith(`${prefix}{${fan.concertId}}:q:rl:hold:`)).to.equal(true);
        expect(key).to.not.include("203.0.113.7");
        // Three tokens at 500 ms each are back after 1.5 s; the key lives a second longer.
        expect(await client.pTTL(key)).to.be.within(1, 2_500);
      }
      expect(buckets.some((key) => key.endsWith(":u:ann"))).to.equal(true);
    });

    it("writes nothing on a refusal, so a flood never prolongs a bucket", async () => {
      const store = new RedisQueueStore(client, LIMITS, prefix);
      const now = Date.now();
      const fan = { concertId: randomUUID(), userId: "bob", tokenHash: randomUUID() };
      await store.issue({ ...fan, tokenId: randomUUID(), now });
      const hourly = perUser({ burst: 1, refill: 1, periodMs: 3_600_000 });
      await call(store, fan, hourly, now);
      const key = `${prefix}{${fan.concertId}}:q:rl:hold:u:bob`;
      const saved = await client.hGetAll(key);
      for (let i = 0; i < 3; i++) {
        expect((await call(store, fan, hourly, now + 5 + i)).allowed).to.equal(false);
      }
      expect(await client.hGetAll(key)).to.deep.equal(saved);
    });
  });
}

// The same contract on the three-master Redis Cluster the tests start: the
// buckets are keys of the concert's slot, taken in the call's own script.
const clusterMissing = await redisClusterUnavailable();
if (clusterMissing !== undefined) {
  describe("RedisQueueStore on Redis Cluster (rate limits taken with the call)", () => {
    reportRedisClusterSkipped("RedisQueueStore on Redis Cluster rate limits", clusterMissing);
  });
} else {
  const prefixes = new WeakMap<QueueStore, string>();
  callLimitContract("RedisQueueStore on Redis Cluster", async () => {
    const cluster = await sharedRedisCluster();
    const clients: QueueRedisCluster[] = [await cluster.connect()];
    const opened: string[] = [];
    return {
      async open() {
        const prefix = uniqueKeyPrefix();
        opened.push(prefix);
        const store = new RedisQueueStore(clients[0] as QueueRedisCluster, LIMITS, prefix);
        prefixes.set(store, prefix);
        return store;
      },
      async racers(store, count) {
        const prefix = prefixes.get(store) as string;
        const racers: QueueStore[] = [];
        for (let i = 0; i < count; i++) {
          const client = await cluster.connect();
          clients.push(client);
          racers.push(new RedisQueueStore(client, LIMITS, prefix));
        }
        return racers;
      },
      async dispose() {
        for (const client of clients) await client.close();
        for (const prefix of opened) await cluster.deleteMatching(`${prefix}*`);
      },
    };
  });
}
