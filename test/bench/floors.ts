import { randomUUID } from "node:crypto";
import pg from "pg";
import { entities } from "../../server/src/modules/entities.js";
import { migrateUp, openOrm } from "../../server/src/persistence/orm.js";
import { createTestDatabase } from "../support/postgres.js";
import { deleteKeys, uniqueKeyPrefix } from "../support/redis.js";
import {
  ConnectionPool,
  type HttpReply,
  type HttpTarget,
  type Judge,
  type PhaseResult,
  runPhase,
} from "./load.js";
import { type Cleanup, healthProbe, startNodeServer } from "./processes.js";

/**
 * The floors: tiny servers doing only the I/O of a Stagedoor path, measured
 * with the same load generator and connection count as Stagedoor itself, in
 * the same run. Each Stagedoor figure is reported divided by its floor.
 *
 * - `store`: bare node:http + the project's RedisQueueStore.issue (needs Redis);
 * - `connect`: a bare connect-node server answering Health/Check;
 * - `hold`: bare node:http + pg, a hold transaction on distinct seats;
 * - `pay`: the same for a payment transaction on pre-seeded held seats.
 */
export type FloorKind = "store" | "connect" | "hold" | "pay";

/** What each floor is, for reports. */
export const FLOOR_LABELS: Readonly<Record<FloorKind, string>> = {
  store: "node:http + RedisQueueStore.issue (token floor)",
  connect: "bare connect-node Health/Check",
  hold: "node:http + pg hold transaction (distinct seats)",
  pay: "node:http + pg payment transaction",
};

/** Requests per floor when not configured: about 3 s each on the 2-core box. */
export const DEFAULT_FLOOR_REQUESTS: Readonly<Record<FloorKind, number>> = {
  store: 40_000,
  connect: 20_000,
  hold: 8_000,
  pay: 5_000,
};

/** Every floor price: one grade keeps the seeded wallets simple. */
const FLOOR_PRICE = 80_000;

/** How {@link measureFloors} runs. */
export interface FloorOptions {
  readonly connections: number;
  /** Requests per floor; each floor's default when omitted. */
  readonly requests?: number;
  /** The Redis the store floor uses; the store floor is skipped without one. */
  readonly redisUrl?: string;
  readonly cleanup: Cleanup;
  /** Progress messages. */
  readonly log: (line: string) => void;
}

/** Unmeasured requests before each floor's measured run, so every floor is measured warm. */
function warmUpCount(requests: number): number {
  return Math.max(200, Math.ceil(requests / 10));
}

/** Measures the given floors one after the other, each on a fresh child process. */
export async function measureFloors(
  kinds: readonly FloorKind[],
  options: FloorOptions,
): Promise<Map<FloorKind, PhaseResult>> {
  const results = new Map<FloorKind, PhaseResult>();
  const count = (kind: FloorKind) => options.requests ?? DEFAULT_FLOOR_REQUESTS[kind];
  if (kinds.includes("store")) {
    if (options.redisUrl) {
      results.set("store", await storeFloor(count("store"), options.redisUrl, options));
    } else {
      options.log("store floor skipped: no Redis");
    }
  }
  if (kinds.includes("connect")) {
    results.set("connect", await connectFloor(count("connect"), options));
  }
  const sql = kinds.filter((kind): kind is "hold" | "pay" => kind === "hold" || kind === "pay");
  if (sql.length > 0) {
    for (const [kind, result] of await sqlFloors(sql, count, options)) results.set(kind, result);
  }
  return results;
}

/** Runs warm-up requests, then the measured phase, on one pool. */
async function measure(
  name: string,
  pool: ConnectionPool,
  requests: number,
  connections: number,
  request: (index: number) => string,
  judge?: Judge,
): Promise<PhaseResult> {
  const warm = warmUpCount(requests);
  await runPhase(`${name} (warm-up)`, pool, warm, connections, async (i, call) => {
    await call(request(requests + i), judge);
  });
  return runPhase(name, pool, requests, connections, async (i, call) => {
    await call(request(i), judge);
  });
}

