/**
 * `npm run bench`: how fast one server process issues queue tokens, holds
 * seats and takes payments, end to end through Connect, MikroORM, PostgreSQL
 * and the queue store.
 *
 * The server runs in its own process (exactly `server/src/main.ts`), and this
 * process is the load generator, speaking Connect JSON over HTTP/1.1
 * keep-alive like the baseline's wrk scripts. It uses TEST_DATABASE_URL (or
 * an embedded PostgreSQL) for a throwaway database, and TEST_REDIS_URL for the
 * waiting room when set (otherwise the in-process store).
 *
 * Knobs: BENCH_USERS (default 10000), BENCH_CONCURRENCY (64), BENCH_RUSH (2000),
 * BENCH_POOL (server pool size, 16), BENCH_NODE_ARGS (extra node flags for the
 * server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { createTestDatabase, stopSharedPostgres } from "../support/postgres.js";
import { deleteKeys, testRedisUrl, uniqueKeyPrefix } from "../support/redis.js";
import { ConnectJsonClient, type PhaseResult, runPhase } from "./load.js";

const USERS = Number(process.env.BENCH_USERS ?? 10_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const RUSH = Number(process.env.BENCH_RUSH ?? 2_000);
const PRICE = 80_000;

const QUEUE = "/stagedoor.queue.v1.QueueService";
const RESERVATION = "/stagedoor.reservation.v1.ReservationService";
const WALLET = "/stagedoor.wallet.v1.WalletService";
const PAYMENT = "/stagedoor.payment.v1.PaymentService";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

async function seedBenchCatalog(
  url: string,
  seats: number,
): Promise<{ concertId: string; seatIds: string[] }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const concertId = randomUUID();
    const dateId = randomUUID();
    await client.query(
      "insert into concert (id, title, venue, created_at) values ($1, 'Bench', 'Bench Hall', now())",
      [concertId],
    );
    await client.query(
      `insert into concert_date (id, concert_id, date, starts_at, total_seats)
       values ($1, $2, (now() + interval '30 days')::date, now() + interval '30 days', $3)`,
      [dateId, concertId, seats],
    );
    const { rows } = await client.query<{ id: string }>(
      `insert into seat (id, concert_date_id, number, grade, price, status, version)
       select gen_random_uuid(), $1, n, 'S', $2, 'AVAILABLE', 1 from generate_series(1, $3) n
       returning id`,
      [dateId, PRICE, seats],
    );
    await client.query("analyze");
    return { concertId, seatIds: rows.map((row) => row.id) };
  } finally {
    await client.end();
  }
}

async function waitForServer(client: ConnectJsonClient, server: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error("the server exited during start-up");
    try {
      const reply = await client.call({ path: "/grpc.health.v1.Health/Check", body: {} });
      if (reply.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error("the server did not start within 60 s");
}

function format(results: readonly PhaseResult[]): string {
  const header = ["operation", "requests", "ok", "failed", "seconds", "ops/s", "p50 ms", "p99 ms"];
  const rows = results.map((r) => [
    r.name,
    String(r.requests),
    String(r.ok),
    String(r.failed),
    r.seconds.toFixed(2),
    r.perSecond.toFixed(0),
    r.p50Ms.toFixed(2),
    r.p99Ms.toFixed(2),
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)),
  );
  const line = (cells: string[]) =>
    cells.map((cell, i) => cell.padStart(widths[i] ?? 0)).join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}

async function main(): Promise<void> {
  const database = await createTestDatabase();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-bench-"));
  const keyPrefix = uniqueKeyPrefix();
  const port = await freePort();
  const seats = USERS + 10;
  let server: ChildProcess | undefined;
  const client = new ConnectJsonClient("127.0.0.1", port, CONCURRENCY);
  try {
    // Migrations run at server start-up; seed once they are in.
    server = spawn(
      process.execPath,
      [
        ...(process.env.BENCH_NODE_ARGS?.split(" ").filter(Boolean) ?? []),
        "--conditions=stagedoor-source",
        "--import",
        "tsx",
        "server/src/main.ts",
      ],
      {
        stdio: ["ignore", "inherit", "inherit"],
        env: {
          ...process.env,
          DATABASE_URL: database.url,
          ...(testRedisUrl ? { REDIS_URL: testRedisUrl, REDIS_KEY_PREFIX: keyPrefix } : {}),
          AUTH_MODE: "trust",
          PORT: String(port),
          DATA_DIR: dataDir,
          SEED_DEMO: "false",
          LOG_LEVEL: "warn",
          QUEUE_MAX_ACTIVE: "1000000",
          TOKEN_TTL_SECONDS: "3600",
          HOLD_TTL_SECONDS: "3600",
          DB_POOL_MAX: process.env.BENCH_POOL ?? "16",
          TOKEN_SECRET: randomBytes(32).toString("hex"),
        },
      },
    );
    await waitForServer(client, server);
    const { concertId, seatIds } = await seedBenchCatalog(database.url, seats);
    const results: PhaseResult[] = [];
    const tokens: string[] = new Array(USERS).fill("");
    const reservations: string[] = new Array(USERS).fill("");

    results.push(
      await runPhase(
        "issue token",
        client,
        USERS,
        CONCURRENCY,
        (i) => ({ path: `${QUEUE}/IssueQueueToken`, body: { concertId, userId: `bench-${i}` } }),
        (i, reply) => {
          tokens[i] = String(reply.body.token ?? "");
        },
      ),
    );
    results.push(
      await runPhase("queue status", client, USERS, CONCURRENCY, (i) => ({
        path: `${QUEUE}/GetQueueStatus`,
        body: {},
        token: tokens[i] ?? "",
      })),
    );
    results.push(
      await runPhase(
        "hold seat",
        client,
        USERS,
        CONCURRENCY,
        (i) => ({
          path: `${RESERVATION}/HoldSeat`,
          body: { seatId: seatIds[i], requestId: `hold-${i}` },
          token: tokens[i] ?? "",
        }),
        (i, reply) => {
          const reservation = reply.body.reservation as { id?: string } | undefined;
          reservations[i] = reservation?.id ?? "";
        },
      ),
    );
    results.push(
      await runPhase("recharge", client, USERS, CONCURRENCY, (i) => ({
        path: `${WALLET}/RechargeWallet`,
        body: { amount: String(PRICE), requestId: `recharge-${i}` },
        token: tokens[i] ?? "",
      })),
    );
    results.push(
      await runPhase("pay", client, USERS, CONCURRENCY, (i) => ({
        path: `${PAYMENT}/CreatePayment`,
        body: { reservationId: reservations[i], amount: String(PRICE), requestId: `pay-${i}` },
        token: tokens[i] ?? "",
      })),
    );

    // The rush: fresh admitted users all try the one seat still free.
    const rushTokens: string[] = [];
    await runPhase(
      "(rush users)",
      client,
      RUSH,
      CONCURRENCY,
      (i) => ({ path: `${QUEUE}/IssueQueueToken`, body: { concertId, userId: `rush-${i}` } }),
      (_i, reply) => rushTokens.push(String(reply.body.token ?? "")),
    );
    const hotSeat = seatIds[seats - 1];
    const rush = await runPhase(
      "hot-seat rush",
      client,
      RUSH,
      CONCURRENCY,
      (i) => ({
        path: `${RESERVATION}/HoldSeat`,
        body: { seatId: hotSeat, requestId: `rush-${i}` },
        token: rushTokens[i] ?? "",
      }),
      undefined,
      // Every attempt settles: one winner, the rest a clean "seat unavailable".
      (reply) =>
        reply.status === 200 || (reply.status === 400 && reply.body.code === "failed_precondition"),
    );
    results.push(rush);

    console.log(
      `\nStagedoor bench: ${USERS} users, ${CONCURRENCY} in flight, Connect JSON over HTTP/1.1, ` +
        `queue store: ${testRedisUrl ? "Redis" : "in-process"}, Node ${process.version}, ` +
        `${os.cpus().length} CPUs\n`,
    );
    console.log(format(results));
    const failures = results.filter((r) => r.failed > 0);
    for (const r of failures) console.log(`${r.name} failures: ${JSON.stringify(r.failures)}`);
    if (failures.length > 0) process.exitCode = 1;
  } finally {
    client.close();
    if (server && server.exitCode === null) {
      const exited = new Promise((resolve) => server?.once("exit", resolve));
      server.kill("SIGTERM");
      await exited;
    }
    await database.drop();
    await stopSharedPostgres();
    await rm(dataDir, { recursive: true, force: true });
    if (testRedisUrl) await deleteKeys(testRedisUrl, keyPrefix);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
