import { expect } from "chai";
import type { QueueRedisClient } from "../../../server/src/modules/queue/index.js";
import {
  type BucketRule,
  MemoryRateLimitStore,
  type RateLimitStore,
  RedisRateLimitStore,
} from "../../../server/src/modules/ratelimit/index.js";
import {
  connectTestRedis,
  deleteKeys,
  reportRedisSkipped,
  testRedisUrl,
  uniqueKeyPrefix,
} from "../../support/redis.js";

/** How the contract reaches one store implementation. */
interface StoreHarness {
  /** A store whose buckets are all new. */
  open(): Promise<RateLimitStore>;
  /** `count` handles on the buckets of `store` that really race each other. */
  racers(store: RateLimitStore, count: number): Promise<RateLimitStore[]>;
  dispose(): Promise<void>;
}

const START = Date.UTC(2030, 0, 1, 12);
/** 5 at once, then 2 per second (one every 500 ms). */
const RULE: BucketRule = { burst: 5, refill: 2, periodMs: 1_000 };

/** Takes `count` tokens one after the other; returns which were allowed. */
async function takeInTurn(
  store: RateLimitStore,
  key: string,
  rule: BucketRule,
  now: number,
  count: number,
): Promise<boolean[]> {
  const allowed: boolean[] = [];
  for (let i = 0; i < count; i++) allowed.push((await store.take(key, rule, now)).allowed);
  return allowed;
}

/** The one contract both stores must pass: the same decisions as takeToken, atomically. */
function rateLimitStoreContract(name: string, makeHarness: () => Promise<StoreHarness>): void {
  describe(`${name} (RateLimitStore contract)`, () => {
    let harness: StoreHarness;
    before(async () => {
      harness = await makeHarness();
    });
    after(async () => {
      await harness?.dispose();
    });

    it("lets the burst through, then refuses with the wait for the next token", async () => {
      const store = await harness.open();
      expect(await takeInTurn(store, "k", RULE, START, 6)).to.deep.equal([
        true,
        true,
        true,
        true,
        true,
        false,
      ]);
      expect(await store.take("k", RULE, START + 100)).to.deep.equal({
        allowed: false,
        retryAfterMs: 400,
      });
    });

    it("refills at the rule's rate and never above the burst", async () => {
      const store = await harness.open();
      await takeInTurn(store, "k", RULE, START, 5);
      expect((await store.take("k", RULE, START + 499)).allowed).to.equal(false);
      expect((await store.take("k", RULE, START + 500)).allowed).to.equal(true);
      expect((await store.take("k", RULE, START + 500)).allowed).to.equal(false);
      // A long pause fills the bucket to its burst, no further.
      expect(await takeInTurn(store, "k", RULE, START + 3_600_000, 6)).to.deep.equal([
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
      const perMinute: BucketRule = { burst: 1, refill: 10, periodMs: 60_000 };
      expect((await store.take("slow", perMinute, START)).allowed).to.equal(true);
      for (let n = 1; n <= 10; n++) {
        expect((await store.take("slow", perMinute, START + n * 6_000 - 1)).allowed).to.equal(
          false,
        );
        expect((await store.take("slow", perMinute, START + n * 6_000)).allowed).to.equal(true);
      }
    });

    it("keeps keys apart, and a refusal costs nothing", async () => {
      const store = await harness.open();
      await takeInTurn(store, "a", RULE, START, 5);
      // Many refusals in a row do not push the next token further away.
      await takeInTurn(store, "a", RULE, START + 100, 20);
      expect((await store.take("a", RULE, START + 500)).allowed).to.equal(true);
      expect(await takeInTurn(store, "b", RULE, START, 5)).to.deep.equal([
        true,
        true,
        true,
        true,
        true,
      ]);
    });

    it("mints nothing for a clock behind the bucket's last count (another instance's)", async () => {
      const store = await harness.open();
      await takeInTurn(store, "k", RULE, START, 5);
      expect(await store.take("k", RULE, START - 1_000)).to.deep.equal({
        allowed: false,
        retryAfterMs: 500,
      });
      expect((await store.take("k", RULE, START + 500)).allowed).to.equal(true);
    });

    it("allows exactly the burst to racing callers on several connections", async () => {
      const store = await harness.open();
      const racers = await harness.racers(store, 4);
      const rule: BucketRule = { burst: 25, refill: 1, periodMs: 60_000 };
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          (racers[i % racers.length] as RateLimitStore).take("hot", rule, START),
        ),
      );
      expect(results.filter((r) => r.allowed)).to.have.length(25);
    });
  });
}

