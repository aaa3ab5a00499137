import { expect } from "chai";
import {
  type BucketRule,
  type BucketState,
  type CallLimit,
  MemoryRateLimitStore,
  RateLimiter,
  type RateLimitRules,
  rateLimited,
  takeCallLimit,
  takeToken,
} from "../../../server/src/modules/ratelimit/index.js";
import { expectDomainError, rejectionOf } from "../unit-helpers.js";

/** 3 at once, one more every 500 ms. */
const TWO_PER_SECOND: BucketRule = { burst: 3, refill: 2, periodMs: 1_000 };
/** 2 at once, one more every 6 s. */
const TEN_PER_MINUTE: BucketRule = { burst: 2, refill: 10, periodMs: 60_000 };

/** Takes `count` tokens in a row at `now`; returns the decisions and the last state. */
function takeMany(state: BucketState | undefined, rule: BucketRule, now: number, count: number) {
  const decisions: boolean[] = [];
  let current = state;
  let retryAfterMs = 0;
  for (let i = 0; i < count; i++) {
    const taken = takeToken(current, rule, now);
    decisions.push(taken.result.allowed);
    retryAfterMs = taken.result.retryAfterMs;
    current = taken.state;
  }
  return { decisions, state: current, retryAfterMs };
}

describe("token bucket (takeToken)", () => {
  const start = Date.UTC(2030, 0, 1);

  it("lets a burst through from a new bucket, then refuses with the time until the next token", () => {
    const { decisions, retryAfterMs } = takeMany(undefined, TWO_PER_SECOND, start, 4);
    expect(decisions).to.deep.equal([true, true, true, false]);
    expect(retryAfterMs).to.equal(500);
  });

  it("refills at the rule's rate: one token per period / refill, never a fraction early", () => {
    const empty = takeMany(undefined, TWO_PER_SECOND, start, 3).state;
    const early = takeToken(empty, TWO_PER_SECOND, start + 499);
    expect(early.result).to.deep.equal({ allowed: false, retryAfterMs: 1 });
    expect(early.state, "a refusal changes nothing").to.equal(empty);
    expect(takeToken(empty, TWO_PER_SECOND, start + 500).result.allowed).to.equal(true);
    // Half a period's refill then a partial one: the retry hint counts what is left.
    const afterOne = takeToken(empty, TWO_PER_SECOND, start + 500).state;
    expect(takeToken(afterOne, TWO_PER_SECOND, start + 700).result).to.deep.equal({
      allowed: false,
      retryAfterMs: 300,
    });
  });

  it("never holds more than the burst, however long it was left alone", () => {
    const empty = takeMany(undefined, TWO_PER_SECOND, start, 3).state;
    const { decisions } = takeMany(empty, TWO_PER_SECOND, start + 3_600_000, 5);
    expect(decisions).to.deep.equal([true, true, true, false, false]);
  });

  it("counts slow rates exactly (10 per minute is one every 6 s, not 5.999…)", () => {
    let state = takeMany(undefined, TEN_PER_MINUTE, start, 2).state;
    for (let n = 1; n <= 50; n++) {
      const now = start + n * 6_000;
      expect(
        takeToken(state, TEN_PER_MINUTE, now - 1).result.allowed,
        `just before #${n}`,
      ).to.equal(false);
      const taken = takeToken(state, TEN_PER_MINUTE, now);
      expect(taken.result.allowed, `token #${n} at ${n * 6} s`).to.equal(true);
      state = taken.state;
    }
  });

  it("mints nothing when the clock reads earlier than the bucket's last count", () => {
    const empty = takeMany(undefined, TWO_PER_SECOND, start, 3).state;
    const behind = takeToken(empty, TWO_PER_SECOND, start - 10_000);
    expect(behind.result).to.deep.equal({ allowed: false, retryAfterMs: 500 });
    // Time lost to the skew is not counted twice either: the bucket still refills from `start`.
    expect(takeToken(empty, TWO_PER_SECOND, start + 500).result.allowed).to.equal(true);
  });
});

describe("MemoryRateLimitStore", () => {
  const start = Date.UTC(2030, 0, 1);

  it("keeps each key's bucket apart", () => {
    const store = new MemoryRateLimitStore();
    const rule: BucketRule = { burst: 1, refill: 1, periodMs: 1_000 };
    expect(store.take("a", rule, start).allowed).to.equal(true);
    expect(store.take("a", rule, start).allowed).to.equal(false);
    expect(store.take("b", rule, start).allowed).to.equal(true);
  });

  it("forgets buckets once they are full again, so memory follows recent callers only", () => {
    const store = new MemoryRateLimitStore();
    const rule: BucketRule = { burst: 5, refill: 1, periodMs: 1_000 };
    for (let i = 0; i < 1_000; i++) store.take(`caller-${i}`, rule, start);
    expect(store.size).to.equal(1_000);
    // Every bucket is full again 1 s later; each take forgets up to two old
    // ones, so 600 takes forget all 1,000, and only the new callers remain.
    for (let i = 0; i < 600; i++) store.take(`later-${i}`, rule, start + 1_000);
    expect(store.size).to.equal(600);
    // A bucket that is not yet full is remembered: its caller is still limited.
    store.take("busy", { burst: 1, refill: 1, periodMs: 60_000 }, start + 1_000);
    for (let i = 0; i < 2_000; i++) store.take(`more-${i}`, rule, start + 2_000 + i);
    expect(
      store.take("busy", { burst: 1, refill: 1, periodMs: 60_000 }, start + 5_000).allowed,
    ).to.equal(false);
  });
});

