/**
 * `npm run bench:ratelimit`: what a rate-limit check costs, against the
 * Redis of TEST_REDIS_URL (under a throwaway key prefix, deleted afterwards)
 * and in-process. With RL_CONCURRENCY (64) checks in flight, RL_CALLS
 * (20,000) calls each, it measures in one run, one after the other, three
 * times over (rounds interleaved, so the machine's load touches each alike):
 *
 * - the floor: a bare PING round trip on the same connection;
 * - the queue's token lookup (what every authenticated call pays), unlimited;
 * - the same lookup of a limited call: its user's and its address's buckets
 *   are taken inside the lookup's script (lua/bucket.lua), one round trip;
 * - both again on the in-process store (the embedded default).
 *
 * Each line prints calls/s, the ratio to the PING floor of the same round,
 * and this process's CPU per call. The calls cycle over RL_CALLS fans with
 * live tokens, each from an address of its own (nobody is refused), as in a
 * rush of distinct fans.
 *
 * A benchmark, not a test: it prints figures and asserts nothing.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import {
  MemoryQueueStore,
  type QueueLimits,
  type QueueStore,
  queueScripts,
  RedisQueueStore,
} from "../../server/src/modules/queue/index.js";
import {
  type CallLimit,
  RateLimiter,
  type RateLimitRules,
} from "../../server/src/modules/ratelimit/index.js";
import { createRedisClient } from "../../server/src/redis/redis-client.js";
import { deleteKeys, uniqueKeyPrefix } from "../support/redis.js";
import { fmt, formatTable } from "./load.js";

/** The concert whose line the token lookups read. */
const BENCH_CONCERT = randomUUID();
const LIMITS: QueueLimits = {
  maxActive: 100,
  admissionTtlMs: 600_000,
  idleMs: 600_000,
  graceMs: 3_600_000,
};

const CALLS = Number(process.env.RL_CALLS ?? 20_000);
const CONCURRENCY = Number(process.env.RL_CONCURRENCY ?? 64);
const ROUNDS = Number(process.env.RL_ROUNDS ?? 3);

/** Generous limits: the bench measures the checking, not refusals. */
const RULES: RateLimitRules = {
  token: {
    user: { burst: 10, refill: 10, periodMs: 60_000 },
    address: { burst: 1_000, refill: 100, periodMs: 1_000 },
  },
  hold: {
    user: { burst: 20, refill: 2, periodMs: 1_000 },
    address: { burst: 2_000, refill: 200, periodMs: 1_000 },
  },
  payment: {
    user: { burst: 10, refill: 1, periodMs: 1_000 },
    address: { burst: 1_000, refill: 100, periodMs: 1_000 },
  },
};

interface Figure {
  readonly perSecond: number;
  readonly cpuUsPerCall: number;
}

/** Runs `call(i)` CALLS times with CONCURRENCY in flight. */
async function measure(call: (i: number) => Promise<unknown>): Promise<Figure> {
  let next = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < CALLS) await call(next++);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { perSecond: CALLS / seconds, cpuUsPerCall: (used.user + used.system) / CALLS };
}

/** Issues a live token to each of `count` fans; returns their token hashes. */
async function fansOf(store: QueueStore, count: number): Promise<string[]> {
  const hashes: string[] = [];
  for (let i = 0; i < count; i++) {
    const tokenHash = randomUUID();
    await store.issue({
      concertId: BENCH_CONCERT,
      userId: `fan-${i}`,
      tokenId: randomUUID(),
      tokenHash,
      now: Date.now(),
    });
    hashes.push(tokenHash);
  }
  return hashes;
}

async function main(): Promise<void> {
  const url = process.env.TEST_REDIS_URL;
  if (!url) throw new Error("bench:ratelimit needs TEST_REDIS_URL (a Redis it may write to)");
  const prefix = uniqueKeyPrefix();
  const client = await createRedisClient({ url, scripts: queueScripts, onError: () => {} });
  try {
    const redis = new RedisQueueStore(client, LIMITS, prefix);
    const memory = new MemoryQueueStore(LIMITS);
    const limiter = new RateLimiter(RULES);
    // One address per fan: no bucket runs dry, every call pays for both takes.
    const limits: CallLimit[] = Array.from(
      { length: CALLS },
      (_, i) => limiter.forCall("hold", `10.0.${(i >> 8) & 255}.${i & 255}`) as CallLimit,
    );
    const redisFans = await fansOf(redis, CALLS);
    const memoryFans = await fansOf(memory, CALLS);
    const lookup = (store: QueueStore, fans: string[], limited: boolean) => (i: number) =>
      store.lookup(
        BENCH_CONCERT,
        fans[i] as string,
        Date.now(),
        true,
        limited ? limits[i] : undefined,
      );
    const cases: [string, (i: number) => Promise<unknown>][] = [
      ["PING (floor)", () => client.ping()],
      ["token lookup, unlimited (Redis)", lookup(redis, redisFans, false)],
      ["token lookup + user and address buckets (Redis)", lookup(redis, redisFans, true)],
      ["token lookup, unlimited (in-process)", lookup(memory, memoryFans, false)],
      ["token lookup + user and address buckets (in-process)", lookup(memory, memoryFans, true)],
    ];
    // Warm up every path (JIT, script cache) before measuring.
    for (const [, run] of cases) await measure(run);
    const rows: string[][] = [];
    for (let round = 0; round < ROUNDS; round++) {
      let floor = 0;
      for (const [name, run] of cases) {
        const figure = await measure(run);
        if (floor === 0) floor = figure.perSecond;
        rows.push([
          String(round + 1),
          name,
          fmt(figure.perSecond),
          (figure.perSecond / floor).toFixed(2),
          figure.cpuUsPerCall.toFixed(1),
        ]);
      }
    }
    console.log(
      `\nrate-limited calls: ${CALLS} calls per line, ${CONCURRENCY} in flight, Redis ${url.replace(/\/\/.*@/, "//***@")}\n`,
    );
    console.log(formatTable(["round", "what", "calls/s", "÷ PING", "client CPU µs/call"], rows));
    await memory.close();
  } finally {
    client.destroy();
    await deleteKeys(url, prefix);
  }
}

await main();
