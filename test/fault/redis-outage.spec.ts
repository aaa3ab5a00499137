import { randomBytes, randomUUID } from "node:crypto";
import { QueueTokenState } from "@stagedoor/sdk";
import { expect } from "chai";
import { clientFor } from "../support/clients.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import {
  type CallOutcome,
  findRedisServer,
  outcomeOf,
  RedisProcess,
  ServerProcess,
  sleep,
  tally,
  waitFor,
} from "./fault-kit.js";
import { AdmissionSampler, expectBoxOfficeInvariants } from "./invariants.js";

/**
 * Redis unreachable for a few seconds (the test's own Redis, stopped and
 * started again on the same port): no call hangs past its deadline (calls
 * with a 3 s deadline end within it, UNAVAILABLE with RetryInfo), the queue
 * admitter logs once per outage instead of every 250 ms, and service resumes
 * by itself.
 */

const DEADLINE_MS = 3_000;
const OUTAGE_MS = 5_000;
const MAX_ACTIVE = 3;
const FANS = 6;
const PREFIX = "stagedoor-fault:";

describe("fault: Redis unreachable for a few seconds", function () {
  this.timeout(120_000);
  let redis: RedisProcess | undefined;
  let database: TestDatabase | undefined;
  let server: ServerProcess | undefined;
  let sampler: AdmissionSampler | undefined;

  before(async function () {
    // Skipped only where no redis-server binary exists: the test starts and stops its own Redis.
    // .ci/run installs redis-server, so in CI it always runs.
    if ((await findRedisServer()) === undefined) {
      console.log("    (fault: Redis outage not run: no redis-server on this machine)");
      this.skip();
    }
  });

  after(async () => {
    sampler?.stop();
    await server?.kill();
    await redis?.remove();
    await database?.drop();
  });

  it("ends every call within its deadline with UNAVAILABLE, logs the admitter's failure once, and resumes by itself", async () => {
    redis = await RedisProcess.start(true);
    database = await createTestDatabase();
    server = await ServerProcess.start({
      DATABASE_URL: database.url,
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: PREFIX,
      TOKEN_SECRET: randomBytes(32).toString("hex"),
      QUEUE_MAX_ACTIVE: String(MAX_ACTIVE),
      QUEUE_IDLE_SECONDS: "300",
      DB_POOL_MAX: "4",
    });
    const url = server.url;
    const anonymous = clientFor("connect", url);
    const concertId = (await anonymous.catalog.listConcerts({})).concerts[0]?.id ?? "";
    const { dates } = await anonymous.catalog.listConcertDates({ concertId });
    const dateId = dates[0]?.id ?? "";
    const { seats } = await anonymous.catalog.listAvailableSeats({
      concertDateId: dateId,
      pageSize: 100,
    });
    sampler = new AdmissionSampler(redis.url, AdmissionSampler.admittedKey(PREFIX, concertId));
    await sampler.start();

    // MAX_ACTIVE fans admitted, the rest waiting behind them.
    const fans: { userId: string; token: string; client: ReturnType<typeof clientFor> }[] = [];
    for (let i = 0; i < FANS; i++) {
      const userId = `outage-${i}-${randomUUID().slice(0, 8)}`;
      const { token, status } = await anonymous.queue.issueQueueToken({ concertId, userId });
      expect(status?.state).to.equal(
        i < MAX_ACTIVE ? QueueTokenState.ADMITTED : QueueTokenState.WAITING,
      );
      const client = clientFor("connect", url, token);
      await client.wallet.rechargeWallet({ amount: 10_000n, requestId: randomUUID() });
      fans.push({ userId, token, client });
    }

    // Load: each fan polls its status, asks for a seat (the gate and the
    // token are read from Redis), lists seats and reads its wallet; a newcomer
    // takes a token now and then. Every call has a 3 s deadline.
    const calls: (CallOutcome & { at: number; rpc: string })[] = [];
    const call = async (rpc: string, run: (signal: { timeoutMs: number }) => Promise<unknown>) => {
      const at = Date.now();
      calls.push({ ...(await outcomeOf(() => run({ timeoutMs: DEADLINE_MS }))), at, rpc });
    };
    let loading = true;
    const load = fans.map(async (fan, i) => {
      while (loading) {
        await call("GetQueueStatus", (o) => fan.client.queue.getQueueStatus({}, o));
        const seat = seats[(i * 7 + calls.length) % seats.length];
        await call("HoldSeat", (o) =>
          fan.client.reservation.holdSeat({ seatId: seat?.id ?? "", requestId: randomUUID() }, o),
        );
        await call("ListAvailableSeats", (o) =>
          anonymous.catalog.listAvailableSeats({ concertDateId: dateId, pageSize: 100 }, o),
        );
        await call("GetWallet", (o) => fan.client.wallet.getWallet({}, o));
        if (i === 0) {
          await call("IssueQueueToken", (o) =>
            anonymous.queue.issueQueueToken({ concertId, userId: `newcomer-${randomUUID()}` }, o),
          );
        }
        await sleep(200);
      }
    });

    try {
      await sleep(1_000);
      const downAt = Date.now();
      await redis.stop("SIGTERM");
      await sleep(OUTAGE_MS);
      const upAt = Date.now();
      await redis.start();
      // Service resumes by itself: every kind of call answers OK again.
      const resumedAt = await waitFor(
        () => {
          // The latest answer of every kind is no longer UNAVAILABLE.
          const latest = new Map<string, CallOutcome>();
          for (const c of calls.filter((c) => c.at > upAt)) latest.set(c.rpc, c);
          return latest.size === 5 && [...latest.values()].every((c) => c.code !== "Unavailable")
            ? Date.now()
            : undefined;
        },
        30_000,
        "calls to succeed again after Redis came back",
      );
      loading = false;
      await Promise.all(load);

      // The line still works: an admitted fan leaves and the head of the
      // line takes the slot.
      await fans[0]?.client.queue.leaveQueue({});
      await waitFor(
        async () => {
          const { status } = await (fans[MAX_ACTIVE]?.client.queue.getQueueStatus({}) ??
            Promise.reject(new Error("no fan")));
          return status?.state === QueueTokenState.ADMITTED ? true : undefined;
        },
        15_000,
        "the head of the line to be admitted",
        100,
      );
      // The admitter's first good run after the outage logged its recovery.
      await waitFor(
        () => (server?.logged("background job recovered").length ? true : undefined),
        5_000,
        "the admitter's recovery line",
      ).catch(() => undefined);

      const during = calls.filter((c) => c.at >= downAt && c.at < upAt);
      const failed = calls.filter((c) => c.code !== "OK");
      const admitter = server.lines.filter((l) => l.job === "queue-admitter");
      const connectionErrors = server.logged("redis connection lost; reconnecting").length;
      const restored = server.logged("redis connection restored").length;
      console.log(
        `      Redis outage: down ${upAt - downAt} ms, service resumed ${resumedAt - upAt} ms after the restart; ` +
          `${calls.length} calls: ${JSON.stringify(tally(calls))}; during the outage, by call: ${JSON.stringify(
            tally(during.map((c) => ({ ...c, code: `${c.rpc} ${c.code}` }))),
          )}; ` +
          `slowest failure ${Math.max(0, ...failed.map((c) => c.ms))} ms; ` +
          `admitter log lines: ${admitter.length} ${JSON.stringify(
            tally(admitter.map((l) => ({ code: String(l.msg) }) as CallOutcome)),
          )}; ` +
          `"redis connection lost" lines: ${connectionErrors}, "restored": ${restored}; ` +
          `"transient failure" lines: ${server.logged("transient failure").length}`,
      );

      // The client's reconnect attempts are logged once per outage, not once each.
      expect(connectionErrors, "connection-lost log lines").to.equal(1);
      expect(restored, "connection-restored log lines").to.equal(1);
      expect(during.length, "calls made during the outage").to.be.greaterThan(0);
      expect(failed.length, "calls that met the outage").to.be.greaterThan(0);
      for (const outcome of failed) {
        const label = `${outcome.rpc} ${outcome.code} ${outcome.reason} after ${outcome.ms} ms: ${outcome.message}`;
        if (outcome.code === "OK") continue;
        // Expected refusals of the load itself (a seat someone else holds,
        // a fan still waiting) are not outage failures.
        if (outcome.code !== "Unavailable") {
          expect(outcome.reason, label).to.be.oneOf([
            "SEAT_UNAVAILABLE",
            "TOKEN_NOT_ADMITTED",
            "HOLD_LIMIT_REACHED",
          ]);
          continue;
        }
        expect(outcome.retryInfo, `${label}: RetryInfo`).to.equal(true);
        expect(outcome.reason, `${label}: ErrorInfo`).to.be.a("string");
      }
      for (const outcome of calls) {
        expect(outcome.ms, `${outcome.rpc} ${outcome.code}: within its deadline`).to.be.below(
          DEADLINE_MS,
        );
      }
      expect(server.logged("unexpected error"), "calls answered INTERNAL").to.deep.equal([]);
      expect(
        admitter.map((l) => l.msg),
        "the admitter's log lines",
      ).to.deep.equal([
        "background job failing; retrying each interval",
        "background job recovered",
      ]);

      sampler.stop();
      console.log(`      admissions: ${sampler.describe(MAX_ACTIVE)}`);
      sampler.expectWithin(MAX_ACTIVE);
      await expectBoxOfficeInvariants(database.url);
    } finally {
      loading = false;
      await Promise.all(load);
    }
  });
});
