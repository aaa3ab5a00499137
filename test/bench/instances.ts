/**
 * `npm run bench:instances`: the rush of `npm run bench:rush` (same flows,
 * same invariants) against 1, 2 and 3 Stagedoor processes sharing one
 * PostgreSQL database and one Redis prefix, as operators run several
 * instances behind a load balancer.
 *
 * Each round starts its instances (server/src/main.ts, as `npm start` runs
 * it) on a fresh database and Redis prefix with one TOKEN_SECRET, seeds one
 * concert, and spreads the load generator's keep-alive connections over the
 * instances round-robin (connection i goes to instance i mod N), so a fan's
 * token, holds and payment usually reach different instances. Every instance
 * runs its background jobs. After each round the invariants of the rush are
 * checked (no seat sold twice, no double charge, admissions never above the
 * limit, balances equal to their ledgers, no held or sold seat listed as free)
 * and, in addition, that every instance lists the same free seats.
 *
 * The figures are throughput per phase for each instance count, and each
 * divided by the 1-instance figure of the same repetition: on a shared
 * machine only same-run ratios mean much.
 *
 * Knobs (env): BENCH_INSTANCES ("1,2,3"), BENCH_REPEAT (1: how many times
 * the whole sequence runs, interleaved), RUSH_FLOWS ("rest"; one of rest or
 * connect), RUSH_PAYERS (64; the first value), and RUSH_FANS, RUSH_CONNECTIONS,
 * RUSH_DATES, RUSH_SEATS, RUSH_RETRIES, RUSH_SEED, RUSH_WARMUP, RUSH_REDIS_URL,
 * BENCH_POOL, BENCH_NODE_ARGS as for `npm run bench:rush`. The database is
 * TEST_DATABASE_URL's server, else an embedded PostgreSQL.
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import { admittedKey } from "../../server/src/modules/queue/redis-keys.js";
import { createTestDatabase, stopSharedPostgres } from "../support/postgres.js";
import { connectTestRedis, deleteKeys, uniqueKeyPrefix } from "../support/redis.js";
import { demoGrade, seedCatalog } from "./bench-catalog.js";
import { intKnob, intListKnob, listKnob } from "./knobs.js";
import {
  ConnectionPool,
  CPU_HEADER,
  cpuCells,
  fmt,
  formatTable,
  outcomeLines,
  PHASE_HEADER,
  phaseRow,
} from "./load.js";
import { Cleanup, type NodeServer, serverNodeArgs, startStagedoor } from "./processes.js";
import { type Flow, type FlowResult, listedFreeSeats, runFlow } from "./rush-flows.js";
import { AdmissionSampler, type Check, checkInvariants, reportVerdict } from "./rush-invariants.js";

const INSTANCES = intListKnob("BENCH_INSTANCES", "1,2,3");
const REPEAT = intKnob("BENCH_REPEAT", 1);
const FANS = intKnob("RUSH_FANS", 2000);
const CONNECTIONS = intKnob("RUSH_CONNECTIONS", 64);
const DATES = intKnob("RUSH_DATES", 3);
const SEATS = intKnob("RUSH_SEATS", 50);
const RETRIES = intKnob("RUSH_RETRIES", 5);
const SEED = intKnob("RUSH_SEED", 42, 0);
/** As for `npm run bench:rush`: as many warm-up fans as measured ones by default. */
const WARM_UP = intKnob("RUSH_WARMUP", FANS, 0);
const PAYERS = intListKnob("RUSH_PAYERS", "64")[0] ?? 64;
const POOL = process.env.BENCH_POOL ? intKnob("BENCH_POOL", 10) : undefined;
const FLOW = ((): Flow => {
  const [flow, ...rest] = listKnob("RUSH_FLOWS", "rest");
  if ((flow !== "rest" && flow !== "connect") || rest.length > 0) {
    throw new Error(`RUSH_FLOWS must be rest or connect here, not ${process.env.RUSH_FLOWS}`);
  }
  return flow;
})();
const REDIS_URL =
  process.env.RUSH_REDIS_URL || process.env.TEST_REDIS_URL || "redis://127.0.0.1:6379/5";
/** Exactly the number of fans: every fan is admitted at once, and one more admission would be a bug. */
const MAX_ACTIVE = FANS;

