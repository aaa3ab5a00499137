import { expect } from "chai";
import pg from "pg";
import { entities } from "../../../server/src/modules/entities.js";
import { migrateUp, migrations, type Orm, openOrm } from "../../../server/src/persistence/orm.js";
import { loadOrCreateServerSecret } from "../../../server/src/persistence/server-secret.js";
import { createTestDatabase, type TestDatabase } from "../../support/postgres.js";

const TABLES = [
  "admin_audit",
  "concert",
  "concert_date",
  "fan_session",
  "idempotency_key",
  "ledger_entry",
  "outbox_concert",
  "outbox_delivery",
  "outbox_event",
  "payment",
  "reservation",
  "seat",
  "server_secret",
  "ticket_use",
  "wallet",
  "sale_settings",
  "opening_draw",
];

/** A fresh database and what a test opened on it; `close` releases all of it. */
class Scratch {
  readonly orms: Orm[] = [];
  readonly clients: pg.Client[] = [];

  private constructor(readonly database: TestDatabase) {}

  static async create(): Promise<Scratch> {
    return new Scratch(await createTestDatabase());
  }

  get url(): string {
    return this.database.url;
  }

  /** One more "server instance": an ORM of its own on this database. */
  async instance(): Promise<Orm> {
    const orm = await openOrm({ url: this.url, entities, poolMax: 2 });
    this.orms.push(orm);
    return orm;
  }

  async client(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.url });
    this.clients.push(client);
    await client.connect();
    return client;
  }

  async query<T extends pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<T[]> {
    const client = this.clients[0] ?? (await this.client());
    return (await client.query<T>(text, params)).rows;
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((client) => client.end()));
    await Promise.all(this.orms.map((orm) => orm.close()));
    await this.database.drop();
  }
}

async function tablesOf(scratch: Scratch): Promise<string[]> {
  const rows = await scratch.query<{ table_name: string }>(
    `select table_name from information_schema.tables
      where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`,
  );
  return rows.map((row) => row.table_name);
}

async function appliedMigrations(scratch: Scratch): Promise<string[]> {
  const rows = await scratch.query<{ name: string }>(
    "select name from mikro_orm_migrations order by id",
  );
  return rows.map((row) => row.name);
}

describe("migrations", () => {
  const scratches: Scratch[] = [];
  async function scratch(): Promise<Scratch> {
    const created = await Scratch.create();
    scratches.push(created);
    return created;
  }
  afterEach(async () => {
    await Promise.all(scratches.splice(0).map((s) => s.close()));
  });

  it("apply every migration to an empty database", async () => {
    const db = await scratch();
    expect(await tablesOf(db)).to.deep.equal([]);
    const orm = await db.instance();
    await migrateUp(orm, db.url);
    expect(await tablesOf(db)).to.deep.equal([...TABLES, "mikro_orm_migrations"].sort());
    expect(await appliedMigrations(db)).to.deep.equal(migrations.map((m) => m.name));
    const indexes = await db.query<{ indexname: string }>(
      "select indexname from pg_indexes where schemaname = 'public' order by indexname",
    );
    expect(indexes.map((row) => row.indexname)).to.include.members([
      "seat_concert_date_id_number_key",
      "reservation_one_hold_per_user",
      "reservation_one_sale_per_seat",
      "ledger_entry_user_id_wallet_version_key",
      "fan_session_expiry_idx",
    ]);
  });

  it("are idempotent: a second run changes nothing and keeps the data", async () => {
    const db = await scratch();
    const orm = await db.instance();
    await migrateUp(orm, db.url);
    await db.query(
      "insert into concert (id, title, venue, created_at) values (gen_random_uuid(), 'Kept', 'Hall', now())",
    );
    const schemaBefore = await db.query(
      `select table_name, column_name, data_type from information_schema.columns
        where table_schema = 'public' order by table_name, column_name`,
    );
    await migrateUp(orm, db.url);
    // A restarted instance, too.
    await migrateUp(await db.instance(), db.url);
    expect(await appliedMigrations(db)).to.deep.equal(migrations.map((m) => m.name));
    expect(await orm.getMigrator().getPendingMigrations()).to.deep.equal([]);
    expect(
      await db.query(
        `select table_name, column_name, data_type from information_schema.columns
          where table_schema = 'public' order by table_name, column_name`,
      ),
    ).to.deep.equal(schemaBefore);
    expect(await db.query("select title from concert")).to.deep.equal([{ title: "Kept" }]);
  });

  it("run once when two instances migrate one fresh database at the same time", async () => {
    const db = await scratch();
    const [first, second] = [await db.instance(), await db.instance()];
    const results = await Promise.allSettled([migrateUp(first, db.url), migrateUp(second, db.url)]);
    expect(
      results.map((r) => (r.status === "rejected" ? String(r.reason) : r.status)),
    ).to.deep.equal(["fulfilled", "fulfilled"]);
    expect(await appliedMigrations(db)).to.deep.equal(migrations.map((m) => m.name));
    expect(await tablesOf(db)).to.deep.equal([...TABLES, "mikro_orm_migrations"].sort());
  });
});

