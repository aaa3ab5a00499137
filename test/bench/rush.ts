/**
 * `npm run bench:rush`: the seed's ticket rush, measured the way the NestJS +
 * TypeORM + MySQL implementation of the same spec was (issue 6), next to the
 * floors of this box measured in the same run with the same load generator.
 *
 * Each round starts Stagedoor in its own process (server/src/main.ts) on a
 * fresh database and Redis prefix, seeds one concert of RUSH_DATES dates ×
 * RUSH_SEATS seats, and lets RUSH_FANS fans through closed-loop phases over
 * RUSH_CONNECTIONS keep-alive connections, after an unmeasured warm-up:
 *
 * 0. warm-up (RUSH_WARMUP fans, by default as many as RUSH_FANS; 0 for none):
 *    on a date of its own, each warm-up fan takes a token, holds a seat, is
 *    refused another, tops up and pays, so the server's hot paths are
 *    compiled and its statements prepared before the clock starts, as the
 *    floors' are (each floor runs 10% of its requests unmeasured, then a run
 *    several times longer than the rush's phase, so it is warm for almost all
 *    of it: the token floor 40,000 requests against 2,000 tokens). After 500
 *    warm-up fans the server was still compiling during the phases: over four
 *    runs a token cost it 337 µs and a recharge or payment 1,600 µs on
 *    average, against 274 and 1,163 µs over eight runs after 2,000 or more;
 * 1. tokens: every fan takes a token and must be admitted at once;
 * 2. listing (RUSH_LISTING=1 only): every fan lists the dates and one date's seats;
 * 3. holds: every fan tries random seats (seeded PRNG), moving on when a seat
 *    is taken, until one hold succeeds or RUSH_RETRIES attempts were refused;
 * 4. pay: the winners top up by the price and pay, RUSH_PAYERS at a time;
 *    with RUSH_PAY_EARLY (a percent, 0), that many of them first try to pay
 *    with an empty wallet and are refused (INSUFFICIENT_BALANCE), then top up
 *    and pay with the same request.
 *
 * Flows: `rest` (the seed's /api routes) and `connect` (Connect JSON over
 * HTTP/1.1). RUSH_PAYERS="8,64" runs one round per value, each on a fresh
 * database and server. After every round the invariants are checked (no seat
 * sold twice, no double charge, admissions within the limit, balances equal
 * to ledgers, no held or sold seat listed as free); the process exits 1 if
 * one fails or if any reply was an unexpected error.
 *
 * Knobs (env): RUSH_FANS (2000), RUSH_CONNECTIONS (64), RUSH_DATES (3),
 * RUSH_SEATS (50), RUSH_RETRIES (5), RUSH_PAYERS ("8,64"), RUSH_PAY_EARLY (0), RUSH_FLOWS
 * ("rest,connect"; "none" measures the floors only), RUSH_SEED (42),
 * RUSH_LISTING (0), RUSH_WARMUP (RUSH_FANS), RUSH_FLOOR_REQUESTS (per floor; by default about 3 s
 * each), RUSH_REDIS_URL (else TEST_REDIS_URL, else redis://127.0.0.1:6379/5),
 * BENCH_WORKERS, BENCH_POOL (the server's DB_POOL_MAX; its default when unset), BENCH_NODE_ARGS,
 * BENCH_SERVER_CHECKOUT (another checkout whose server to measure; see processes.ts). The database
 * is TEST_DATABASE_URL's server, else an embedded PostgreSQL.
 */
import os from "node:os";
import { admittedKey } from "../../server/src/modules/queue/redis-keys.js";
import { createTestDatabase, stopSharedPostgres } from "../support/postgres.js";
import { connectTestRedis, deleteKeys, uniqueKeyPrefix } from "../support/redis.js";
import { demoGrade, seedCatalog } from "./bench-catalog.js";
import { DEFAULT_FLOOR_REQUESTS, FLOOR_LABELS, type FloorKind, measureFloors } from "./floors.js";
import { intKnob, intListKnob, listKnob } from "./knobs.js";
import {
  ConnectionPool,
  CPU_HEADER,
  cpuCells,
  fmt,
  formatTable,
  outcomeLines,
  PHASE_HEADER,
  type PhaseResult,
  phaseRow,
} from "./load.js";
import { Cleanup, serverCheckout, serverNodeArgs, startStagedoor } from "./processes.js";
import { type Flow, type FlowResult, runFlow } from "./rush-flows.js";
import { AdmissionSampler, type Check, checkInvariants, reportVerdict } from "./rush-invariants.js";
import { formatStatements, type PhaseStatements, StatementWatch } from "./statements.js";

