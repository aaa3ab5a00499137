import { stopSharedPostgres } from "./postgres.js";

/**
 * Mocha root hooks (loaded through .mocharc.json "require"). The shared
 * embedded PostgreSQL is a child process that would keep mocha waiting
 * forever after the last test, so it is stopped, and its files deleted, once
 * every test has run.
 */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    await stopSharedPostgres();
  },
};
