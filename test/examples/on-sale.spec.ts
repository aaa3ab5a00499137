import { createHash, randomBytes } from "node:crypto";
import { expect } from "chai";
import pg from "pg";
import { ServerProcess, START_MS, waitFor } from "../fault/fault-kit.js";
import { SECRET, WebhookReceiver } from "../integration/events/event-kit.js";
import { must } from "../rpc/rpc-kit.js";
import { freePort } from "../support/ports.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { deleteKeys, testRedisUrl, uniqueKeyPrefix } from "../support/redis.js";
import { type ExampleRun, runExample } from "./run-example.js";

/** The crowd that arrives before the opening, and how many of them are admitted at once. */
const FANS = 6;
const MAX_ADMITTED = 2;
const PAUSE_AFTER = 3;
const SCRIPT = "examples/on-sale/src/on-sale.ts";
const ADMIN_KEY = randomBytes(24).toString("base64url");
const HMAC_SECRET = randomBytes(32).toString("hex");

/** The `  label:   value` row of the script's GetSaleStats section. */
function statsRow(run: ExampleRun, label: string): string {
  const line = run.lines.find((l) => l.startsWith(`  ${label}:`));
  return must(line, `the "${label}" row\n${run.transcript}`)
    .slice(label.length + 3)
    .trim();
}

/**
 * examples/on-sale: the scripted on-sale, run as its own process against a
 * server process (`server/src/main.ts`, as `npm start` runs it) started on an
 * empty database (no demo seed), with fans signing in with HMAC assertions,
 * webhooks to the script's receiver and to the test's, and metrics on a port
 * of their own. The facts are checked against the database, the test's
 * webhook receiver and the script's own metrics scrape.
 */