const FANS = intKnob("RUSH_FANS", 2000);
const CONNECTIONS = intKnob("RUSH_CONNECTIONS", 64);
const DATES = intKnob("RUSH_DATES", 3);
const SEATS = intKnob("RUSH_SEATS", 50);
const RETRIES = intKnob("RUSH_RETRIES", 5);
const SEED = intKnob("RUSH_SEED", 42, 0);
const LISTING = intKnob("RUSH_LISTING", 0, 0) > 0;
/** Fans of the unmeasured warm-up before each round (0: none); as many as are measured by default. */
const WARM_UP = intKnob("RUSH_WARMUP", FANS, 0);
const POOL = process.env.BENCH_POOL ? intKnob("BENCH_POOL", 10) : undefined;
const FLOOR_REQUESTS = process.env.RUSH_FLOOR_REQUESTS
  ? intKnob("RUSH_FLOOR_REQUESTS", 0)
  : undefined;
const PAYERS = intListKnob("RUSH_PAYERS", "8,64");
/** Percent of the winners who try to pay before topping up, and are refused once (0 to 100). */
const PAY_EARLY = intKnob("RUSH_PAY_EARLY", 0, 0);
if (PAY_EARLY > 100) throw new Error(`RUSH_PAY_EARLY is a percent (0 to 100), not ${PAY_EARLY}`);
/** RUSH_FLOWS=none measures the floors only. */
const FLOWS = listKnob("RUSH_FLOWS", "rest,connect")
  .filter((value) => value !== "none")
  .map((value) => {
    if (value !== "rest" && value !== "connect") {
      throw new Error(`RUSH_FLOWS lists rest and/or connect, not ${JSON.stringify(value)}`);
    }
    return value as Flow;
  });
const REDIS_URL =
  process.env.RUSH_REDIS_URL || process.env.TEST_REDIS_URL || "redis://127.0.0.1:6379/5";
/** Exactly the number of fans: every fan is admitted at once, and one more admission would be a bug. */
const MAX_ACTIVE = FANS;

/** One round: a flow with one payer count, on its own server and database. */
interface Round {
  readonly flow: Flow;
  readonly payers: number;
  readonly result: FlowResult;
  readonly checks: readonly Check[];
  /** Each phase's statements, or why they could not be read. */
  readonly statements: PhaseStatements | string;
}

const progress = (line: string) => console.error(line);

async function runRound(flow: Flow, payers: number, cleanup: Cleanup): Promise<Round> {
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
    const server = await startStagedoor({
      databaseUrl: database.url,
      redis: { url: REDIS_URL, keyPrefix },
      maxActive: MAX_ACTIVE,
      poolMax: POOL,
      nodeArgs: serverNodeArgs(),
      cleanup,
    });
    const catalog = await seedCatalog(database.url, {
      dates: DATES,
      seatsPerDate: SEATS,
      gradeOf: demoGrade,
      warmUpSeats: WARM_UP,
    });
    const pool = new ConnectionPool(server.target, server.pid);
    const watch = await StatementWatch.open(database.url);
    try {
      const sampler = new AdmissionSampler(redis, admittedKey(keyPrefix, catalog.concertId));
      sampler.start();
      let result: FlowResult;
      try {
        result = await runFlow(
          flow,
          pool,
          catalog,
          {
            fans: FANS,
            connections: CONNECTIONS,
            retries: RETRIES,
            payers,
            payEarlyPercent: PAY_EARLY,
            seed: SEED,
            listing: LISTING,
          },
          progress,
          typeof watch === "string" ? undefined : watch,
        );
      } finally {
        await sampler.stop();
      }
      const checks = await checkInvariants({
        databaseUrl: database.url,
        pool,
        catalog,
        fans: result.fans,
        warmUpPaid: result.warmUp?.paid ?? 0,
        maxActive: MAX_ACTIVE,
        sampler,
      });
      const statements = typeof watch === "string" ? watch : watch.phases;
      const round = { flow, payers, result, checks, statements };
      console.log(formatRound(round, (performance.now() - started) / 1000));
      return round;
    } finally {
      if (typeof watch !== "string") await watch.close();
      pool.close();
      await server.stop();
    }
  } finally {
    await closeRedis();
    await forgetKeys();
    await drop();
  }
}

function roundTitle(round: { flow: Flow; payers: number }): string {
  return `${round.flow === "rest" ? "REST" : "Connect"}, ${round.payers} payers`;
}