describe("database constraints", () => {
  let db: Scratch;
  let client: pg.Client;

  before(async () => {
    db = await Scratch.create();
    await migrateUp(await db.instance(), db.url);
    client = await db.client();
    await client.query(`
      insert into concert (id, title, venue, created_at)
        values ('11111111-1111-4111-8111-111111111111', 'C', 'V', now());
      insert into concert_date (id, concert_id, date, starts_at, total_seats)
        values ('22222222-2222-4222-8222-222222222222', '11111111-1111-4111-8111-111111111111',
                '2030-01-08', '2030-01-08T10:00:00Z', 1);
      insert into seat (id, concert_date_id, number, grade, price, status, version)
        values ('33333333-3333-4333-8333-333333333333', '22222222-2222-4222-8222-222222222222',
                1, 'VIP', 150000, 'AVAILABLE', 1);
      insert into wallet (user_id, balance, version, created_at, updated_at)
        values ('alice', 100, 1, now(), now());
    `);
  });
  after(async () => {
    await db?.close();
  });

  /** Runs a statement that must be refused, inside a savepoint-free transaction we roll back. */
  async function refused(sql: string): Promise<{ code: string; constraint: string }> {
    await client.query("begin");
    try {
      await client.query(sql);
    } catch (error) {
      const dbError = error as pg.DatabaseError;
      return { code: String(dbError.code), constraint: String(dbError.constraint) };
    } finally {
      await client.query("rollback");
    }
    expect.fail(`the database accepted: ${sql}`);
  }

  /** Runs a statement that must be accepted, then rolls it back. */
  async function accepted(sql: string): Promise<void> {
    await client.query("begin");
    try {
      await client.query(sql);
    } finally {
      await client.query("rollback");
    }
  }

  it("refuses a negative balance, on insert and on update", async () => {
    expect(
      await refused(
        "insert into wallet (user_id, balance, version, created_at, updated_at) values ('bob', -1, 0, now(), now())",
      ),
    ).to.deep.equal({ code: "23514", constraint: "wallet_balance_check" });
    expect(
      await refused("update wallet set balance = balance - 101 where user_id = 'alice'"),
    ).to.deep.equal({ code: "23514", constraint: "wallet_balance_check" });
    await accepted("update wallet set balance = balance - 100 where user_id = 'alice'");
  });

  it("refuses statuses outside each table's set", async () => {
    expect(
      await refused(
        "update seat set status = 'RESERVED', reservation_id = gen_random_uuid() where id = '33333333-3333-4333-8333-333333333333'",
      ),
    ).to.deep.equal({ code: "23514", constraint: "seat_status_check" });
    expect(
      await refused(`
        insert into reservation (id, user_id, concert_id, concert_date_id, date, seat_id, seat_number,
                                 price, status, held_until, created_at)
        values (gen_random_uuid(), 'alice', '11111111-1111-4111-8111-111111111111',
                '22222222-2222-4222-8222-222222222222', '2030-01-08',
                '33333333-3333-4333-8333-333333333333', 1, 150000, 'PENDING', now(), now())`),
    ).to.deep.equal({ code: "23514", constraint: "reservation_status_check" });
    // A HELD seat must say until when; a free one must not point at a reservation.
    expect(
      (
        await refused(
          "update seat set status = 'HELD', reservation_id = gen_random_uuid() where id = '33333333-3333-4333-8333-333333333333'",
        )
      ).code,
    ).to.equal("23514");
    expect(
      (
        await refused(
          "update seat set reservation_id = gen_random_uuid() where id = '33333333-3333-4333-8333-333333333333'",
        )
      ).code,
    ).to.equal("23514");
  });

  it("refuses prices and amounts that are not positive", async () => {
    for (const price of [0, -1]) {
      expect(
        await refused(
          `insert into seat (id, concert_date_id, number, grade, price, status, version)
           values (gen_random_uuid(), '22222222-2222-4222-8222-222222222222', 2, 'R', ${price}, 'AVAILABLE', 1)`,
        ),
      ).to.deep.equal({ code: "23514", constraint: "seat_price_check" });
    }
    expect(
      await refused("update seat set price = 0 where id = '33333333-3333-4333-8333-333333333333'"),
    ).to.deep.equal({ code: "23514", constraint: "seat_price_check" });
    expect(
      (
        await refused(
          `insert into ledger_entry (id, user_id, kind, amount, balance_after, wallet_version, created_at)
           values (gen_random_uuid(), 'alice', 'RECHARGE', 0, 100, 2, now())`,
        )
      ).code,
    ).to.equal("23514");
    // A recharge is positive and a payment entry needs its payment.
    expect(
      (
        await refused(
          `insert into ledger_entry (id, user_id, kind, amount, balance_after, wallet_version, created_at)
           values (gen_random_uuid(), 'alice', 'RECHARGE', -5, 95, 2, now())`,
        )
      ).code,
    ).to.equal("23514");
    expect(
      (
        await refused(
          `insert into ledger_entry (id, user_id, kind, amount, balance_after, wallet_version, created_at)
           values (gen_random_uuid(), 'alice', 'PAYMENT', -5, 95, 2, now())`,
        )
      ).code,
    ).to.equal("23514");
    await accepted(
      `insert into seat (id, concert_date_id, number, grade, price, status, version)
       values (gen_random_uuid(), '22222222-2222-4222-8222-222222222222', 2, 'R', 1, 'AVAILABLE', 1)`,
    );
  });

  it("keeps refunds and credits positive, and a REFUND entry tied to its payment", async () => {
    const entry = (kind: string, amount: number, refunded = "null") =>
      `insert into ledger_entry (id, user_id, kind, amount, balance_after, wallet_version,
                                 refunded_payment_id, created_at)
       values (gen_random_uuid(), 'alice', '${kind}', ${amount}, 100, 2, ${refunded}, now())`;
    expect(await refused(entry("CREDIT", -5))).to.deep.equal({
      code: "23514",
      constraint: "ledger_entry_sign_check",
    });
    expect(await refused(entry("REFUND", 5))).to.deep.equal({
      code: "23514",
      constraint: "ledger_entry_refund_check",
    });
    expect((await refused(entry("GIFT", 5))).constraint).to.equal("ledger_entry_kind_check");
    await accepted(entry("CREDIT", 5));
  });

  it("keeps the admin audit trail append-only", async () => {
    const insert = `insert into admin_audit (id, actor, action, target, before, after, request_id, created_at)
      values ('44444444-4444-4444-8444-444444444444', 'ops', 'CreditWallet', 'wallet/alice',
              '{"balance": "0"}', '{"balance": "5"}', 'r-1', now())`;
    await client.query(insert);
    for (const change of [
      "update admin_audit set actor = 'someone-else'",
      "delete from admin_audit",
      "truncate admin_audit",
    ]) {
      expect(await refused(change), change).to.deep.equal({
        code: "42501",
        constraint: "undefined",
      });
    }
    const rows = await client.query<{ actor: string }>("select actor from admin_audit");
    expect(rows.rows).to.deep.equal([{ actor: "ops" }]);
  });
});

