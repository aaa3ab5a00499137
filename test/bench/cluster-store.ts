/**
 * The waiting room's store on one Redis primary and on a three-master Redis
 * Cluster, in the same run: token issues and token lookups (the token hot
 * path) with a fixed number in flight, through RedisQueueStore itself.
 * Prints operations per second and the cluster's ratio to the primary; the
 * primary is TEST_REDIS_URL, the cluster is started here (redis-server).
 *
 *   TEST_REDIS_URL=redis://127.0.0.1:6379/5 npm run bench:cluster
 *
 * Knobs: CLUSTER_BENCH_OPS (default 20000), CLUSTER_BENCH_IN_FLIGHT (64),
 * CLUSTER_BENCH_CONCERTS (4: lines spread over the masters).
 */
import { randomBytes } from "node:crypto";
import type { QueueRedis } from "../../server/src/modules/queue/redis-queue-store.js";
import { RedisQueueStore } from "../../server/src/modules/queue/redis-queue-store.js";
import { connectTestRedis, deleteKeys } from "../support/redis.js";
import { startRedisCluster } from "../support/redis-cluster.js";

const OPS = Number(process.env.CLUSTER_BENCH_OPS ?? 20_000);
const IN_FLIGHT = Number(process.env.CLUSTER_BENCH_IN_FLIGHT ?? 64);
const CONCERTS = Number(process.env.CLUSTER_BENCH_CONCERTS ?? 4);
const LIMITS = { maxActive: 100, admissionTtlMs: 600_000, idleMs: 600_000, graceMs: 3_600_000 };

/** Runs `op(i)` for i in 0..count with `IN_FLIGHT` at once; resolves to ops per second. */
async function drive(count: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < count) await op(next++);
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return count / seconds;
}

async function measure(client: QueueRedis, prefix: string) {
  const store = new RedisQueueStore(client, LIMITS, prefix);
  const concertOf = (i: number) => `bench-concert-${i % CONCERTS}`;
  const now = Date.now();
  // Warm-up (unmeasured): scripts loaded, connections open.
  await drive(1000, (i) =>
    store.issue({
      concertId: concertOf(i),
      userId: `warm-${i}`,
      tokenId: `warm-${i}`,
      tokenHash: `warm-${i}`,
      now,
    }),
  );
  const issues = await drive(OPS, (i) =>
    store.issue({
      concertId: concertOf(i),
      userId: `user-${i}`,
      tokenId: `tok-${i}`,
      tokenHash: `hash-${i}`,
      now,
    }),
  );
  const lookups = await drive(OPS, (i) => store.lookup(concertOf(i), `hash-${i}`, now, true));
  return { issues, lookups };
}

const url = process.env.TEST_REDIS_URL;
if (!url) throw new Error("set TEST_REDIS_URL (the one-primary side of the comparison)");
const prefix = `stagedoor-bench:${randomBytes(6).toString("hex")}:`;
const single = await connectTestRedis(url);
const cluster = await startRedisCluster();
const clustered = await cluster.connect();
try {
  // Alternate the two sides so drift in the machine's load hits both.
  const rounds = [];
  for (let round = 0; round < 2; round++) {
    rounds.push({
      single: await measure(single, `${prefix}s${round}:`),
      cluster: await measure(clustered, `${prefix}c${round}:`),
    });
  }
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  console.log(
    `RedisQueueStore, ${fmt(OPS)} ops per phase, ${IN_FLIGHT} in flight, ${CONCERTS} concerts:`,
  );
  for (const [i, r] of rounds.entries()) {
    console.log(
      `  round ${i + 1}: issue ${fmt(r.single.issues)}/s one primary, ${fmt(r.cluster.issues)}/s cluster (${(r.cluster.issues / r.single.issues).toFixed(2)}×); ` +
        `lookup ${fmt(r.single.lookups)}/s one primary, ${fmt(r.cluster.lookups)}/s cluster (${(r.cluster.lookups / r.single.lookups).toFixed(2)}×)`,
    );
  }
} finally {
  await clustered.close();
  await cluster.stop();
  single.destroy();
  await deleteKeys(url, prefix);
}