function formatRound(round: Round, seconds: number): string {
  const { result } = round;
  const winners = result.fans.filter((fan) => fan.win !== undefined).length;
  const paid = result.fans.filter((fan) => fan.paid).length;
  const lines = [
    "",
    `── ${roundTitle(round)} (round took ${seconds.toFixed(1)} s) ──`,
    formatTable(
      [...PHASE_HEADER, ...CPU_HEADER],
      result.phases.map((phase) => [...phaseRow(phase), ...cpuCells(phase)]),
    ),
    `tokens: ${fmt(result.tokens.ok)} of ${fmt(FANS)} fans admitted at once, ` +
      `${fmt(result.tokens.unitsPerSecond)} fans/s`,
    `holds: ${fmt(winners)} winners of ${fmt(FANS)} fans for ${fmt(DATES * SEATS)} seats, ` +
      `${(result.holds.requests / FANS).toFixed(2)} attempts per fan, ` +
      `${fmt(result.holds.unitsPerSecond)} fans/s`,
    `pay: ${fmt(paid)} of ${fmt(winners)} winners paid, ${fmt(result.paidFansPerSecond)} fans/s, ` +
      `${fmt(result.pay.perSecond)} transactions/s (recharge + pay)`,
  ];
  const outcomes = outcomeLines(result.phases);
  if (outcomes.length > 0) lines.push("refusals and errors:", ...outcomes);
  lines.push(
    typeof round.statements === "string"
      ? `statements: not measured (${round.statements})`
      : `statements (pg_stat_statements, this round's database; exec µs is wall time in the executor):\n${formatStatements(round.statements)}`,
  );
  lines.push("invariants:");
  for (const check of round.checks) {
    lines.push(`  ${check.ok ? "ok  " : "FAIL"} ${check.name}: ${check.detail}`);
  }
  return lines.join("\n");
}

function formatFloors(floors: ReadonlyMap<FloorKind, PhaseResult>): string {
  return formatTable(
    ["floor", "requests", "errors", "seconds", "req/s", "p50 ms", "p99 ms", ...CPU_HEADER],
    [...floors].map(([kind, r]) => [
      FLOOR_LABELS[kind],
      fmt(r.requests),
      fmt(r.errors + r.refused),
      fmt(r.seconds, 2),
      fmt(r.perSecond),
      fmt(r.p50Ms, 2),
      fmt(r.p99Ms, 2),
      ...cpuCells(r),
    ]),
  );
}

/** Each Stagedoor figure divided by the floor it should be compared with. */
function formatRatios(
  rounds: readonly Round[],
  floors: ReadonlyMap<FloorKind, PhaseResult>,
): string {
  const rows: string[][] = [];
  const ratio = (name: string, round: Round, figure: number, floor: FloorKind) => {
    const base = floors.get(floor)?.perSecond;
    rows.push([
      name,
      roundTitle(round),
      fmt(figure),
      base ? fmt(base) : "-",
      base ? (figure / base).toFixed(3) : "-",
    ]);
  };
  for (const round of rounds) {
    const { tokens, holds, pay } = round.result;
    ratio("token storm ÷ store floor", round, tokens.perSecond, "store");
    if (round.flow === "connect")
      ratio("token storm ÷ bare Connect", round, tokens.perSecond, "connect");
    ratio("hold attempts ÷ store floor", round, holds.perSecond, "store");
    if (round.flow === "connect")
      ratio("hold attempts ÷ bare Connect", round, holds.perSecond, "connect");
    ratio("pay transactions ÷ payment floor", round, pay.perSecond, "pay");
  }
  for (const flow of FLOWS) {
    const mine = rounds.filter((round) => round.flow === flow);
    const first = mine[0];
    const last = mine[mine.length - 1];
    if (first && last && first !== last) {
      const before = first.result.paidFansPerSecond;
      const after = last.result.paidFansPerSecond;
      rows.push([
        `pay fans/s, ${last.payers} ÷ ${first.payers} payers`,
        flow === "rest" ? "REST" : "Connect",
        fmt(after),
        fmt(before),
        before > 0 ? (after / before).toFixed(3) : "-",
      ]);
    }
  }
  return formatTable(["ratio", "round", "figure /s", "floor /s", "ratio"], rows);
}

