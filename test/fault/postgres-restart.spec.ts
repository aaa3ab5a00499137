import { randomBytes, randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "@stagedoor/sdk";
import { expect } from "chai";
import { clientFor } from "../support/clients.js";
import { type PrivateCluster, startPrivateCluster } from "../support/postgres.js";
import {
  type CallOutcome,
  outcomeOf,
  ServerProcess,
  sleep,
  tally,
  tempDir,
  waitFor,
} from "./fault-kit.js";
import { expectBoxOfficeInvariants } from "./invariants.js";

/**
 * PostgreSQL restart during load, on a cluster of the test's own (the
 * machine's shared PostgreSQL serves other suites meanwhile): calls fail fast
 * with UNAVAILABLE + RetryInfo (not INTERNAL, not hanging past their
 * deadline), nothing is written by halves, the pool recovers by itself, and
 * Health/Check goes NOT_SERVING during the outage and SERVING after.
 */

const FANS = 12;
const DEADLINE_MS = 5_000;
const AMOUNT = 1_000n;
/** The outage lasts at least this long, so the health probe (cached 2 s) must see it. */
const MIN_OUTAGE_MS = 3_000;

interface Recharge {
  readonly requestId: string;
  readonly outcome: CallOutcome;
}

describe("fault: PostgreSQL restart during load", function () {
  this.timeout(120_000);
  let cluster: PrivateCluster | undefined;
  let server: ServerProcess | undefined;
  let dataDir: string | undefined;

  after(async () => {
    await server?.kill();
    await cluster?.remove();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("answers UNAVAILABLE with RetryInfo while it is down, writes nothing by halves, and recovers by itself", async () => {
    cluster = await startPrivateCluster();
    dataDir = await tempDir("pg-restart");
    server = await ServerProcess.start({
      DATABASE_URL: cluster.url,
      // The waiting room in-process: only PostgreSQL goes away here.
      DATA_DIR: dataDir,
      TOKEN_SECRET: randomBytes(32).toString("hex"),
      QUEUE_MAX_ACTIVE: "500",
      DB_POOL_MAX: "4",
    });
    const url = server.url;
    const anonymous = clientFor("connect", url);
    const concertId = (await anonymous.catalog.listConcerts({})).concerts[0]?.id ?? "";
    const fans = await Promise.all(
      Array.from({ length: FANS }, async (_, i) => {
        const userId = `pg-${i}-${randomUUID().slice(0, 8)}`;
        const { token } = await anonymous.queue.issueQueueToken({ concertId, userId });
        return { userId, client: clientFor("connect", url, token), recharges: [] as Recharge[] };
      }),
    );

    // Load: every fan recharges (a write) and reads their wallet, in a loop;
    // the health service is probed every 100 ms.
    const reads: CallOutcome[] = [];
    const health: { at: number; status: string }[] = [];
    let loading = true;
    const load = fans.map(async (fan) => {
      while (loading) {
        const requestId = randomUUID();
        const outcome = await outcomeOf(() =>
          fan.client.wallet.rechargeWallet(
            { amount: AMOUNT, requestId },
            { timeoutMs: DEADLINE_MS },
          ),
        );
        fan.recharges.push({ requestId, outcome });
        reads.push(
          await outcomeOf(() => fan.client.wallet.getWallet({}, { timeoutMs: DEADLINE_MS })),
        );
        // A failing call answers at once; don't spin on it.
        if (outcome.code !== "OK") await sleep(50);
      }
    });
    const probing = (async () => {
      while (loading) {
        const at = Date.now();
        let status = "ERROR";
        try {
          const answer = await anonymous.health.check({}, { timeoutMs: DEADLINE_MS });
          status = ServingStatus[answer.status];
        } catch (error) {
          status = `ERROR ${String(error)}`;
        }
        health.push({ at, status });
        await sleep(100);
      }
    })();

    try {
      await sleep(1_000);
      const downAt = Date.now();
      await cluster.stop();
      await waitFor(
        () => (health.some((h) => h.at > downAt && h.status === "NOT_SERVING") ? true : undefined),
        15_000,
        "health to report NOT_SERVING",
      );
      await sleep(Math.max(0, MIN_OUTAGE_MS - (Date.now() - downAt)));
      const upAt = Date.now();
      await cluster.start();
      const startedAt = Date.now();
      // The pool recovers by itself: the same process answers again.
      const recoveredAt = await waitFor(
        () => {
          const fresh = fans.flatMap((fan) => fan.recharges.slice(-1));
          return fresh.length === FANS &&
            fans.every((fan) => {
              const last = fan.recharges.at(-1);
              return last?.outcome.code === "OK";
            })
            ? Date.now()
            : undefined;
        },
        30_000,
        "every fan's recharges to succeed again",
      );
      await waitFor(
        () => (health.some((h) => h.at > startedAt && h.status === "SERVING") ? true : undefined),
        15_000,
        "health to report SERVING again",
      );
      await sleep(500);
      loading = false;
      await Promise.all([...load, probing]);

      expect(server.running, "the server process lived through it").to.equal(true);
      const all = [...fans.flatMap((fan) => fan.recharges.map((r) => r.outcome)), ...reads];
      const failed = all.filter((o) => o.code !== "OK");
      const summary =
        `outage ${startedAt - downAt} ms (stopped for ${upAt - downAt} ms, start took ${startedAt - upAt} ms), ` +
        `recovered ${recoveredAt - startedAt} ms after the start; ${all.length} calls: ${JSON.stringify(tally(all))}; ` +
        `slowest failure ${Math.max(0, ...failed.map((o) => o.ms))} ms`;
      console.log(`      PostgreSQL restart: ${summary}`);
      const statuses = health.map((h) => h.status);
      console.log(
        `      health: ${statuses.filter((s) => s === "SERVING").length} SERVING, ` +
          `${statuses.filter((s) => s === "NOT_SERVING").length} NOT_SERVING, ` +
          `${statuses.filter((s) => s.startsWith("ERROR")).length} errors`,
      );

      // What the server met, by cause, and that none of it became INTERNAL.
      const causes: Record<string, number> = {};
      for (const line of server.lines) {
        const err = line.err as { code?: string; message?: string } | undefined;
        if (err === undefined) continue;
        const cause = `${line.msg}: ${err.code ?? err.message?.replace(/^.* - /, "").slice(0, 60)}`;
        causes[cause] = (causes[cause] ?? 0) + 1;
      }
      console.log(`      server log: ${JSON.stringify(causes)}`);
      expect(server.logged("unexpected error"), "calls answered INTERNAL").to.deep.equal([]);
      expect(failed.length, "some calls met the outage").to.be.greaterThan(0);
      for (const outcome of failed) {
        const label = `${outcome.code} ${outcome.reason} after ${outcome.ms} ms: ${outcome.message}`;
        expect(outcome.code, label).to.equal("Unavailable");
        expect(outcome.retryInfo, `${label}: RetryInfo`).to.equal(true);
        expect(outcome.reason, `${label}: ErrorInfo`).to.be.a("string");
        expect(outcome.ms, `${label}: ended before its deadline`).to.be.below(DEADLINE_MS);
      }
      expect(
        statuses.filter((s) => s.startsWith("ERROR")),
        "health never failed",
      ).to.deep.equal([]);

      // Nothing by halves: every refused recharge, retried with its request
      // id, is applied exactly once (whether or not it had committed), and
      // each balance is then the sum of the recharges its fan was told of.
      for (const fan of fans) {
        for (const recharge of fan.recharges.filter((r) => r.outcome.code !== "OK")) {
          await fan.client.wallet.rechargeWallet({ amount: AMOUNT, requestId: recharge.requestId });
        }
        const { wallet } = await fan.client.wallet.getWallet({});
        expect(wallet?.balance, fan.userId).to.equal(AMOUNT * BigInt(fan.recharges.length));
        expect(wallet?.version, fan.userId).to.equal(BigInt(fan.recharges.length));
      }
      await expectBoxOfficeInvariants(cluster.url);
    } finally {
      loading = false;
      await Promise.all([...load, probing]);
    }
  });
});
