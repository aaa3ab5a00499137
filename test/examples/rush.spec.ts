import { expect } from "chai";
import pg from "pg";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { type ExampleRun, runExample } from "./run-example.js";

/** Fans in the test rush: enough to sell out a 50-seat date and make most of them wait. */
const FANS = 80;
/** Admitted at once: 20 of the 80 fans get in, 60 wait in line. */
const MAX_ACTIVE = 20;
const SEATS_PER_DATE = 50;

/** The `  label:   value` rows of the example's summary. */
function summaryOf(run: ExampleRun): Map<string, string> {
  const start = run.lines.indexOf("summary");
  if (start === -1) throw new Error(`no summary in the output\n${run.transcript}`);
  const rows = new Map<string, string>();
  for (const line of run.lines.slice(start + 1)) {
    const row = line.match(/^ {2}([a-z ]+):\s+(.*)$/);
    if (!row) break;
    rows.set(String(row[1]), String(row[2]));
  }
  return rows;
}

function count(rows: Map<string, string>, label: string): number {
  const value = Number.parseInt(rows.get(label) ?? "", 10);
  if (Number.isNaN(value)) throw new Error(`no number for "${label}" in the summary`);
  return value;
}

/**
 * examples/rush: a crowd of fans against one date of the demo concert, run as
 * its own process against a server that admits 20 fans at a time; the
 * example's own checks must pass and agree with the database.
 */
describe("examples/rush", () => {
  let server: TestServer;
  let db: pg.Client;

  before(async () => {
    server = await startTestServer({ env: { QUEUE_MAX_ACTIVE: String(MAX_ACTIVE) } });
    db = new pg.Client({ connectionString: server.databaseUrl });
    await db.connect();
  });

  after(async () => {
    await db?.end();
    await server?.stop();
  });

  describe(`${FANS} fans over Connect`, () => {
    let run: ExampleRun;
    let summary: Map<string, string>;

    before(async () => {
      run = await runExample(
        "rush",
        { STAGEDOOR_URL: server.url, RUSH_FANS: String(FANS), RUSH_CONCURRENCY: "20" },
        { timeoutMs: 30_000 },
      );
      summary = summaryOf(run);
    });

    it("exits 0 with every check OK", () => {
      expect(run.exitCode, run.transcript).to.equal(0);
      for (const name of ["no seat sold twice", "sold seats match the sales", "balances add up"]) {
        expect(run.lines, run.transcript).to.satisfy((lines: string[]) =>
          lines.some((line) => line.startsWith(`check ${name}: OK (`)),
        );
      }
    });

    it("accounts for every fan: admitted, and sold, sold out or gave up, without errors", () => {
      expect(count(summary, "fans")).to.equal(FANS);
      expect(count(summary, "admitted")).to.equal(FANS);
      expect(summary.get("errors"), run.transcript).to.equal("0 (none)");
      const ended = count(summary, "sold") + count(summary, "sold out") + count(summary, "gave up");
      expect(ended).to.equal(FANS);
      // More fans than seats: the date sells out, and most fans find nothing left.
      expect(count(summary, "sold")).to.be.within(1, SEATS_PER_DATE);
      expect(count(summary, "sold out")).to.be.greaterThan(0);
    });

    it("made fans wait, and reported their places in line", () => {
      const maxPosition = count(summary, "max waiting position");
      expect(maxPosition).to.be.within(1, FANS - MAX_ACTIVE);
      const joined = run.lines.find((line) => line.includes(` all ${FANS} fans joined the line: `));
      expect(joined, run.transcript).to.match(/: (\d+) admitted at once, (\d+) waiting /);
      expect(run.lines.filter((line) => / fans done: /.test(line))).to.have.length(10);
    });

    it("sold exactly what the database shows as SOLD, each seat once, and balanced every wallet", async () => {
      const date = run.stdout.match(/^concert ".*", date (\d{4}-\d\d-\d\d): /m)?.[1];
      expect(date, run.transcript).to.be.a("string");
      const sold = count(summary, "sold");
      const seats = await db.query<{ sold: number }>(
        `select count(*)::int as sold from seat s join concert_date d on d.id = s.concert_date_id
          where d.date = $1 and s.status = 'SOLD'`,
        [date],
      );
      expect(seats.rows[0]?.sold).to.equal(sold);
      const sales = await db.query<{ sales: number; seats: number; buyers: number }>(
        `select count(*)::int as sales, count(distinct seat_id)::int as seats,
                count(distinct user_id)::int as buyers
           from reservation where date = $1 and status = 'CONFIRMED'`,
        [date],
      );
      expect(sales.rows[0]).to.deep.equal({ sales: sold, seats: sold, buyers: sold });
      const wallets = await db.query<{ wallets: number; unbalanced: number; nonzero: number }>(
        `select count(*)::int as wallets,
                count(*) filter (where w.balance <> l.total)::int as unbalanced,
                count(*) filter (where w.balance <> 0)::int as nonzero
           from wallet w
           join (select user_id, sum(amount) as total from ledger_entry group by user_id) l
             on l.user_id = w.user_id
          where w.user_id like 'rush-%'`,
      );
      expect(wallets.rows[0]).to.deep.equal({ wallets: sold, unbalanced: 0, nonzero: 0 });
    });
  });

  describe("with a bad setting", () => {
    it("names the variable and exits 1 without starting", async () => {
      const run = await runExample("rush", { STAGEDOOR_URL: server.url, RUSH_FANS: "lots" });
      expect(run.exitCode, run.transcript).to.equal(1);
      expect(run.stderr).to.include('RUSH_FANS must be a positive integer, got "lots"');
      expect(run.stdout).to.equal("");
    });
  });
});