async function storeFloor(
  requests: number,
  redisUrl: string,
  options: FloorOptions,
): Promise<PhaseResult> {
  const keyPrefix = `${uniqueKeyPrefix()}floor:`;
  const forgetKeys = options.cleanup.defer("delete the store floor's keys", () =>
    deleteKeys(redisUrl, keyPrefix),
  );
  const server = await startNodeServer({
    label: "store floor",
    script: "test/bench/floors/store-floor.ts",
    cleanup: options.cleanup,
    probe: readyProbe,
    env: {
      REDIS_URL: redisUrl,
      FLOOR_KEY_PREFIX: keyPrefix,
      FLOOR_MAX_ACTIVE: String(requests + warmUpCount(requests) + 1),
      FLOOR_CONCERT_ID: randomUUID(),
    },
  });
  const pool = new ConnectionPool(server.target, server.pid);
  try {
    options.log(`floor: ${FLOOR_LABELS.store}, ${requests} requests`);
    return await measure(
      "store floor",
      pool,
      requests,
      options.connections,
      (i) => server.target.post("/token", { userId: `floor-fan-${i}` }),
      admittedAtOnce,
    );
  } finally {
    pool.close();
    await server.stop();
    await forgetKeys();
  }
}

/** A token reply that admits at once (queuePosition 0), as every issue in the rush must. */
const admittedAtOnce: Judge = (reply) =>
  reply.status === 200 && /"queuePosition":0\b/.test(reply.text) ? "ok" : "error";

/** The floors' own readiness route. */
const readyProbe = {
  request: (target: HttpTarget) => target.get("/ready"),
  ready: (reply: HttpReply) => reply.status === 200,
};

async function connectFloor(requests: number, options: FloorOptions): Promise<PhaseResult> {
  const server = await startNodeServer({
    label: "bare Connect floor",
    script: "test/bench/floors/bare-connect.ts",
    cleanup: options.cleanup,
    probe: healthProbe,
    env: {},
  });
  const pool = new ConnectionPool(server.target, server.pid);
  try {
    options.log(`floor: ${FLOOR_LABELS.connect}, ${requests} requests`);
    const request = server.target.post("/grpc.health.v1.Health/Check", {});
    return await measure("bare Connect floor", pool, requests, options.connections, () => request);
  } finally {
    pool.close();
    await server.stop();
  }
}

/** The SQL floors share one throwaway database, migrated by the project's own migrations. */
async function sqlFloors(
  kinds: readonly ("hold" | "pay")[],
  count: (kind: FloorKind) => number,
  options: FloorOptions,
): Promise<Map<FloorKind, PhaseResult>> {
  const results = new Map<FloorKind, PhaseResult>();
  const database = await createTestDatabase();
  const drop = options.cleanup.defer("drop the floor database", () => database.drop());
  try {
    await migrate(database.url);
    const holdTotal = kinds.includes("hold") ? count("hold") + warmUpCount(count("hold")) : 0;
    const payTotal = kinds.includes("pay") ? count("pay") + warmUpCount(count("pay")) : 0;
    const seeded = await seedFloorRows(database.url, holdTotal, payTotal);
    const server = await startNodeServer({
      label: "SQL floor",
      script: "test/bench/floors/sql-floor.ts",
      cleanup: options.cleanup,
      probe: readyProbe,
      env: { DATABASE_URL: database.url, FLOOR_POOL_MAX: "16" },
    });
    const pool = new ConnectionPool(server.target, server.pid);
    try {
      if (kinds.includes("hold")) {
        const requests = count("hold");
        options.log(`floor: ${FLOOR_LABELS.hold}, ${requests} requests`);
        results.set(
          "hold",
          await measure("hold floor", pool, requests, options.connections, (i) =>
            server.target.post("/hold", {
              userId: `floor-holder-${i}`,
              seatId: seeded.holdSeats[i],
              requestId: `hold-${i}`,
            }),
          ),
        );
      }
      if (kinds.includes("pay")) {
        const requests = count("pay");
        options.log(`floor: ${FLOOR_LABELS.pay}, ${requests} requests`);
        results.set(
          "pay",
          await measure("payment floor", pool, requests, options.connections, (i) => {
            const payer = seeded.payers[i];
            return server.target.post("/pay", {
              userId: payer?.userId,
              reservationId: payer?.reservationId,
              amount: FLOOR_PRICE,
              requestId: `pay-${i}`,
            });
          }),
        );
      }
    } finally {
      pool.close();
      await server.stop();
    }
  } finally {
    await drop();
  }
  return results;
}