describe("examples/on-sale", function () {
  this.timeout(START_MS + 180_000);
  const keyPrefix = uniqueKeyPrefix();
  let database: TestDatabase | undefined;
  let server: ServerProcess | undefined;
  let receiver: WebhookReceiver | undefined;
  let db: pg.Client | undefined;
  let run: ExampleRun;
  let concertId: string;

  before(async () => {
    database = await createTestDatabase();
    receiver = await WebhookReceiver.start({ ms: () => Date.now() });
    const scriptPort = await freePort();
    const metricsPort = await freePort();
    server = await ServerProcess.start({
      DATABASE_URL: database.url,
      SEED_DEMO: "false",
      AUTH_MODE: "hmac",
      AUTH_HMAC_SECRET: HMAC_SECRET,
      TOKEN_SECRET: randomBytes(32).toString("hex"),
      ADMIN_API_KEYS: `ops:${createHash("sha256").update(ADMIN_KEY).digest("hex")}`,
      WEBHOOK_URLS: `http://127.0.0.1:${scriptPort}/on-sale,${receiver.url}`,
      WEBHOOK_SECRET: SECRET,
      EVENT_RELAY_INTERVAL_MS: "100",
      METRICS_PORT: String(metricsPort),
      DB_POOL_MAX: "4",
      ...(testRedisUrl ? { REDIS_URL: testRedisUrl, REDIS_KEY_PREFIX: keyPrefix } : {}),
    });
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
    run = await runExample(
      "on-sale",
      {
        STAGEDOOR_URL: server.url,
        STAGEDOOR_ADMIN_KEY: ADMIN_KEY,
        STAGEDOOR_AUTH_MODE: "hmac",
        STAGEDOOR_AUTH_HMAC_SECRET: HMAC_SECRET,
        STAGEDOOR_METRICS_URL: `http://127.0.0.1:${metricsPort}/metrics`,
        ONSALE_FANS: String(FANS),
        ONSALE_MAX_ADMITTED: String(MAX_ADMITTED),
        ONSALE_PAUSE_AFTER: String(PAUSE_AFTER),
        ONSALE_OPENS_IN_SECONDS: "4",
        ONSALE_WEBHOOK_PORT: String(scriptPort),
        WEBHOOK_SECRET: SECRET,
      },
      { script: SCRIPT, timeoutMs: 150_000 },
    );
    concertId = must(
      /CreateConcert: concert ([0-9a-f-]{36}) /.exec(run.stdout)?.[1],
      `the concert's id\n${run.transcript}`,
    );
  });

  after(async () => {
    await db?.end();
    await server?.stop();
    await receiver?.close();
    await database?.drop();
    if (testRedisUrl) await deleteKeys(testRedisUrl, keyPrefix);
  });

  it("exits 0 with every check of its own OK", () => {
    expect(run.exitCode, run.transcript).to.equal(0);
    const checks = run.lines.filter((line) => line.startsWith("check "));
    expect(checks, run.transcript).to.have.length(5);
    for (const check of checks) expect(check, run.transcript).to.match(/: OK \(/);
  });

  it("imported the seat map after a clean dry run, from an empty database", async () => {
    expect(run.stdout).to.match(
      /ImportSeatMap seat-map\.csv \(dry run\): 12 seats, 0 bad rows, written: false/,
    );
    expect(run.stdout).to.match(/ImportSeatMap seat-map\.csv: 12 seats, written: true/);
    const { rows } = await must(db).query<{ concerts: number; seats: number }>(
      `select (select count(*)::int from concert) as concerts,
              (select count(*)::int from seat s join concert_date d on d.id = s.concert_date_id
                where d.concert_id = $1) as seats`,
      [concertId],
    );
    expect(rows[0]).to.deep.equal({ concerts: 1, seats: 12 });
  });

  it("kept the early crowd in the lobby and drew it, with the crowd's size", async () => {
    const lobby = run.lines.filter((line) =>
      / IssueQueueToken → LOBBY, position unknown, opens at \d{4}-/.test(line),
    );
    expect(lobby, run.transcript).to.have.length(FANS);
    expect(run.stdout).to.match(
      new RegExp(`GetOpeningDraw: drawn at \\S+, lobby of ${FANS}, seed [0-9a-f]{64}`),
    );
    const { rows } = await must(db).query<{ lobby_size: number }>(
      "select lobby_size from opening_draw where concert_id = $1",
      [concertId],
    );
    expect(rows).to.deep.equal([{ lobby_size: FANS }]);
  });

  it("sold one seat per successful payment, never a seat twice, and some fans lost the favourite seat", async () => {
    const paidLines = run.lines.filter((line) =>
      / recharged and paid ₩[\d,]+ for seat \d+/.test(line),
    );
    const collisions = run.lines.filter((line) => / is taken \(SEAT_UNAVAILABLE\)$/.test(line));
    expect(collisions.length, run.transcript).to.be.greaterThan(0);
    const { rows } = await must(db).query<{
      payments: number;
      refunded: number;
      confirmed: number;
      confirmed_seats: number;
      sold_seats: number;
    }>(
      `select (select count(*)::int from payment p join reservation r on r.id = p.reservation_id
                where r.concert_id = $1) as payments,
              (select count(*)::int from payment p join reservation r on r.id = p.reservation_id
                where r.concert_id = $1 and p.status = 'REFUNDED') as refunded,
              (select count(*)::int from reservation where concert_id = $1 and status = 'CONFIRMED') as confirmed,
              (select count(distinct seat_id)::int from reservation
                where concert_id = $1 and status = 'CONFIRMED') as confirmed_seats,
              (select count(*)::int from seat s join concert_date d on d.id = s.concert_date_id
                where d.concert_id = $1 and s.status = 'SOLD') as sold_seats`,
      [concertId],
    );
    // Every fan of the crowd and the late fan bought a ticket (12 seats for 7 fans); one was refunded.
    expect(paidLines, run.transcript).to.have.length(FANS + 1);
    expect(rows[0]).to.deep.equal({
      payments: FANS + 1,
      refunded: 1,
      confirmed: FANS,
      confirmed_seats: FANS,
      sold_seats: FANS,
    });
  });

  it("paused admission mid-sale: a late fan waited, nobody was admitted, then it resumed", () => {
    expect(run.stdout).to.include(`== 6. The emergency brake after `);
    const late = must(run.lines.find((line) => / fan-\w+-late: IssueQueueToken → /.test(line)));
    expect(late, run.transcript).to.match(
      /→ WAITING, position [1-9]\d* of [1-9]\d*, admission paused: yes$/,
    );
    const after = must(run.lines.find((line) => / fan-\w+-late after 2 s: /.test(line)));
    expect(after, run.transcript).to.match(
      /: WAITING at position [1-9]\d*; GetSaleStats: admitted 0, waiting [1-9]/,
    );
    expect(run.stdout).to.match(/ResumeAdmission: paused no/);
    const lateAdmitted = run.lines.findIndex((line) => / fan-\w+-late: admitted$/.test(line));
    const resumedAt = run.lines.findIndex((line) => / ResumeAdmission: /.test(line));
    expect(lateAdmitted, run.transcript).to.be.greaterThan(resumedAt);
  });

  it("refunded one ticket: the seat is back on sale, the wallet credited, and the stats show it", () => {
    expect(run.stdout).to.match(
      /RefundTicket \S+ \(fan-\S+, seat \d+\): reservation REFUNDED, payment REFUNDED/,
    );
    expect(run.stdout).to.match(/: (₩[\d,]+) back, wallet balance \1\n/);
    expect(run.stdout).to.match(/seat \d+ is AVAILABLE again/);
    expect(statsRow(run, "refunded tickets")).to.equal("1");
    expect(statsRow(run, "available / held / sold")).to.equal(`${12 - FANS} / 0 / ${FANS}`);
  });

  it("sent ticket.sold and ticket.refunded webhooks with valid signatures, in sequence", async () => {
    const hooks = must(receiver);
    const received = await waitFor(
      () => {
        // Deliveries are at least once: one per event id.
        const byId = new Map(
          hooks.received
            .filter((r) => r.event.concert_id === concertId)
            .map((r) => [r.event.id, r] as const),
        );
        const events = [...byId.values()];
        return events.some((r) => r.event.type === "ticket.refunded") ? events : undefined;
      },
      30_000,
      "the ticket.refunded webhook",
    );
    const count = (type: string) => received.filter((r) => r.event.type === type).length;
    expect(count("ticket.sold")).to.equal(FANS + 1);
    expect(count("ticket.refunded")).to.equal(1);
    expect(received.every((r) => r.signed)).to.equal(true);
    // The script's own receiver saw the same events, each with a valid signature.
    expect(run.stdout).to.match(
      new RegExp(
        `${received.length} events on the webhook receiver, sequence 1\\.\\.${received.length} without gaps, ${received.length}/${received.length} signatures valid`,
      ),
    );
  });

  it("scraped the metrics: admissions of the concert, none out of order", () => {
    const metric = (name: string) =>
      must(
        run.lines.find((line) => line.startsWith(`  ${name}{concert="${concertId}"} `)),
        `${name} in the scrape\n${run.transcript}`,
      )
        .split(" ")
        .at(-1);
    expect(Number(metric("stagedoor_queue_admissions_total"))).to.equal(FANS + 1);
    expect(metric("stagedoor_queue_admitted_out_of_order_total")).to.equal("0");
    expect(run.stdout).to.match(/^ {2}stagedoor_sales_total \d+$/m);
  });

  it("names a missing operator key and exits 1 without doing anything", async () => {
    const bad = await runExample(
      "on-sale",
      { STAGEDOOR_URL: must(server).url, STAGEDOOR_ADMIN_KEY: "" },
      { script: SCRIPT },
    );
    expect(bad.exitCode, bad.transcript).to.equal(1);
    expect(bad.stderr).to.include("on-sale failed: set STAGEDOOR_ADMIN_KEY");
    expect(bad.stdout).to.equal("");
  });
});
