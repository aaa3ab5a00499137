/**
 * `npm run bench`: how fast one server process issues queue tokens, holds
 * seats and takes payments, end to end through Connect, MikroORM, PostgreSQL
 * and the queue store, next to the floors of the same paths measured in the
 * same run (see floors.ts).
 *
 * The server runs in its own process (exactly `server/src/main.ts`), and this
 * process is the load generator, speaking Connect JSON over HTTP/1.1
 * keep-alive on raw sockets (see http1.ts). It uses TEST_DATABASE_URL (or an
 * embedded PostgreSQL) for a throwaway database, and TEST_REDIS_URL for the
 * waiting room when set (otherwise the in-process store).
 *
 * Before the measured phases, BENCH_WARMUP users (1000) go through the same
 * phases unmeasured, so the figures are those of a server whose hot paths are
 * compiled and whose statements are prepared, as the floors' are.
 *
 * Knobs: BENCH_USERS (default 10000), BENCH_CONCURRENCY (64), BENCH_RUSH (2000), BENCH_WARMUP (1000),
 * BENCH_POOL (the server's DB_POOL_MAX; its default, 10, when unset), BENCH_FLOOR_REQUESTS (per floor, ~3 s each
 * by default), BENCH_WORKERS (passed to the server as WORKERS when set),
 * BENCH_NODE_ARGS (extra node flags for the server, e.g.
 * "--cpu-prof --cpu-prof-dir=/tmp/prof"), BENCH_SERVER_CHECKOUT (another
 * checkout whose server to measure against this one's floors; see processes.ts).
 */
import os from "node:os";
import { createTestDatabase, stopSharedPostgres } from "../support/postgres.js";
import { deleteKeys, testRedisUrl, uniqueKeyPrefix } from "../support/redis.js";
import { seedCatalog } from "./bench-catalog.js";
import { FLOOR_LABELS, type FloorKind, measureFloors } from "./floors.js";
import {
  ConnectionPool,
  CPU_HEADER,
  cpuCells,
  fmt,
  formatTable,
  jsonBody,
  outcomeLines,
  PHASE_HEADER,
  type PhaseResult,
  phaseRow,
  runPhase,
} from "./load.js";
import { Cleanup, serverCheckout, serverNodeArgs, startStagedoor } from "./processes.js";
import { connectSeatTaken } from "./rush-flows.js";

