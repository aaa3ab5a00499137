/**
 * `npm run bench:listing`: what one seat listing of a big date costs the
 * server once it is cached, unchanged and with a seat changing between
 * listings. Seeds one concert with one date of LISTING_SEATS seats (50,000),
 * starts the server (as `npm start` runs it) and lists the date
 * LISTING_REPEATS times (200) over the seed's REST route, one request at a
 * time, reading the server's CPU from /proc around each series.
 *
 * Knobs: LISTING_SEATS, LISTING_REPEATS, and the server knobs of the other
 * benches (BENCH_WORKERS is ignored: one process is measured).
 */
import { createTestDatabase, stopSharedPostgres } from "../support/postgres.js";
import { deleteKeys, testRedisUrl, uniqueKeyPrefix } from "../support/redis.js";
import { seedCatalog } from "./bench-catalog.js";
import { CpuMeter } from "./cpu-meter.js";
import { ConnectionPool, fmt, formatTable, jsonBody } from "./load.js";
import { Cleanup, serverNodeArgs, startStagedoor } from "./processes.js";

const SEATS = Number(process.env.LISTING_SEATS ?? 50_000);
const REPEATS = Number(process.env.LISTING_REPEATS ?? 200);

async function main(): Promise<void> {
  const cleanup = new Cleanup();
  cleanup.onSignals();
  delete process.env.BENCH_WORKERS;
  try {
    const database = await createTestDatabase();
    cleanup.defer("drop the database", () => database.drop());
    const keyPrefix = uniqueKeyPrefix();
    if (testRedisUrl) {
      const url = testRedisUrl;
      cleanup.defer("delete the Redis keys", () => deleteKeys(url, keyPrefix));
    }
    const server = await startStagedoor({
      databaseUrl: database.url,
      redis: testRedisUrl ? { url: testRedisUrl, keyPrefix } : undefined,
      maxActive: REPEATS + 10,
      poolMax: undefined,
      nodeArgs: serverNodeArgs(),
      cleanup,
    });
    const catalog = await seedCatalog(database.url, {
      dates: 1,
      seatsPerDate: SEATS,
      gradeOf: () => ({ grade: "S", price: 50_000 }),
    });
    const date = catalog.dates[0];
    if (!date) throw new Error("no date was seeded");
    const pool = new ConnectionPool(server.target);
    cleanup.defer("close the connections", () => pool.close());
    const meter = new CpuMeter(server.pid);
    const list = async () => {
      const reply = await pool.send(server.target.get(`/api/concerts/seats?date=${date.date}`));
      if (reply.status !== 200) throw new Error(`the listing answered ${reply.status}`);
      return reply.text;
    };

    const coldStarted = meter.sample();
    const first = await list();
    const cold = meter.sample().server - coldStarted.server;
    const listed = (jsonBody({ status: 200, text: first }).availableSeats as unknown[]).length;
    if (listed !== SEATS) throw new Error(`listed ${listed} of ${SEATS} seats`);

    const series = async (between?: (i: number) => Promise<void>) => {
      let cpu = 0;
      let started = performance.now();
      let wall = 0;
      for (let i = 0; i < REPEATS; i++) {
        if (between) await between(i);
        const before = meter.sample().server;
        started = performance.now();
        await list();
        wall += performance.now() - started;
        cpu += meter.sample().server - before;
      }
      return { cpuUs: cpu / REPEATS, wallMs: wall / REPEATS };
    };
    const unchanged = await series();
    // A different fan holds a seat before every listing: the cache catches up
    // from the gate's log and re-renders one block.
    const changing = await series(async (i) => {
      const token = jsonBody(
        await pool.send(server.target.post("/api/token", { userId: `lister-${i}` })),
      ).token;
      const hold = await pool.send(
        server.target.post("/api/reservations", {
          userId: `lister-${i}`,
          date: date.date,
          seatNumber: i + 1,
          token,
        }),
      );
      if (hold.status !== 200) throw new Error(`a hold answered ${hold.status}`);
    });

    console.log(
      `\nStagedoor listing bench: one date of ${fmt(SEATS)} seats (${fmt(first.length)} bytes of JSON), ` +
        `${REPEATS} listings per series, one at a time over GET /api/concerts/seats, ` +
        `queue store: ${testRedisUrl ? "Redis" : "in-process"}\n`,
    );
    console.log(
      formatTable(
        ["listing", "server CPU µs (per listing)", "latency ms"],
        [
          ["first (builds the cache: one query)", fmt(cold), "-"],
          ["cached, nothing changed", fmt(unchanged.cpuUs), fmt(unchanged.wallMs, 2)],
          ["cached, one seat held before each", fmt(changing.cpuUs), fmt(changing.wallMs, 2)],
        ],
      ),
    );
    console.log(
      "\nserver CPU comes from /proc in 10 ms ticks, so single figures below ~100 µs are averages of few ticks",
    );
  } finally {
    await cleanup.run();
    await stopSharedPostgres();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
