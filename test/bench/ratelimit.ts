/**
 * `npm run bench:ratelimit`: what a rate-limit check costs, against the
 * Redis of TEST_REDIS_URL (under a throwaway key prefix, deleted afterwards)
 * and in-process. With RL_CONCURRENCY (64) checks in flight, RL_CALLS
 * (20,000) calls each, it measures in one run, one after the other, three
 * times over (rounds interleaved, so the machine's load touches each alike):
 *
 * - the floor: a bare PING round trip on the same connection;
 * - the queue's own token lookup script (what every authenticated call
 *   already pays), for comparison;
 * - one bucket (`RedisRateLimitStore.take`);
 * - a limited call's check (`RateLimiter.check`: its user's and its
 *   address's buckets, sent together);
 * - the same check in-process (`MemoryRateLimitStore`).
 *
 * Each line prints calls/s, the ratio to the PING floor of the same round,
 * and this process's CPU per call. Every call uses its own user and address
 * (nobody is refused), as in a rush of distinct fans.
 *
 * A benchmark, not a test: it prints figures and asserts nothing.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { createLogger } from "../../server/src/logger.js";
import { queueScripts, RedisQueueStore } from "../../server/src/modules/queue/index.js";
import {
  MemoryRateLimitStore,
  RateLimiter,
  type RateLimitRules,
  RedisRateLimitStore,
} from "../../server/src/modules/ratelimit/index.js";
import { createRedisClient } from "../../server/src/redis/redis-client.js";
import { systemClock } from "../../server/src/shared/clock.js";
import { deleteKeys, uniqueKeyPrefix } from "../support/redis.js";
import { fmt, formatTable } from "./load.js";

/** The concert whose (empty) line the token lookups read. */
const BENCH_CONCERT = randomUUID();

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

const HOLD_PER_USER = { burst: 20, refill: 2, periodMs: 1_000 };

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

async function main(): Promise<void> {
  const url = process.env.TEST_REDIS_URL;
  if (!url) throw new Error("bench:ratelimit needs TEST_REDIS_URL (a Redis it may write to)");
  const prefix = uniqueKeyPrefix();
  const logger = createLogger("warn");
  const client = await createRedisClient({ url, scripts: queueScripts, onError: () => {} });
  try {
    const queue = new RedisQueueStore(
      client,
      { maxActive: 100, admissionTtlMs: 600_000, idleMs: 30_000, graceMs: 3_600_000 },
      prefix,
    );
    const store = new RedisRateLimitStore(client, prefix);
    const redisLimiter = new RateLimiter(store, RULES, systemClock, logger);
    const memoryLimiter = new RateLimiter(new MemoryRateLimitStore(), RULES, systemClock, logger);
    const cases: [string, (i: number, round: number) => Promise<unknown>][] = [
      ["PING (floor)", () => client.ping()],
      [
        "queue token lookup (every authenticated call)",
        (i) => queue.lookup(BENCH_CONCERT, `no-such-token-${i}`, Date.now(), true),
      ],
      [
        "one bucket (Redis)",
        (i, r) => store.take(`hold:u:fan-${r}-${i}`, HOLD_PER_USER, Date.now()),
      ],
      [
        "limited call: user + address buckets (Redis)",
        (i, r) =>
          redisLimiter.check("hold", {
            userId: `fan-${r}-${i}`,
            address: `10.${r}.${(i >> 8) & 255}.${i & 255}`,
          }),
      ],
      [
        "limited call: user + address buckets (in-process)",
        (i, r) =>
          memoryLimiter.check("hold", {
            userId: `fan-${r}-${i}`,
            address: `10.${r}.${(i >> 8) & 255}.${i & 255}`,
          }),
      ],
    ];
    // Warm up every path (JIT, script cache) before measuring.
    for (const [, run] of cases) await measure((i) => run(i, 99));
    const rows: string[][] = [];
    for (let round = 0; round < ROUNDS; round++) {
      let floor = 0;
      for (const [name, run] of cases) {
        const figure = await measure((i) => run(i, round));
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
      `\nrate-limit checks: ${CALLS} calls per line, ${CONCURRENCY} in flight, Redis ${url.replace(/\/\/.*@/, "//***@")}\n`,
    );
    console.log(formatTable(["round", "what", "calls/s", "÷ PING", "client CPU µs/call"], rows));
  } finally {
    client.destroy();
    await deleteKeys(url, prefix);
  }
}

await main();
