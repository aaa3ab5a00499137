import type { EntityManager } from "@mikro-orm/postgresql";

/**
 * Gives each use case its own EntityManager fork. Services depend on this
 * instead of the ORM, so there is no global EntityManager to share by mistake.
 */
export interface Database {
  fork(): EntityManager;
}