/** One round: N instances, one rush. */
interface Round {
  readonly instances: number;
  readonly repetition: number;
  readonly result: FlowResult;
  readonly checks: readonly Check[];
}

const progress = (line: string) => console.error(line);

/** Starts `count` instances on one database and Redis prefix; the first migrates, the rest follow. */
async function startInstances(
  count: number,
  databaseUrl: string,
  keyPrefix: string,
  cleanup: Cleanup,
): Promise<NodeServer[]> {
  const tokenSecret = randomBytes(32).toString("hex");
  const start = (i: number) =>
    startStagedoor({
      label: `Stagedoor #${i + 1}`,
      databaseUrl,
      redis: { url: REDIS_URL, keyPrefix },
      maxActive: MAX_ACTIVE,
      poolMax: POOL,
      nodeArgs: serverNodeArgs(),
      tokenSecret,
      cleanup,
    });
  const first = await start(0);
  const others = await Promise.all(Array.from({ length: count - 1 }, (_, i) => start(i + 1)));
  return [first, ...others];
}

async function runRound(instances: number, repetition: number, cleanup: Cleanup): Promise<Round> {
  const started = performance.now();
  const database = await createTestDatabase();
  const drop = cleanup.defer("drop the round's database", () => database.drop());
  const keyPrefix = uniqueKeyPrefix();
  const forgetKeys = cleanup.defer("delete the round's Redis keys", () =>
    deleteKeys(REDIS_URL, keyPrefix),
  );
  const redis = await connectTestRedis(REDIS_URL);
  const closeRedis = cleanup.defer("close the sampler's Redis client", () => redis.destroy());
  try {
    const servers = await startInstances(instances, database.url, keyPrefix, cleanup);
    const catalog = await seedCatalog(database.url, {
      dates: DATES,
      seatsPerDate: SEATS,
      gradeOf: demoGrade,
      warmUpSeats: WARM_UP,
    });
    const [first] = servers;
    if (!first) throw new Error("no instance started");
    const pool = new ConnectionPool(
      first.target,
      servers.map((server) => server.pid),
      servers.map((server) => server.target),
    );
    const alone = servers.map((server) => new ConnectionPool(server.target));
    try {
      const sampler = new AdmissionSampler(redis, admittedKey(keyPrefix, catalog.concertId));
      sampler.start();
      let result: FlowResult;
      try {
        result = await runFlow(
          FLOW,
          pool,
          catalog,
          {
            fans: FANS,
            connections: CONNECTIONS,
            retries: RETRIES,
            payers: PAYERS,
            payEarlyPercent: 0,
            seed: SEED,
            listing: false,
          },
          progress,
        );
      } finally {
        await sampler.stop();
      }
      const checks = [
        ...(await checkInvariants({
          databaseUrl: database.url,
          pool,
          catalog,
          fans: result.fans,
          warmUpPaid: result.warmUp?.paid ?? 0,
          maxActive: MAX_ACTIVE,
          sampler,
        })),
        await sameListings(alone, catalog),
      ];
      const round = { instances, repetition, result, checks };
      console.log(formatRound(round, (performance.now() - started) / 1000));
      return round;
    } finally {
      pool.close();
      for (const one of alone) one.close();
      for (const server of servers) await server.stop();
    }
  } finally {
    await closeRedis();
    await forgetKeys();
    await drop();
  }
}

/** Every instance lists exactly the same free seats (REST and Connect) after the rush. */
async function sameListings(
  pools: readonly ConnectionPool[],
  catalog: Parameters<typeof listedFreeSeats>[1],
): Promise<Check> {
  const keys = await Promise.all(
    pools.map(async (pool) => {
      const { rest, connect } = await listedFreeSeats(pool, catalog);
      return [[...rest].sort().join(","), [...connect].sort().join(",")];
    }),
  );
  const distinct = new Set(keys.flat());
  return {
    name: "every instance lists the same free seats",
    ok: distinct.size === 1,
    detail: `${pools.length} instances × 2 APIs, ${distinct.size} distinct listing(s)`,
  };
}

