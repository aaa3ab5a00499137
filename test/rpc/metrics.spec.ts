import { createHash, randomBytes } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { AdminService, CatalogService, Health } from "@stagedoor/sdk";
import { expect } from "chai";
import {
  admittedToken,
  eventually,
  expectPaid,
  holdSeat,
  issueToken,
  listDates,
  must,
  pay,
  recharge,
  rest,
  uniqueUser,
} from "../rest/rest-client.js";
import { bearer, clientFor, serverOnlyDeadline, transportFor } from "../support/clients.js";
import { parseScrape, type Scrape, sample, scrapeText } from "../support/metrics.js";
import { testRedisUrl } from "../support/redis.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const CALLS = "stagedoor_calls_total";
const DURATIONS = "stagedoor_call_duration_seconds_count";
const OPERATOR_KEY = randomBytes(24).toString("base64url");
const ADMIN_API_KEYS = `ops:${createHash("sha256").update(OPERATOR_KEY).digest("hex")}`;

describe("Prometheus metrics on METRICS_PORT", () => {
  let server: TestServer;
  let metricsPort: number;

  before(async () => {
    server = await startTestServer({ env: { METRICS_PORT: "0", ADMIN_API_KEYS } });
    metricsPort = must(server.metricsPort, "metrics port");
  });
  after(async () => {
    await server?.stop();
  });

  it("is served on its own port only, and nothing but GET /metrics is", async () => {
    expect(metricsPort).to.not.equal(server.port);
    const onPublic = await fetch(`${server.url}/metrics`);
    expect(onPublic.status).to.equal(404);
    expect(await onPublic.text()).to.not.include(CALLS);
    const other = await fetch(`http://127.0.0.1:${metricsPort}/`);
    expect(other.status).to.equal(404);
    const post = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: "POST" });
    expect(post.status).to.equal(404);
  });

  it("counts Connect and gRPC calls by method and final code, with their latencies", async () => {
    const listConcerts = `${CatalogService.typeName}/ListConcerts`;
    const listDatesRpc = `${CatalogService.typeName}/ListConcertDates`;
    const before = parseScrape(await scrapeText(metricsPort));
    await clientFor("connect", server.url).catalog.listConcerts({});
    await clientFor("grpc", server.url).catalog.listConcerts({});
    let failed: Code | undefined;
    try {
      await clientFor("grpc-web", server.url).catalog.listConcertDates({ concertId: "" });
    } catch (error) {
      failed = ConnectError.from(error).code;
    }
    const code = Code[must(failed, "a refused call")]
      .replace(/([a-z])([A-Z])/g, "$1_$2")
      .toLowerCase();
    const after = parseScrape(await scrapeText(metricsPort));
    const ok = { method: listConcerts, code: "ok" };
    expect(sample(after, CALLS, ok) - sample(before, CALLS, ok)).to.equal(2);
    expect(sample(after, DURATIONS, ok) - sample(before, DURATIONS, ok)).to.equal(2);
    const refused = { method: listDatesRpc, code };
    expect(sample(after, CALLS, refused) - sample(before, CALLS, refused)).to.equal(1);
  });

  it("counts a server stream by how it ended: a deadline and a client's cancel are not ok", async () => {
    const watch = `${Health.typeName}/Watch`;
    const count = (scrape: Scrape, code: string) => sample(scrape, CALLS, { method: watch, code });
    const before = parseScrape(await scrapeText(metricsPort));
    // A deadline only the server keeps: the header, and no timer in the client.
    const withDeadline = createClient(
      Health,
      transportFor("connect", server.url, [serverOnlyDeadline("connect", 200)]),
    );
    const deadlineEnd = await (async () => {
      for await (const _ of withDeadline.watch({ service: "" }));
    })().then(
      () => "ok",
      (error: unknown) => Code[ConnectError.from(error).code],
    );
    expect(deadlineEnd).to.equal("DeadlineExceeded");
    // A cancel after the first update, over HTTP/2.
    const controller = new AbortController();
    const stream = createClient(Health, transportFor("grpc", server.url)).watch(
      { service: "" },
      { signal: controller.signal },
    );
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    controller.abort();
    await iterator.next().catch(() => undefined);

    const after = await eventually(async () => {
      const scrape = parseScrape(await scrapeText(metricsPort));
      return count(scrape, "canceled") > count(before, "canceled") ? scrape : undefined;
    }, "the cancelled stream counted");
    expect(count(after, "deadline_exceeded") - count(before, "deadline_exceeded")).to.equal(1);
    expect(count(after, "canceled") - count(before, "canceled")).to.equal(1);
    expect(count(after, "ok") - count(before, "ok")).to.equal(0);
  });

  it("counts REST routes by route and code, holds by outcome, sales and refunds with their amounts", async () => {
    const before = parseScrape(await scrapeText(metricsPort));
    const userId = uniqueUser("metrics");
    const { token } = await issueToken(server.url, userId);
    const date = must((await listDates(server.url))[0]);
    const hold = await holdSeat(server.url, { userId, token, date, seatNumber: 33 });
    // The same seat again is the caller's own hold; someone else is refused it.
    await holdSeat(server.url, { userId, token, date, seatNumber: 33 });
    const rival = uniqueUser("rival");
    const { token: rivalToken } = await issueToken(server.url, rival);
    const refused = await rest(server.url, "POST", "/api/reservations", {
      json: { userId: rival, token: rivalToken, date, seatNumber: 33 },
    });
    expect(refused.status).to.equal(409);
    await recharge(server.url, { userId, token, amount: hold.price });
    expectPaid(
      await pay(server.url, {
        userId,
        token,
        reservationId: hold.reservationId,
        amount: hold.price,
      }),
    );
    const mid = parseScrape(await scrapeText(metricsPort));
    const delta = (now: Scrape, name: string, labels: Record<string, string> = {}) =>
      sample(now, name, labels) - sample(before, name, labels);
    expect(delta(mid, CALLS, { method: "POST /api/token", code: "ok" })).to.equal(2);
    expect(delta(mid, CALLS, { method: "POST /api/reservations", code: "ok" })).to.equal(2);
    expect(delta(mid, CALLS, { method: "POST /api/payments", code: "ok" })).to.equal(1);
    expect(delta(mid, "stagedoor_holds_total", { outcome: "held" })).to.equal(1);
    expect(delta(mid, "stagedoor_holds_total", { outcome: "repeated" })).to.equal(1);
    expect(delta(mid, "stagedoor_holds_total", { outcome: "refused" })).to.equal(1);
    expect(delta(mid, "stagedoor_sales_total")).to.equal(1);
    expect(delta(mid, "stagedoor_sales_amount_total")).to.equal(hold.price);
    expect(delta(mid, "stagedoor_refunds_total")).to.equal(0);
    // The hold, the same hold asked again (the gate lets its owner through to
    // the database, the rival it refuses alone), the recharge and the payment,
    // one after the other: each ran alone, in a transaction of its own.
    expect(delta(mid, "stagedoor_db_writes_total")).to.equal(4);
    expect(delta(mid, "stagedoor_db_write_transactions_total")).to.equal(4);
    expect(delta(mid, "stagedoor_db_writes_refused_total")).to.equal(0);
    expect(delta(mid, "stagedoor_db_write_batches_undone_total")).to.equal(0);
    expect(delta(mid, "stagedoor_db_writes_taken_back_total")).to.equal(0);

    const ops = createClient(
      AdminService,
      transportFor("connect", server.url, [bearer(OPERATOR_KEY)]),
    );
    const refund = { reservationId: hold.reservationId, requestId: uniqueUser("refund"), note: "" };
    await ops.refundTicket(refund);
    await ops.refundTicket(refund); // a replay refunds nothing more
    const after = parseScrape(await scrapeText(metricsPort));
    expect(delta(after, "stagedoor_refunds_total")).to.equal(1);
    expect(delta(after, "stagedoor_refunds_amount_total")).to.equal(hold.price);
    expect(delta(after, "stagedoor_sales_total")).to.equal(1);
  });

  it("collapses paths the server does not serve into one label, so no client text becomes one", async () => {
    const secret = `secret-${uniqueUser("x")}`;
    const before = parseScrape(await scrapeText(metricsPort));
    const rpc = await fetch(`${server.url}/stagedoor.v1.Nope/${secret}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(rpc.status).to.equal(404);
    const api = await rest(server.url, "GET", `/api/users/${secret}`);
    expect(api.status).to.equal(404);
    const text = await scrapeText(metricsPort);
    expect(text).to.not.include(secret);
    const after = parseScrape(text);
    const unknown = { method: "unknown", code: "unimplemented" };
    expect(sample(after, CALLS, unknown) - sample(before, CALLS, unknown)).to.equal(2);
  });

  it("reports database and queue-store health, the pool, and process and event-loop metrics", async () => {
    const scrape = parseScrape(await scrapeText(metricsPort));
    expect(sample(scrape, "stagedoor_database_up")).to.equal(1);
    expect(sample(scrape, "stagedoor_redis_up")).to.equal(1);
    expect(scrape.has('stagedoor_db_pool_connections{state="used"}')).to.equal(true);
    expect(scrape.has('stagedoor_db_pool_connections{state="pending"}')).to.equal(true);
    expect(sample(scrape, "stagedoor_db_write_batching", { state: "open" })).to.equal(0);
    expect(sample(scrape, "stagedoor_db_write_batching", { state: "waiting" })).to.equal(0);
    expect(scrape.has("nodejs_eventloop_lag_seconds")).to.equal(true);
    expect(scrape.has("process_resident_memory_bytes")).to.equal(true);
  });
});

describe("metrics with the waiting room on Redis", () => {
  it("reports Redis up from a real ping", async function () {
    // Skipped only without TEST_REDIS_URL (no shared Redis to ping); .ci/run sets it, so in CI it runs.
    if (!testRedisUrl) this.skip();
    const server = await startTestServer({ queue: "redis", env: { METRICS_PORT: "0" } });
    try {
      const scrape = parseScrape(await scrapeText(must(server.metricsPort)));
      expect(sample(scrape, "stagedoor_redis_up")).to.equal(1);
      expect(sample(scrape, "stagedoor_database_up")).to.equal(1);
    } finally {
      await server.stop();
    }
  });
});

for (const queue of ["memory", "redis"] as const) {
  describe(`waiting-room metrics and GetSaleStats queue figures (${queue} store)`, () => {
    let server: TestServer;
    let metricsPort: number;

    before(async function () {
      // Redis: skipped only without TEST_REDIS_URL; .ci/run sets it, so in CI it runs.
      if (queue === "redis" && !testRedisUrl) this.skip();
      server = await startTestServer({
        queue,
        env: { METRICS_PORT: "0", ADMIN_API_KEYS, QUEUE_MAX_ACTIVE: "2" },
      });
      metricsPort = must(server.metricsPort, "metrics port");
    });
    after(async () => {
      await server?.stop();
    });

    it("scrapes waiting, admitted, admissions and waits after a real flow, none out of order; GetSaleStats reports them", async () => {
      const connect = clientFor("connect", server.url);
      const concertId = must((await connect.catalog.listConcerts({})).concerts[0]).id;
      const concert = { concert: concertId };
      const scrape = async () => parseScrape(await scrapeText(metricsPort));
      /** Waits until the admitter has drained `n` admissions of the concert. */
      const drained = (n: number) =>
        eventually(async () => {
          const now = await scrape();
          return sample(now, "stagedoor_queue_admissions_total", concert) >= n ? now : undefined;
        }, `${n} admissions in the metrics`);

      // Two admitted at once (QUEUE_MAX_ACTIVE=2), then three waiting.
      const first = await admittedToken(server.url, uniqueUser("first"));
      await admittedToken(server.url, uniqueUser("second"));
      await drained(2);
      for (const label of ["w1", "w2", "w3"]) {
        expect((await issueToken(server.url, uniqueUser(label))).queuePosition).to.be.above(0);
      }
      // The gauges are read from the store at scrape time, cached for a second at most.
      const waiting = (n: number) =>
        eventually(async () => {
          const next = await scrape();
          return sample(next, "stagedoor_queue_waiting", concert) === n ? next : undefined;
        }, `${n} waiting in the gauge`);
      let now = await waiting(3);
      expect(sample(now, "stagedoor_queue_admitted", concert)).to.equal(2);

      // The first leaves: the first waiter is admitted in its place.
      await clientFor("connect", server.url, first).queue.leaveQueue({});
      now = await drained(3);
      expect(sample(now, "stagedoor_queue_admissions_total", concert)).to.equal(3);
      expect(sample(now, "stagedoor_queue_admitted_out_of_order_total", concert)).to.equal(0);
      expect(
        now.has(`stagedoor_queue_admitted_out_of_order_total{concert="${concertId}"}`),
      ).to.equal(true);
      expect(sample(now, "stagedoor_queue_wait_seconds_count")).to.equal(3);
      // The two admitted at once waited under a second; the third waited longer than nothing.
      expect(sample(now, "stagedoor_queue_wait_seconds_bucket", { le: "1" })).to.be.at.least(2);
      expect(sample(now, "stagedoor_queue_wait_seconds_sum")).to.be.above(0);
      const gauges = await waiting(2);
      expect(sample(gauges, "stagedoor_queue_admitted", concert)).to.equal(2);
      expect(gauges.has("nodejs_eventloop_lag_p99_seconds")).to.equal(true);

      const ops = createClient(
        AdminService,
        transportFor("connect", server.url, [bearer(OPERATOR_KEY)]),
      );
      const stats = await eventually(async () => {
        const read = must((await ops.getSaleStats({ concertId })).stats);
        return read.admissionsPerMinute > 0 ? read : undefined;
      }, "an admission rate");
      expect(stats).to.deep.include({ waitingCount: 2, admittedCount: 2 });
      // One admission since the admitter first saw the line, within the last minute.
      expect(stats.admissionsPerMinute).to.be.at.most(60);
    });
  });
}

describe("metrics off by default", () => {
  it("starts no metrics listener without METRICS_PORT", async () => {
    const server = await startTestServer();
    try {
      expect(server.metricsPort).to.equal(undefined);
      expect((await fetch(`${server.url}/metrics`)).status).to.equal(404);
    } finally {
      await server.stop();
    }
  });
});
