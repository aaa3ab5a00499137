/**
 * The token-issue floor: bare `node:http` calling the project's own
 * `RedisQueueStore.issue` (the same Lua script, the same node-redis client),
 * with none of Stagedoor's routing, validation, token crypto or catalog
 * lookup. `POST /token {"userId"}` answers `{token, queuePosition,
 * expirationTime}` like `POST /api/token`; `GET /ready` answers 200.
 *
 * Env: PORT, REDIS_URL, FLOOR_KEY_PREFIX (keys are deleted by the bench),
 * FLOOR_MAX_ACTIVE (admitted at once; the bench sets it above the number of
 * requests so every issue admits, as in the rush), FLOOR_CONCERT_ID (any id:
 * the store does not check the catalog).
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import { queueScripts, RedisQueueStore } from "../../../server/src/modules/queue/index.js";
import { createRedisClient } from "../../../server/src/redis/redis-client.js";
import { floorPort, readJson, sendJson } from "./floor-http.js";

const ADMISSION_TTL_MS = 3_600_000;
const concertId = process.env.FLOOR_CONCERT_ID ?? "00000000-0000-4000-8000-000000000001";
const redis = await createRedisClient({
  url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379/5",
  scripts: queueScripts,
  onError: (error: unknown) => console.error("store floor: Redis error", error),
});
const store = new RedisQueueStore(
  redis,
  {
    maxActive: Number(process.env.FLOOR_MAX_ACTIVE ?? 1_000_000),
    admissionTtlMs: ADMISSION_TTL_MS,
    idleMs: 30_000,
    graceMs: 60_000,
  },
  process.env.FLOOR_KEY_PREFIX ?? "stagedoor-floor:",
);

http
  .createServer(async (req, res) => {
    try {
      if (req.method === "GET") return sendJson(res, 200, {});
      const body = await readJson(req);
      const tokenId = randomBytes(16).toString("hex");
      const now = Date.now();
      const issued = await store.issue({
        concertId,
        userId: String(body.userId),
        tokenId,
        tokenHash: tokenId,
        now,
      });
      sendJson(res, 200, {
        token: tokenId,
        queuePosition: issued.snapshot.position,
        expirationTime: new Date(issued.snapshot.admissionExpiresAt || now).toISOString(),
      });
    } catch (error) {
      sendJson(res, 500, { error: String((error as Error).message ?? error) });
    }
  })
  .listen(floorPort(), "127.0.0.1");
