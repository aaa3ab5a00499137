/**
 * `npm run bench:script-cost`: what the waiting room's hot scripts cost Redis
 * itself. One concert's line lives on one Redis node (its keys share the
 * concert's hash tag), so the Redis time of a token issue bounds how many
 * tokens per second one concert can hand out, however many server instances
 * share that node.
 *
 * Each operation runs one at a time through RedisQueueStore, after an
 * unmeasured warm-up, so Redis is never waiting for the CPU mid-script; its
 * own INFO commandstats, read before and after (the counters are never
 * reset), give the time inside the script (`EVALSHA`'s usec, wall time
 * inside Redis, so CPU when nothing else runs) and how many Redis commands
 * the script ran. Printed per operation: Redis µs per call, commands per
 * call, and the calls per second one Redis core could serve at that cost.
 * Other clients' calls in the same window count too, so run it on a Redis
 * nothing else uses.
 *
 *   TEST_REDIS_URL=redis://127.0.0.1:6379/5 npm run bench:script-cost
 *
 * Knobs: SCRIPT_COST_CALLS (3000 per operation), SCRIPT_COST_ROUNDS (3).
 * Keys live under a fresh prefix and are deleted at the end.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { RedisQueueStore } from "../../server/src/modules/queue/redis-queue-store.js";
import type { CallLimit } from "../../server/src/modules/ratelimit/rate-limiter.js";
import { connectTestRedis, deleteKeys, uniqueKeyPrefix } from "../support/redis.js";
import { intKnob } from "./knobs.js";

const CALLS = intKnob("SCRIPT_COST_CALLS", 3000);
const ROUNDS = intKnob("SCRIPT_COST_ROUNDS", 3);
const WARM_UP = 500;
/** Generous limits, as in the rush: every issue is admitted at once and nothing expires. */
const LIMITS = {
  maxActive: 1_000_000,
  admissionTtlMs: 3_600_000,
  idleMs: 3_600_000,
  graceMs: 3_600_000,
};
/** A token call's buckets as the REST and RPC token calls take them (per user and per address). */
const TOKEN_LIMIT: CallLimit = {
  action: "token",
  user: { burst: 1_000, refill: 1, periodMs: 1 },
  address: { id: "bench-address", rule: { burst: 1_000_000, refill: 1, periodMs: 1 } },
};

/** Redis's per-command counters: calls and microseconds, by command name. */
type CommandStats = Map<string, { calls: number; usec: number }>;

function parseCommandStats(info: string): CommandStats {
  const stats: CommandStats = new Map();
  for (const line of info.split("\n")) {
    const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (match) stats.set(match[1] as string, { calls: Number(match[2]), usec: Number(match[3]) });
  }
  return stats;
}

/** What one operation cost Redis per call, from the counters' change over `calls` calls. */
interface Cost {
  readonly scriptUsec: number;
  readonly commands: number;
}

function costOf(before: CommandStats, after: CommandStats, calls: number): Cost {
  let scriptUsec = 0;
  let commands = 0;
  for (const [name, now] of after) {
    if (name === "info") continue;
    const then = before.get(name) ?? { calls: 0, usec: 0 };
    if (name === "evalsha" || name === "eval") scriptUsec += now.usec - then.usec;
    else commands += now.calls - then.calls;
  }
  return { scriptUsec: scriptUsec / calls, commands: commands / calls };
}

const url = process.env.TEST_REDIS_URL || "redis://127.0.0.1:6379/5";
const prefix = uniqueKeyPrefix();
const client = await connectTestRedis(url);
const stats = async () => parseCommandStats(await client.info("commandstats"));

/** Runs `op(i)` for i in 0..count one at a time; returns what it cost Redis per call. */
async function measure(count: number, op: (i: number) => Promise<unknown>): Promise<Cost> {
  const before = await stats();
  for (let i = 0; i < count; i++) await op(i);
  return costOf(before, await stats(), count);
}

async function round(index: number): Promise<Record<string, Cost>> {
  const store = new RedisQueueStore(client, LIMITS, `${prefix}${index}:`);
  const concertId = randomUUID();
  const hashes: string[] = [];
  const issue = (user: string, limit?: CallLimit) => {
    const tokenId = randomBytes(16).toString("hex");
    hashes.push(tokenId);
    return store.issue({
      concertId,
      userId: user,
      tokenId,
      tokenHash: tokenId,
      now: Date.now(),
      ...(limit ? { limit } : {}),
    });
  };
  for (let i = 0; i < WARM_UP; i++) await issue(`warm-${i}`);
  return {
    "issue (admitted at once)": await measure(CALLS, (i) => issue(`plain-${i}`)),
    "issue with the token call's limits": await measure(CALLS, (i) =>
      issue(`limited-${i}`, TOKEN_LIMIT),
    ),
    "lookup (an authenticated call)": await measure(CALLS, (i) =>
      store.lookup(concertId, hashes[WARM_UP + i] as string, Date.now(), true),
    ),
  };
}

try {
  const results: Record<string, Cost>[] = [];
  for (let i = 0; i < ROUNDS; i++) results.push(await round(i));
  console.log(
    `waiting-room scripts on Redis at ${new URL(url).host}, ${CALLS} calls per operation, one at a time, ${ROUNDS} rounds`,
  );
  for (const name of Object.keys(results[0] ?? {})) {
    const costs = results.map((r) => r[name] as Cost);
    const usec = costs.map((c) => c.scriptUsec.toFixed(1)).join(" / ");
    const commands = (costs.reduce((sum, c) => sum + c.commands, 0) / costs.length).toFixed(1);
    const best = Math.min(...costs.map((c) => c.scriptUsec));
    console.log(
      `  ${name}: ${usec} µs of Redis per call, ${commands} commands inside; ` +
        `at most ${Math.round(1e6 / best).toLocaleString("en-US")} calls/s per Redis core`,
    );
  }
} finally {
  client.destroy();
  await deleteKeys(url, prefix);
}