const USERS = Number(process.env.BENCH_USERS ?? 10_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const RUSH = Number(process.env.BENCH_RUSH ?? 2_000);
/** Users of an unmeasured first pass through every phase (the floors get a warm-up too). */
const WARM_UP = Number(process.env.BENCH_WARMUP ?? 1_000);
const POOL = process.env.BENCH_POOL ? Number(process.env.BENCH_POOL) : undefined;
const FLOOR_REQUESTS = process.env.BENCH_FLOOR_REQUESTS
  ? Number(process.env.BENCH_FLOOR_REQUESTS)
  : undefined;
const PRICE = 80_000;

const QUEUE = "/stagedoor.queue.v1.QueueService";
const RESERVATION = "/stagedoor.reservation.v1.ReservationService";
const WALLET = "/stagedoor.wallet.v1.WalletService";
const PAYMENT = "/stagedoor.payment.v1.PaymentService";

/** Stagedoor's phases next to their floors, with the ratio each should reach. */
function formatRatios(
  results: ReadonlyMap<string, PhaseResult>,
  floors: ReadonlyMap<FloorKind, PhaseResult>,
): string {
  const rows = (
    [
      ["issue token", "connect", 0.8],
      ["queue status", "connect", 0.8],
      ["hot-seat rush", "connect", 0.7],
      ["hold seat", "hold", 0.5],
      ["pay", "pay", 0.5],
    ] as const
  ).map(([phase, floor, target]) => {
    const figure = results.get(phase)?.perSecond ?? 0;
    const base = floors.get(floor)?.perSecond ?? 0;
    const ratio = base > 0 ? figure / base : Number.NaN;
    return [
      `${phase} ÷ ${FLOOR_LABELS[floor]}`,
      fmt(figure),
      fmt(base),
      Number.isNaN(ratio) ? "-" : ratio.toFixed(3),
      `≥ ${target}`,
      Number.isNaN(ratio) ? "-" : ratio >= target ? "met" : "missed",
    ];
  });
  return formatTable(["ratio", "ops/s", "floor /s", "ratio", "target", ""], rows);
}

async function main(): Promise<void> {
  serverCheckout(); // a wrong BENCH_SERVER_CHECKOUT fails now, not after the floors
  const cleanup = new Cleanup();
  cleanup.onSignals();
  let failed = false;
  try {
    const floors = await measureFloors(["connect", "hold", "pay"], {
      connections: CONCURRENCY,
      requests: FLOOR_REQUESTS,
      cleanup,
      log: (line) => console.error(line),
    });

    const database = await createTestDatabase();
    cleanup.defer("drop the bench database", () => database.drop());
    const keyPrefix = uniqueKeyPrefix();
    if (testRedisUrl) {
      const url = testRedisUrl;
      cleanup.defer("delete the bench's Redis keys", () => deleteKeys(url, keyPrefix));
    }
    const server = await startStagedoor({
      databaseUrl: database.url,
      redis: testRedisUrl ? { url: testRedisUrl, keyPrefix } : undefined,
      maxActive: 1_000_000,
      poolMax: POOL,
      nodeArgs: serverNodeArgs(),
      cleanup,
    });
    const catalog = await seedCatalog(database.url, {
      dates: 1,
      seatsPerDate: WARM_UP + USERS + 10,
      gradeOf: () => ({ grade: "S", price: PRICE }),
    });
    const { concertId } = catalog;
    const seatIds = catalog.dates[0]?.seats.map((seat) => seat.id) ?? [];
    const pool = new ConnectionPool(server.target, server.pid);
    cleanup.defer("close the connections", () => pool.close());
    const post = (path: string, body: unknown, token?: string) =>
      server.target.post(path, body, token);

    const results: PhaseResult[] = [];
    /**
     * Token, status, hold, recharge and pay for `users` users (`<label>-<i>`)
     * on the seats from `firstSeat` on; measured phases are kept in `results`.
     */
    const runUsers = async (label: string, users: number, firstSeat: number, measured: boolean) => {
      const tokens: string[] = new Array(users).fill("");
      const reservations: string[] = new Array(users).fill("");
      const phase = async (name: string, task: Parameters<typeof runPhase>[4]) => {
        const result = await runPhase(name, pool, users, CONCURRENCY, task);
        if (measured) results.push(result);
        else if (result.errors > 0) throw new Error(`the warm-up's ${name} phase met errors`);
      };
      await phase("issue token", async (i, call) => {
        const reply = await call(
          post(`${QUEUE}/IssueQueueToken`, { concertId, userId: `${label}-${i}` }),
        );
        tokens[i] = String(jsonBody(reply).token ?? "");
      });
      await phase("queue status", async (i, call) => {
        await call(post(`${QUEUE}/GetQueueStatus`, {}, tokens[i]));
      });
      await phase("hold seat", async (i, call) => {
        const reply = await call(
          post(
            `${RESERVATION}/HoldSeat`,
            { seatId: seatIds[firstSeat + i], requestId: `hold-${label}-${i}` },
            tokens[i],
          ),
        );
        const reservation = jsonBody(reply).reservation as { id?: string } | undefined;
        reservations[i] = reservation?.id ?? "";
        if (!measured) {
          // The warm-up also runs the refusal path the hot-seat rush measures:
          // a seat the previous user holds (or, if not yet, a second hold).
          await call(
            post(
              `${RESERVATION}/HoldSeat`,
              { seatId: seatIds[firstSeat + ((i + users - 1) % users)], requestId: `taken-${i}` },
              tokens[i],
            ),
            (reply) => (reply.status === 400 ? "refused" : "error"),
          );
        }
      });
      await phase("recharge", async (i, call) => {
        await call(
          post(
            `${WALLET}/RechargeWallet`,
            { amount: String(PRICE), requestId: `recharge-${label}-${i}` },
            tokens[i],
          ),
        );
      });
      await phase("pay", async (i, call) => {
        await call(
          post(
            `${PAYMENT}/CreatePayment`,
            {
              reservationId: reservations[i],
              amount: String(PRICE),
              requestId: `pay-${label}-${i}`,
            },
            tokens[i],
          ),
        );
      });
    };
    if (WARM_UP > 0) {
      console.error(`warm-up: ${WARM_UP} users through every phase, not measured`);
      await runUsers("warm", WARM_UP, USERS, false);
    }
    await runUsers("bench", USERS, 0, true);

    // The rush: fresh admitted users all try the one seat still free; one
    // wins, the rest are refused with a clean "seat unavailable".
    const rushTokens: string[] = new Array(RUSH).fill("");
    await runPhase("(rush users)", pool, RUSH, CONCURRENCY, async (i, call) => {
      const reply = await call(
        post(`${QUEUE}/IssueQueueToken`, { concertId, userId: `rush-${i}` }),
      );
      rushTokens[i] = String(jsonBody(reply).token ?? "");
    });
    const hotSeat = seatIds[seatIds.length - 1];
    results.push(
      await runPhase("hot-seat rush", pool, RUSH, CONCURRENCY, async (i, call) => {
        await call(
          post(
            `${RESERVATION}/HoldSeat`,
            { seatId: hotSeat, requestId: `rush-${i}` },
            rushTokens[i],
          ),
          connectSeatTaken,
        );
      }),
    );

    const cpus = os.cpus();
    console.log(
      `\nStagedoor bench: ${USERS} users, ${CONCURRENCY} in flight, Connect JSON over HTTP/1.1, ` +
        `queue store: ${testRedisUrl ? "Redis" : "in-process"}, Node ${process.version}, ` +
        `${cpus.length} CPUs, BENCH_WORKERS=${process.env.BENCH_WORKERS || "(unset)"}, ` +
        `${WARM_UP} warm-up users first (not measured)` +
        (process.env.BENCH_SERVER_CHECKOUT
          ? `, server from ${process.env.BENCH_SERVER_CHECKOUT}\n`
          : "\n"),
    );
    console.log(
      formatTable(
        [...PHASE_HEADER, ...CPU_HEADER],
        results.map((r) => [...phaseRow(r), ...cpuCells(r)]),
      ),
    );
    console.log(`\nfloors (same run, ${CONCURRENCY} connections):`);
    console.log(
      formatTable(
        ["floor", "requests", "req/s", "p50 ms", "p99 ms"],
        [...floors].map(([kind, r]) => [
          FLOOR_LABELS[kind],
          fmt(r.requests),
          fmt(r.perSecond),
          fmt(r.p50Ms, 2),
          fmt(r.p99Ms, 2),
        ]),
      ),
    );
    console.log("");
    console.log(formatRatios(new Map(results.map((r) => [r.name, r])), floors));
    if (!testRedisUrl) {
      // Issue 6 states its targets for PostgreSQL + Redis. In-process, the
      // waiting room's work runs on the server's one core, which Redis would
      // take off it, so the queue phases' ratios are lower by design.
      console.log(
        "\nqueue store in-process: the targets are stated for the Redis store (set TEST_REDIS_URL); " +
          "here the queue's work shares the server's one core",
      );
    }
    const outcomes = outcomeLines(results);
    if (outcomes.length > 0) console.log(`\nrefusals and errors:\n${outcomes.join("\n")}`);
    const hot = results.find((r) => r.name === "hot-seat rush");
    failed =
      results.some((r) => r.errors > 0) ||
      (hot !== undefined && hot.ok !== 1) ||
      [...floors.values()].some((r) => r.errors + r.refused > 0);
  } finally {
    await cleanup.run();
    await stopSharedPostgres();
  }
  if (failed) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