function formatRound(round: Round, seconds: number): string {
  const { result } = round;
  const winners = result.fans.filter((fan) => fan.win !== undefined).length;
  const paid = result.fans.filter((fan) => fan.paid).length;
  const lines = [
    "",
    `── ${round.instances} instance(s), repetition ${round.repetition} (round took ${seconds.toFixed(1)} s) ──`,
    formatTable(
      [...PHASE_HEADER, ...CPU_HEADER],
      result.phases.map((phase) => [...phaseRow(phase), ...cpuCells(phase)]),
    ),
    `holds: ${fmt(winners)} winners of ${fmt(FANS)} fans; pay: ${fmt(paid)} paid, ` +
      `${fmt(result.paidFansPerSecond)} fans/s`,
  ];
  const outcomes = outcomeLines(result.phases);
  if (outcomes.length > 0) lines.push("refusals and errors:", ...outcomes);
  lines.push("invariants:");
  for (const check of round.checks) {
    lines.push(`  ${check.ok ? "ok  " : "FAIL"} ${check.name}: ${check.detail}`);
  }
  return lines.join("\n");
}

/** Throughput per instance count, and each ÷ the 1-instance figure of the same repetition. */
function formatSummary(rounds: readonly Round[]): string {
  const rows = rounds.map((round) => {
    const base = rounds.find(
      (other) => other.repetition === round.repetition && other.instances === 1,
    );
    const figures = [
      round.result.tokens.perSecond,
      round.result.holds.perSecond,
      round.result.pay.perSecond,
      round.result.paidFansPerSecond,
    ];
    const baseFigures = base
      ? [
          base.result.tokens.perSecond,
          base.result.holds.perSecond,
          base.result.pay.perSecond,
          base.result.paidFansPerSecond,
        ]
      : [];
    return [
      String(round.instances),
      String(round.repetition),
      ...figures.map((figure) => fmt(figure)),
      fmt(round.result.holds.p99Ms, 1),
      ...figures.map((figure, i) => {
        const b = baseFigures[i];
        return b ? (figure / b).toFixed(2) : "-";
      }),
    ];
  });
  return formatTable(
    [
      "instances",
      "rep",
      "tokens/s",
      "hold attempts/s",
      "pay tx/s",
      "paid fans/s",
      "hold p99 ms",
      "tokens ÷ 1",
      "holds ÷ 1",
      "pay tx ÷ 1",
      "paid fans ÷ 1",
    ],
    rows,
  );
}

async function main(): Promise<void> {
  const cleanup = new Cleanup();
  cleanup.onSignals();
  const cpus = os.cpus();
  console.log(
    [
      "Stagedoor instances benchmark (npm run bench:instances)",
      `machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? "unknown"}), Node ${process.version}, ` +
        `load average ${os
          .loadavg()
          .map((n) => n.toFixed(2))
          .join(" ")}`,
      `knobs: BENCH_INSTANCES=${INSTANCES.join(",")} BENCH_REPEAT=${REPEAT} RUSH_FLOWS=${FLOW} ` +
        `RUSH_FANS=${FANS} RUSH_CONNECTIONS=${CONNECTIONS} RUSH_DATES=${DATES} RUSH_SEATS=${SEATS} ` +
        `RUSH_RETRIES=${RETRIES} RUSH_PAYERS=${PAYERS} RUSH_SEED=${SEED} RUSH_WARMUP=${WARM_UP} ` +
        `BENCH_POOL=${POOL ?? "(server default)"}`,
      `one PostgreSQL database and one Redis prefix (${REDIS_URL}) per round, shared by its instances; ` +
        `connections spread round-robin; CPU columns are µs per request of all instances together, ` +
        `PostgreSQL, Redis and the load generator`,
    ].join("\n"),
  );
  const rounds: Round[] = [];
  try {
    for (let repetition = 1; repetition <= REPEAT; repetition++) {
      for (const instances of INSTANCES) {
        progress(`round: ${instances} instance(s), repetition ${repetition}…`);
        rounds.push(await runRound(instances, repetition, cleanup));
      }
    }
    console.log(`\n── summary (${FLOW}, ${PAYERS} payers) ──\n${formatSummary(rounds)}`);
  } finally {
    await cleanup.run();
    await stopSharedPostgres();
  }
  reportVerdict(rounds, (round) => `${round.instances} instance(s)`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
