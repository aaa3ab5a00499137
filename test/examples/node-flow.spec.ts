import { QueueTokenState, ReservationState } from "@stagedoor/sdk";
import { expect } from "chai";
import pg from "pg";
import { clientFor } from "../support/clients.js";
import { freePort } from "../support/ports.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { type ExampleRun, runExample } from "./run-example.js";

/** The example's last line: `reservation <id> CONFIRMED, seat <n> on <date>, paid ₩<price>`. */
const CONFIRMED_LINE =
  /^reservation (\S+) CONFIRMED, seat (\d+) on (\d{4}-\d\d-\d\d), paid ₩([\d,]+)$/;

/** What the example printed about the purchase, read from its output. */
function purchaseOf(run: ExampleRun) {
  const confirmed = run.lines.at(-1)?.match(CONFIRMED_LINE);
  const user = run.lines[0]?.match(/, as (\S+)$/);
  if (!confirmed || !user)
    throw new Error(`no confirmed purchase in the output\n${run.transcript}`);
  return {
    userId: String(user[1]),
    reservationId: String(confirmed[1]),
    seatNumber: Number(confirmed[2]),
    date: String(confirmed[3]),
    price: String(confirmed[4]).replaceAll(",", ""),
  };
}

/**
 * examples/node-flow: the whole purchase through the SDK, run as its own
 * process. The server admits one fan at a time, so the example has to wait
 * in line behind a fan the test holds, and prints its place until the test
 * lets that fan go.
 */
describe("examples/node-flow", () => {
  let server: TestServer;
  let db: pg.Client;

  before(async () => {
    server = await startTestServer({ env: { QUEUE_MAX_ACTIVE: "1" } });
    db = new pg.Client({ connectionString: server.databaseUrl });
    await db.connect();
  });

  after(async () => {
    await db?.end();
    await server?.stop();
  });

  describe("over Connect, waiting in line first", () => {
    let run: ExampleRun;

    before(async () => {
      const blocker = await clientFor("connect", server.url).queue.issueQueueToken({
        concertId: server.concertId,
        userId: "node-flow-blocker",
      });
      expect(blocker.status?.state).to.equal(QueueTokenState.ADMITTED);
      let freed: Promise<unknown> | undefined;
      run = await runExample(
        "node-flow",
        { STAGEDOOR_URL: server.url, STAGEDOOR_PROTOCOL: "connect" },
        {
          onLine: (line) => {
            // The example is in line and watching: let the admitted fan leave.
            if (line.startsWith("queue: position 1 ") && freed === undefined) {
              freed = clientFor("connect", server.url, blocker.token).queue.leaveQueue({});
            }
          },
        },
      );
      await freed;
    });

    it("prints its place in line, then the admission", () => {
      expect(run.exitCode, run.transcript).to.equal(0);
      expect(run.lines).to.include("token issued: waiting at position 1 of 1");
      const position = run.lines.findIndex((line) => line.startsWith("queue: position 1 of 1 "));
      const admitted = run.lines.findIndex((line) => line.startsWith("queue: admitted until "));
      expect(position, run.transcript).to.be.greaterThan(-1);
      expect(admitted, run.transcript).to.be.greaterThan(position);
    });

    it("walks dates, seats, hold, recharge and payment, and ends confirmed", () => {
      expect(run.exitCode, run.transcript).to.equal(0);
      const purchase = purchaseOf(run);
      expect(purchase.seatNumber).to.equal(1);
      expect(purchase.price).to.equal("150000");
      expect(run.stdout).to.include(`held seat 1 (₩150,000) until `);
      expect(run.stdout).to.include("recharged ₩150,000: balance ₩150,000\n");
      expect(run.stdout).to.match(/^paid ₩150,000: payment [0-9a-f-]{36}$/m);
    });

    it("really bought the seat: the API and the database agree", async () => {
      const purchase = purchaseOf(run);
      const { token } = await clientFor("connect", server.url).queue.issueQueueToken({
        concertId: server.concertId,
        userId: purchase.userId,
      });
      const fan = clientFor("connect", server.url, token);
      try {
        const { reservation } = await fan.reservation.getReservation({
          reservationId: purchase.reservationId,
        });
        expect(reservation?.state).to.equal(ReservationState.CONFIRMED);
        expect(reservation?.seatNumber).to.equal(purchase.seatNumber);
        expect(reservation?.date).to.equal(purchase.date);
        const { wallet } = await fan.wallet.getWallet({});
        expect(wallet?.balance).to.equal(0n);
      } finally {
        // Give the only admission slot back for the next runs.
        await fan.queue.leaveQueue({});
      }

      const rows = await db.query<{ status: string; seat: string; paid: string }>(
        `select r.status, s.status as seat, p.amount::text as paid
           from reservation r join seat s on s.id = r.seat_id
           join payment p on p.reservation_id = r.id
          where r.id = $1 and r.user_id = $2`,
        [purchase.reservationId, purchase.userId],
      );
      expect(rows.rows).to.deep.equal([
        { status: "CONFIRMED", seat: "SOLD", paid: purchase.price },
      ]);
    });
  });

  // Suites run after the one above, which buys seat 1 (mocha runs a suite's own tests first).
  describe("over the other protocols", () => {
    for (const protocol of ["grpc", "grpc-web"]) {
      it(`buys the next free seat over ${protocol}, and exits on its own`, async () => {
        const run = await runExample(
          "node-flow",
          { STAGEDOOR_URL: server.url, STAGEDOOR_PROTOCOL: protocol },
          { timeoutMs: 20_000 },
        );
        expect(run.exitCode, run.transcript).to.equal(0);
        expect(run.lines[0]).to.include(` over ${protocol}, as `);
        const purchase = purchaseOf(run);
        const sold = await db.query<{ status: string }>(
          "select status from reservation where id = $1 and seat_number = $2",
          [purchase.reservationId, purchase.seatNumber],
        );
        expect(sold.rows).to.deep.equal([{ status: "CONFIRMED" }]);
      });
    }
  });

  describe("without a server", () => {
    it("says why it failed, with exit code 1", async () => {
      const port = await freePort();
      const run = await runExample("node-flow", { STAGEDOOR_URL: `http://127.0.0.1:${port}` });
      expect(run.exitCode, run.transcript).to.equal(1);
      expect(run.lines.at(-1)).to.match(/^node-flow failed: Unavailable: /);
    });
  });
});
