import { randomBytes } from "node:crypto";
import { expect } from "chai";
import pg from "pg";
import { admitUser, must, RaceDb, requestId } from "../../concurrency/race-support.js";
import { clientFor } from "../../support/clients.js";
import { createTestDatabase } from "../../support/postgres.js";
import { startTestServer, type TestServer } from "../../support/test-server.js";

/**
 * DATABASE_READ_URL, tested by pointing it at the same PostgreSQL as a role
 * that may only SELECT: the catalog is served through it, and nothing that
 * writes, locks or moves money ever uses it (a write through it would fail).
 */
describe("integration: catalog reads on DATABASE_READ_URL (a SELECT-only role)", () => {
  const reader = `stagedoor_reader_${randomBytes(6).toString("hex")}`;
  const password = randomBytes(16).toString("hex");
  let server: TestServer;
  let admin: pg.Client;
  let readUrl: string;
  let databaseName: string;
  let adminUser = "";
  let adminPassword = "";

  before(async () => {
    const database = await createTestDatabase();
    const url = new URL(database.url);
    databaseName = url.pathname.slice(1);
    adminUser = url.username;
    adminPassword = url.password;
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    const role = admin.escapeIdentifier(reader);
    await admin.query(`create role ${role} login password '${password}'`);
    await admin.query(
      `grant connect on database ${admin.escapeIdentifier(databaseName)} to ${role}`,
    );
    await admin.query(`grant usage on schema public to ${role}`);
    // The tables do not exist yet: the server migrates them as this (admin) user.
    await admin.query(
      `alter default privileges in schema public grant select on tables to ${role}`,
    );
    url.username = reader;
    url.password = password;
    readUrl = url.toString();
    server = await startTestServer({ database, env: { DATABASE_READ_URL: readUrl } });
  });

  after(async () => {
    await admin?.end();
    await server?.stop();
    // The database (and the role's grants in it) is gone; the role is cluster-wide.
    if (readUrl === undefined) return;
    const maintenance = new URL(readUrl);
    maintenance.username = adminUser;
    maintenance.password = adminPassword;
    maintenance.pathname = "/postgres";
    const client = new pg.Client({ connectionString: maintenance.toString() });
    await client.connect();
    try {
      await client.query(`drop role if exists ${client.escapeIdentifier(reader)}`);
    } finally {
      await client.end();
    }
  });

  /** The read pool's connections in this database: who they log in as, and what they last ran. */
  async function readPool(): Promise<{ usename: string; query: string }[]> {
    const { rows } = await admin.query<{ usename: string; query: string }>(
      `select usename, query from pg_stat_activity
        where datname = $1 and application_name = 'stagedoor-read'`,
      [databaseName],
    );
    return rows;
  }

  it("the read role really cannot write", async () => {
    const client = new pg.Client({ connectionString: readUrl });
    await client.connect();
    try {
      for (const sql of [
        "insert into concert (id, title, venue, created_at) values (gen_random_uuid(), 'x', 'y', now())",
        "update seat set version = version + 1",
        "insert into ledger_entry (id) values (gen_random_uuid())",
      ]) {
        const error = await client.query(sql).then(
          () => undefined,
          (e: { code?: string }) => e,
        );
        expect(error?.code, sql).to.equal("42501"); // insufficient_privilege
      }
      const { rows } = await client.query<{ n: number }>("select count(*)::int as n from seat");
      expect(rows[0]?.n).to.equal(150);
    } finally {
      await client.end();
    }
  });

  it("serves concerts, dates and seats through the read role", async () => {
    const catalog = clientFor("connect", server.url).catalog;
    const { concerts } = await catalog.listConcerts({});
    expect(concerts.map((c) => c.id)).to.deep.equal([server.concertId]);
    const { dates } = await catalog.listConcertDates({ concertId: server.concertId });
    expect(dates).to.have.length(3);
    const first = must(dates[0], "first date");
    const { seats } = await catalog.listAvailableSeats({ concertDateId: first.id, pageSize: 100 });
    expect(seats).to.have.length(50);
    const rest = await fetch(`${server.url}/api/concerts/dates`);
    expect(rest.status).to.equal(200);
    const listed = (await rest.json()) as { dates: string[] };
    expect(listed.dates).to.deep.equal(dates.map((d) => d.date));

    const pool = await readPool();
    expect(pool.length, "the read pool has connections").to.be.greaterThan(0);
    expect(
      new Set(pool.map((row) => row.usename)),
      "every read connection is the reader",
    ).to.deep.equal(new Set([reader]));
    const ran = pool.map((row) => row.query.trim().toLowerCase()).filter((query) => query !== "");
    expect(ran.length, "read connections that ran a query").to.be.greaterThan(0);
    for (const query of ran)
      expect(query).to.match(/^select .* from "?(concert|concert_date|seat)"?/s);
    // And the primary pool never logs in as the reader.
    const { rows: primary } = await admin.query<{ usename: string }>(
      `select usename from pg_stat_activity where datname = $1 and application_name = 'stagedoor'`,
      [databaseName],
    );
    expect(primary.map((row) => row.usename)).to.not.include(reader);
  });

  it("holds, recharges and pays on the primary, and keeps doing so when the read role loses every grant", async () => {
    const db = new RaceDb(server.databaseUrl);
    const role = admin.escapeIdentifier(reader);
    try {
      const seats = await db.seats();
      const buy = async (label: string, index: number) => {
        const fan = await admitUser(server, "connect", label);
        const seat = must(seats[index], "seat");
        const { reservation } = await fan.client.reservation.holdSeat({
          seatId: seat.id,
          requestId: requestId(),
        });
        await fan.client.wallet.rechargeWallet({ amount: seat.price, requestId: requestId() });
        const { payment } = await fan.client.payment.createPayment({
          reservationId: must(reservation, "reservation").id,
          amount: seat.price,
          requestId: requestId(),
        });
        expect(payment?.id, `${label}'s payment`).to.be.a("string");
        return fan;
      };
      const first = await buy("replica-buyer", 0);

      // A fan admitted (and their seat's facts cached) before the replica breaks.
      const second = await admitUser(server, "connect", "replica-late");
      const seat = must(seats[1], "seat");
      const catalog = clientFor("connect", server.url).catalog;
      await catalog.getSeat({ seatId: seat.id });

      await admin.query(`revoke select on all tables in schema public from ${role}`);
      try {
        const refused = await catalog.listConcerts({}).then(
          () => undefined,
          (error: unknown) => error,
        );
        expect(refused, "ListConcerts reads through the reader").to.not.equal(undefined);

        // Holds, wallets and payments do not touch the reader at all.
        const { reservation } = await second.client.reservation.holdSeat({
          seatId: seat.id,
          requestId: requestId(),
        });
        await second.client.wallet.rechargeWallet({ amount: seat.price, requestId: requestId() });
        await second.client.payment.createPayment({
          reservationId: must(reservation, "reservation").id,
          amount: seat.price,
          requestId: requestId(),
        });
        const wallet = await first.client.wallet.getWallet({});
        expect(wallet.wallet?.balance).to.equal(0n);
        const { reservations } = await second.client.reservation.listReservations({});
        expect(reservations.map((r) => r.id)).to.deep.equal([must(reservation, "hold").id]);
      } finally {
        await admin.query(`grant select on all tables in schema public to ${role}`);
      }
      // The reader recovers without a restart.
      const { concerts } = await catalog.listConcerts({});
      expect(concerts).to.have.length(1);
      await db.expectInvariants(new Date());
    } finally {
      await db.close();
    }
  });
});
