import { randomBytes } from "node:crypto";
import { queueScripts } from "../../server/src/modules/queue/redis-queue-scripts.js";
import type { QueueRedisClient } from "../../server/src/modules/queue/redis-queue-store.js";
import { createRedisClient } from "../../server/src/redis/redis-client.js";

/** The Redis the suites may use, or undefined when TEST_REDIS_URL is unset. */
export const testRedisUrl: string | undefined = process.env.TEST_REDIS_URL || undefined;

/** Explains, once per suite, why Redis-backed tests are absent from this run. */
export function reportRedisSkipped(suite: string): void {
  console.log(`    (${suite}: Redis tests not run because TEST_REDIS_URL is unset)`);
}

/** A key prefix no other test run uses. */
export function uniqueKeyPrefix(): string {
  return `stagedoor-test:${randomBytes(6).toString("hex")}:`;
}

/** Connects a client with the queue scripts to the test Redis. */
export function connectTestRedis(url: string): Promise<QueueRedisClient> {
  return createRedisClient({
    url,
    scripts: queueScripts,
    onError: () => {},
  });
}

/** Deletes every key under a prefix (SCAN + DEL; never FLUSHALL/FLUSHDB). */
export async function deleteKeys(url: string, prefix: string): Promise<void> {
  const client = await connectTestRedis(url);
  try {
    const doomed: string[] = [];
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
      doomed.push(...keys);
    }
    for (let i = 0; i < doomed.length; i += 500) {
      await client.del(doomed.slice(i, i + 500));
    }
  } finally {
    client.destroy();
  }
}