/** Applies the project's migrations to a fresh database, as the server does at start-up. */
async function migrate(url: string): Promise<void> {
  const orm = await openOrm({ url, entities, poolMax: 2 });
  try {
    await migrateUp(orm, url);
  } finally {
    await orm.close();
  }
}

/**
 * Seeds the SQL floors: one concert; a date of `holdSeats` free seats; a date
 * of `payers` seats each held by its own user, with the reservation and a
 * wallet funded with exactly the price (and its RECHARGE ledger entry).
 */
async function seedFloorRows(
  url: string,
  holdSeats: number,
  payers: number,
): Promise<{ holdSeats: string[]; payers: { userId: string; reservationId: string }[] }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const concertId = randomUUID();
    const holdDate = randomUUID();
    const payDate = randomUUID();
    await client.query(
      "insert into concert (id, title, venue, created_at) values ($1, 'Floor', 'Floor Hall', now())",
      [concertId],
    );
    await client.query(
      `insert into concert_date (id, concert_id, date, starts_at, total_seats)
       values ($1, $3, current_date + 30, current_date + 30 + time '19:00', $4),
              ($2, $3, current_date + 31, current_date + 31 + time '19:00', $5)`,
      [holdDate, payDate, concertId, holdSeats, payers],
    );
    const held = await client.query<{ id: string; number: number }>(
      `insert into seat (id, concert_date_id, number, grade, price, status, version)
       select gen_random_uuid(), $1, n, 'S', $2, 'AVAILABLE', 1 from generate_series(1, $3) n
       returning id, number`,
      [holdDate, FLOOR_PRICE, holdSeats],
    );
    await client.query(
      `insert into seat (id, concert_date_id, number, grade, price, status, held_until, reservation_id, version)
       select gen_random_uuid(), $1, n, 'S', $2, 'HELD', now() + interval '1 hour', gen_random_uuid(), 2
         from generate_series(1, $3) n`,
      [payDate, FLOOR_PRICE, payers],
    );
    const reservations = await client.query<{ id: string; user_id: string }>(
      `insert into reservation (id, user_id, concert_id, concert_date_id, date, seat_id, seat_number,
                                price, status, held_until, created_at)
       select s.reservation_id, 'floor-payer-' || s.number, $2, s.concert_date_id, d.date, s.id,
              s.number, s.price, 'HELD', s.held_until, now()
         from seat s join concert_date d on d.id = s.concert_date_id
        where s.concert_date_id = $1
       returning id, user_id`,
      [payDate, concertId],
    );
    await client.query(
      `insert into wallet (user_id, balance, version, created_at, updated_at)
       select 'floor-payer-' || n, $1, 1, now(), now() from generate_series(1, $2) n`,
      [FLOOR_PRICE, payers],
    );
    await client.query(
      `insert into ledger_entry (id, user_id, kind, amount, balance_after, wallet_version, created_at)
       select gen_random_uuid(), 'floor-payer-' || n, 'RECHARGE', $1, $1, 1, now()
         from generate_series(1, $2) n`,
      [FLOOR_PRICE, payers],
    );
    await client.query("analyze");
    return {
      holdSeats: held.rows.sort((a, b) => a.number - b.number).map((row) => row.id),
      payers: reservations.rows.map((row) => ({ userId: row.user_id, reservationId: row.id })),
    };
  } finally {
    await client.end();
  }
}
