import type { EntityManager } from "@mikro-orm/postgresql";

/**
 * Gives each use case its own EntityManager fork. Services depend on this
 * instead of the ORM, so there is no global EntityManager to share by mistake.
 */
export interface Database {
  fork(): EntityManager;
}

/**
 * Runs `work` in a transaction of MikroORM's unit of work on a fork of its
 * own: `em.begin()`, the work, `em.commit()` (which flushes the unit of work
 * first), or `em.rollback()` when anything throws. Every write of the server
 * goes through here.
 *
 * Not `em.transactional()`: it wraps each transaction in an
 * AsyncLocalStorage context, and on Node 20 the first such context switches
 * on promise hooks for every promise the process creates from then on, which
 * measured 10–20% of the CPU of a trivial RPC. Nothing here needs the
 * context: the fork is passed to `work` explicitly.
 */
export async function transaction<T>(
  db: Database,
  work: (em: EntityManager) => Promise<T>,
): Promise<T> {
  const em = db.fork();
  await em.begin();
  let result: T;
  try {
    result = await work(em);
  } catch (error) {
    // A rollback that fails (the connection broke) must not hide why.
    await em.rollback().catch(() => undefined);
    throw error;
  }
  try {
    await commit(em);
  } catch (error) {
    await em.rollback().catch(() => undefined);
    throw error;
  }
  return result;
}

/**
 * Commits the fork's transaction: `em.commit()`, which flushes the unit of
 * work first, when it manages anything; when it manages nothing (the hot
 * paths write with their own statements), the flush has nothing to do but
 * would still enter an AsyncLocalStorage context, so the transaction is
 * committed on its connection directly.
 */
async function commit(em: EntityManager): Promise<void> {
  const work = em.getUnitOfWork();
  const idle =
    work.getIdentityMap().values().length === 0 &&
    work.getPersistStack().size === 0 &&
    work.getRemoveStack().size === 0;
  const ctx = em.getTransactionContext();
  if (!idle || ctx === undefined) {
    await em.commit();
    return;
  }
  await em.getConnection("write").commit(ctx);
}
