import { stopSharedPostgres } from "./postgres.js";
import { stopSharedRedisCluster } from "./redis-cluster.js";

/**
 * Mocha root hooks (loaded through .mocharc.json "require"). The shared
 * embedded PostgreSQL and the shared Redis Cluster (three redis-server
 * processes) are child processes that would keep mocha waiting forever after
 * the last test, so they are stopped, and their files deleted, once every
 * test has run.
 */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    await Promise.all([stopSharedPostgres(), stopSharedRedisCluster()]);
  },
};
