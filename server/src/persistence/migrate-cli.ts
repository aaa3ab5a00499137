import { loadConfig } from "../config.js";
import { entities } from "../modules/entities.js";
import { migrateUp, openOrm } from "./orm.js";

/**
 * `npm run db:migrate`: applies pending migrations to DATABASE_URL and exits.
 * The server also migrates at start-up; this is for deploy pipelines that
 * migrate before rolling out.
 */
async function migrate(): Promise<void> {
  const config = loadConfig();
  if (config.databaseUrl === undefined) {
    throw new Error("DATABASE_URL must be set to migrate (the embedded database migrates itself)");
  }
  const orm = await openOrm({ url: config.databaseUrl, entities, poolMax: 2 });
  try {
    await migrateUp(orm, config.databaseUrl);
    console.log("migrations applied");
  } finally {
    await orm.close();
  }
}

migrate().catch((error: unknown) => {
  console.error("stagedoor: migration failed:", error instanceof Error ? error.message : error);
  process.exit(1);
});