describe("loadOrCreateServerSecret", () => {
  let db: Scratch;

  before(async () => {
    db = await Scratch.create();
    await migrateUp(await db.instance(), db.url);
  });
  after(async () => {
    await db?.close();
  });

  it("returns the same 32 random bytes on every call and from every instance", async () => {
    const [first, second] = [await db.instance(), await db.instance()];
    const secret = await loadOrCreateServerSecret(first.em.fork(), "queue-token");
    expect(secret).to.be.instanceOf(Buffer);
    expect(secret.length).to.equal(32);
    expect(secret.equals(Buffer.alloc(32))).to.equal(false);
    expect(await loadOrCreateServerSecret(first.em.fork(), "queue-token")).to.deep.equal(secret);
    expect(await loadOrCreateServerSecret(second.em.fork(), "queue-token")).to.deep.equal(secret);

    const rows = await db.query<{ name: string; value: Buffer }>(
      "select name, value from server_secret",
    );
    expect(rows).to.deep.equal([{ name: "queue-token", value: secret }]);
  });

  it("agrees across instances that create it at the same time, and keeps names apart", async () => {
    const [a, b, c] = [await db.instance(), await db.instance(), await db.instance()];
    const [first, ...rest] = await Promise.all(
      [a, b, c].map((orm) => loadOrCreateServerSecret(orm.em.fork(), "raced")),
    );
    expect(first?.length).to.equal(32);
    for (const secret of rest) expect(secret).to.deep.equal(first);
    const other = await loadOrCreateServerSecret(a.em.fork(), "another");
    expect(other.length).to.equal(32);
    expect(other).to.not.deep.equal(first);
    const [count] = await db.query<{ n: number }>(
      "select count(*)::int as n from server_secret where name = 'raced'",
    );
    expect(count?.n).to.equal(1);
  });
});