rateLimitStoreContract("MemoryRateLimitStore", async () => ({
  open: async () => new MemoryRateLimitStore(),
  // One process holds one set of buckets; its callers interleave at every await.
  racers: async (store, count) => Array.from({ length: count }, () => store),
  dispose: async () => {},
}));

if (testRedisUrl === undefined) {
  describe("RedisRateLimitStore (RateLimitStore contract)", () => {
    it("needs TEST_REDIS_URL", () => reportRedisSkipped("RedisRateLimitStore"));
  });
} else {
  const url = testRedisUrl;
  rateLimitStoreContract("RedisRateLimitStore", async () => {
    const prefix = uniqueKeyPrefix();
    const clients: QueueRedisClient[] = [await connectTestRedis(url)];
    let n = 0;
    return {
      async open() {
        n++;
        return new RedisRateLimitStore(clients[0] as QueueRedisClient, `${prefix}${n}:`);
      },
      async racers(store, count) {
        const keyPrefix = (store as RedisRateLimitStore).keyOf("").split("rl:")[0] as string;
        const racers: RateLimitStore[] = [];
        for (let i = 0; i < count; i++) {
          const client = await connectTestRedis(url);
          clients.push(client);
          racers.push(new RedisRateLimitStore(client, keyPrefix));
        }
        return racers;
      },
      async dispose() {
        for (const client of clients) client.destroy();
        await deleteKeys(url, prefix);
      },
    };
  });

  describe("RedisRateLimitStore (keys)", () => {
    let client: QueueRedisClient;
    const prefix = uniqueKeyPrefix();
    before(async () => {
      client = await connectTestRedis(url);
    });
    after(async () => {
      client?.destroy();
      await deleteKeys(url, prefix);
    });

    it("keeps one key per bucket, with its own hash tag, naming neither user nor address", async () => {
      const store = new RedisRateLimitStore(client, prefix);
      await store.take("hold:a:203.0.113.7", RULE, Date.now());
      const keys: string[] = [];
      for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
        keys.push(...batch);
      }
      expect(keys).to.deep.equal([store.keyOf("hold:a:203.0.113.7")]);
      expect(keys[0]).to.match(/^stagedoor-test:[0-9a-f]+:rl:\{[A-Za-z0-9_-]{22}\}$/);
      expect(keys[0]).to.not.include("203.0.113.7");
      expect(store.keyOf("hold:a:203.0.113.8")).to.not.equal(keys[0]);
    });

    it("lets a bucket's key expire once the bucket would be full again", async () => {
      const store = new RedisRateLimitStore(client, prefix);
      const now = Date.now();
      await takeInTurn(store, "expiring", RULE, now, 3);
      const ttl = await client.pTTL(store.keyOf("expiring"));
      // Three tokens at 500 ms each are back after 1.5 s; the key lives a second longer.
      expect(ttl).to.be.within(1, 2_500);
      // A refusal writes nothing, so it never prolongs the key.
      await takeInTurn(store, "refused", { burst: 1, refill: 1, periodMs: 3_600_000 }, now, 1);
      const before = await client.hGetAll(store.keyOf("refused"));
      await takeInTurn(store, "refused", { burst: 1, refill: 1, periodMs: 3_600_000 }, now + 5, 3);
      expect(await client.hGetAll(store.keyOf("refused"))).to.deep.equal(before);
    });

    it("loads its script again after Redis forgot it (EVALSHA falls back to EVAL)", async () => {
      const store = new RedisRateLimitStore(
        {
          evalSha: () => Promise.reject(new Error("NOSCRIPT No matching script.")),
          eval: (script, options) => client.eval(script, options),
        },
        prefix,
      );
      expect((await store.take("flushed", RULE, Date.now())).allowed).to.equal(true);
    });
  });
}