describe("MemoryRateLimitStore's sweep", () => {
  const start = Date.UTC(2030, 0, 1);
  const rule: BucketRule = { burst: 1, refill: 1, periodMs: 1_000 };

  it("forgets a bucket that moved after the sweep reached it once it is full again, and keeps forgetting later ones", () => {
    const store = new MemoryRateLimitStore();
    store.take("a", rule, start); // full again at start + 1000
    store.take("b", rule, start + 500); // full again at start + 1500
    // a is taken again (refused: its bucket is still empty) and stays oldest;
    // then, full again, it is taken and moves behind b.
    store.take("a", rule, start + 600);
    store.take("a", rule, start + 1_000); // full again at start + 2000
    expect(store.size).to.equal(2);
    // At 1,600 b is full but a is not: b goes, a (moved) stays.
    store.take("c", rule, start + 1_600);
    expect(store.size).to.equal(2);
    expect(store.take("a", rule, start + 1_600).allowed).to.equal(false);
    // Once every bucket is full again, a few takes forget them all, and the
    // sweep goes on to the buckets made after that.
    for (let i = 0; i < 3; i++) store.take(`late-${i}`, rule, start + 10_000);
    expect(store.size).to.equal(3);
    for (let i = 0; i < 4; i++) store.take(`later-${i}`, rule, start + 20_000);
    expect(store.size).to.equal(4);
    for (let i = 0; i < 200; i++) store.take(`many-${i}`, rule, start + 30_000 + i * 1_000);
    expect(store.size).to.be.at.most(2);
  });
});

describe("RateLimiter and takeCallLimit (the in-process store's takes)", () => {
  const rules: RateLimitRules = {
    token: { user: { burst: 2, refill: 1, periodMs: 60_000 }, address: undefined },
    hold: {
      user: { burst: 2, refill: 1, periodMs: 1_000 },
      address: { burst: 3, refill: 1, periodMs: 10_000 },
    },
    payment: { user: undefined, address: undefined },
  };
  const limiter = new RateLimiter(rules);
  const start = Date.UTC(2030, 0, 1);

  /** One call's takes, refused as the stores refuse it (RATE_LIMITED), or allowed. */
  async function take(
    store: MemoryRateLimitStore,
    limit: CallLimit,
    userId: string,
  ): Promise<void> {
    const refusal = takeCallLimit(store, "concert-1", limit, userId, start);
    if (refusal !== undefined) throw rateLimited(limit.action, refusal);
  }

  it("refuses RATE_LIMITED with RetryInfo's delay and says which limit, per user then per address", async () => {
    const store = new MemoryRateLimitStore();
    const fromOne = limiter.forCall("hold", "10.0.0.1") as CallLimit;
    await take(store, fromOne, "ann");
    await take(store, fromOne, "ann");
    const byUser = expectDomainError(
      await rejectionOf(take(store, fromOne, "ann")),
      "resource_exhausted",
      "RATE_LIMITED",
    );
    expect(byUser.metadata).to.deep.equal({ action: "hold", scope: "user" });
    expect(byUser.retryAfterMs).to.equal(1_000);
    // Another user from the same address has a bucket of their own, but the
    // address's is empty now (the refused call took from it too).
    const byAddress = expectDomainError(
      await rejectionOf(take(store, fromOne, "bob")),
      "resource_exhausted",
      "RATE_LIMITED",
    );
    expect(byAddress.metadata).to.deep.equal({ action: "hold", scope: "address" });
    expect(byAddress.retryAfterMs).to.equal(10_000);
    await take(store, limiter.forCall("hold", "10.0.0.2") as CallLimit, "bob");
  });

  it("keeps actions apart, and names no bucket for unlimited actions or unknown addresses", async () => {
    const store = new MemoryRateLimitStore();
    const token = limiter.forCall("token", undefined) as CallLimit;
    await take(store, token, "ann");
    await take(store, token, "ann");
    await rejectionOf(take(store, token, "ann"));
    await take(store, limiter.forCall("hold", undefined) as CallLimit, "ann");
    expect(limiter.forCall("payment", "x")).to.equal(undefined);
    expect(limiter.forCall("token", "x")?.address).to.equal(undefined);
    expect(limiter.limits("payment")).to.equal(false);
    expect(limiter.limits("hold")).to.equal(true);
    expect(limiter.limitsAddresses("token")).to.equal(false);
  });

  it("keys an address's bucket by a digest, never the address itself", () => {
    const limit = limiter.forCall("hold", "203.0.113.7") as CallLimit;
    expect(limit.address?.id).to.match(/^[A-Za-z0-9_-]{22}$/);
    expect(limit.address?.id).to.not.include("203");
    expect(limiter.forCall("hold", "203.0.113.8")?.address?.id).to.not.equal(limit.address?.id);
  });
});