/** The targets (stated for REST), marked met or missed; Connect rounds for reference. */
function formatTargets(rounds: readonly Round[]): string {
  const rows: string[][] = [];
  const mark = (met: boolean) => (met ? "met" : "missed");
  for (const round of rounds) {
    const { tokens, holds } = round.result;
    const title = roundTitle(round) + (round.flow === "rest" ? "" : " (reference)");
    rows.push([
      "tokens ≥ 5,000/s",
      title,
      `${fmt(tokens.perSecond)}/s`,
      mark(tokens.perSecond >= 5000),
    ]);
    rows.push([
      "hold attempts ≥ 5,000/s",
      title,
      `${fmt(holds.perSecond)}/s`,
      mark(holds.perSecond >= 5000),
    ]);
    rows.push(["hold p99 < 100 ms", title, `${fmt(holds.p99Ms, 1)} ms`, mark(holds.p99Ms < 100)]);
    rows.push([
      "pay ≥ 450 fans/s",
      title,
      `${fmt(round.result.paidFansPerSecond)}/s`,
      mark(round.result.paidFansPerSecond >= 450),
    ]);
  }
  for (const flow of FLOWS) {
    const eight = rounds.find((round) => round.flow === flow && round.payers === 8);
    const many = rounds.find((round) => round.flow === flow && round.payers === 64);
    if (eight && many) {
      const a = many.result.paidFansPerSecond;
      const b = eight.result.paidFansPerSecond;
      rows.push([
        "pay with 64 payers ≥ with 8",
        flow === "rest" ? "REST" : "Connect (reference)",
        `${fmt(a)} vs ${fmt(b)} fans/s`,
        // Nobody paid: nothing to compare.
        a > 0 || b > 0 ? mark(a >= b) : "-",
      ]);
    }
  }
  return formatTable(["target (issue 6)", "round", "figure", ""], rows);
}

async function main(): Promise<void> {
  serverCheckout(); // a wrong BENCH_SERVER_CHECKOUT fails now, not after the floors
  const cleanup = new Cleanup();
  cleanup.onSignals();
  const cpus = os.cpus();
  const floorRequests =
    FLOOR_REQUESTS ?? `per floor: ${Object.values(DEFAULT_FLOOR_REQUESTS).join("/")}`;
  console.log(
    [
      "Stagedoor rush benchmark (npm run bench:rush)",
      `machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? "unknown"}), Node ${process.version}, ` +
        `load average ${os
          .loadavg()
          .map((n) => n.toFixed(2))
          .join(" ")}`,
      `knobs: RUSH_FANS=${FANS} RUSH_CONNECTIONS=${CONNECTIONS} RUSH_DATES=${DATES} RUSH_SEATS=${SEATS} ` +
        `RUSH_RETRIES=${RETRIES} RUSH_PAYERS=${PAYERS.join(",")} RUSH_FLOWS=${FLOWS.join(",")} ` +
        `RUSH_PAY_EARLY=${PAY_EARLY} RUSH_SEED=${SEED} RUSH_LISTING=${LISTING ? 1 : 0} RUSH_WARMUP=${WARM_UP} RUSH_FLOOR_REQUESTS=${floorRequests} ` +
        `BENCH_WORKERS=${process.env.BENCH_WORKERS || "(unset)"} BENCH_POOL=${POOL ?? "(server default)"} ` +
        `BENCH_SERVER_CHECKOUT=${process.env.BENCH_SERVER_CHECKOUT || "(unset: this checkout)"}`,
      `queue store: Redis at ${REDIS_URL}, QUEUE_MAX_ACTIVE=${MAX_ACTIVE} (= fans); ` +
        `database: ${process.env.TEST_DATABASE_URL ? "TEST_DATABASE_URL's server" : "embedded PostgreSQL"}`,
      `a fan gives up after ${RETRIES} refused hold attempts; CPU columns are µs per request of the server (with its workers), PostgreSQL, Redis and the load generator, and "busy" the share of all the machine's cores kept busy (near 100%: bound by the CPU)`,
    ].join("\n"),
  );
  const rounds: Round[] = [];
  try {
    progress("measuring the floors…");
    const floors = await measureFloors(["store", "connect", "hold", "pay"], {
      connections: CONNECTIONS,
      requests: FLOOR_REQUESTS,
      redisUrl: REDIS_URL,
      cleanup,
      log: progress,
    });
    console.log(
      `\n── floors (${CONNECTIONS} connections, same load generator) ──\n${formatFloors(floors)}`,
    );
    for (const flow of FLOWS) {
      for (const payers of PAYERS) {
        progress(`round: ${flow}, ${payers} payers…`);
        rounds.push(await runRound(flow, payers, cleanup));
      }
    }
    if (rounds.length > 0) {
      console.log(`\n── ratios (figure ÷ floor, same run) ──\n${formatRatios(rounds, floors)}`);
      console.log(`\n── targets ──\n${formatTargets(rounds)}`);
    }
  } finally {
    await cleanup.run();
    await stopSharedPostgres();
  }
  reportVerdict(rounds, roundTitle);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
