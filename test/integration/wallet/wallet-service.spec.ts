import { expect } from "chai";
import pg from "pg";
import {
  type Caller,
  expectDomainError,
  expectLedgerMatchesBalances,
  moneySnapshot,
  must,
  ServiceHarness,
} from "../reservations/service-harness.js";

const MAX_RECHARGE = 10_000_000n;
const MAX_BALANCE = 15_000_000n;

interface LedgerRow {
  id: string;
  kind: string;
  amount: string;
  balance_after: string;
  wallet_version: number;
  payment_id: string | null;
  created_at: Date;
}

describe("WalletService on PostgreSQL", () => {
  let h: ServiceHarness;

  before(async () => {
    h = await ServiceHarness.start({
      WALLET_MAX_RECHARGE: String(MAX_RECHARGE),
      WALLET_MAX_BALANCE: String(MAX_BALANCE),
    });
  });
  afterEach(async () => {
    await expectLedgerMatchesBalances(h);
  });
  after(async () => {
    await h?.close();
  });

  async function admit(label: string): Promise<Caller> {
    return h.admit(h.user(label));
  }

  function recharge(caller: Caller, amount: bigint, requestId: string) {
    return h.services.wallet.recharge(caller.principal, { amount, requestId });
  }

  async function walletRow(userId: string) {
    const [row] = await h.sql<{ balance: string; version: number; updated_at: Date }>(
      "select balance::text, version, updated_at from wallet where user_id = $1",
      [userId],
    );
    return row;
  }

  async function ledgerOf(userId: string): Promise<LedgerRow[]> {
    return h.sql<LedgerRow>(
      `select id, kind, amount::text, balance_after::text, wallet_version, payment_id, created_at
         from ledger_entry where user_id = $1 order by wallet_version`,
      [userId],
    );
  }

  it("reads an empty wallet before the first recharge (writing nothing), which creates it with its first ledger entry", async () => {
    const caller = await admit("first");
    const userId = caller.principal.userId;
    expect(await h.services.wallet.get(caller.principal)).to.deep.equal({
      userId,
      balance: 0n,
      version: 0,
      updatedAt: undefined,
    });
    expect(await walletRow(userId)).to.equal(undefined);

    const now = h.clock.now();
    const { wallet, entry } = await recharge(caller, 1_000n, "r-1");
    expect(wallet).to.deep.equal({ userId, balance: 1_000n, version: 1, updatedAt: now });
    expect({ ...entry }).to.deep.include({
      userId,
      kind: "RECHARGE",
      amount: 1_000n,
      balanceAfter: 1_000n,
      walletVersion: 1,
      paymentId: null,
      createdAt: now,
    });
    expect(await h.services.wallet.get(caller.principal)).to.deep.equal(wallet);
    expect(await walletRow(userId)).to.deep.equal({
      balance: "1000",
      version: 1,
      updated_at: now,
    });
    expect(await ledgerOf(userId)).to.deep.equal([
      {
        id: entry.id,
        kind: "RECHARGE",
        amount: "1000",
        balance_after: "1000",
        wallet_version: 1,
        payment_id: null,
        created_at: now,
      },
    ]);
  });

  it("refuses amounts that are not positive or exceed WALLET_MAX_RECHARGE, writing nothing", async () => {
    const caller = await admit("amounts");
    const userId = caller.principal.userId;
    const empty = await moneySnapshot(h, userId);
    for (const amount of [0n, -1n, -MAX_RECHARGE, MAX_RECHARGE + 1n, 2n ** 63n]) {
      const error = await expectDomainError(
        recharge(caller, amount, `bad-${amount}`),
        "invalid_argument",
        "INVALID_ARGUMENT",
      );
      expect(error.violations.map((v) => v.field)).to.deep.equal(["amount"]);
    }
    expect(await moneySnapshot(h, userId)).to.deep.equal(empty);

    // The limit itself is allowed, and a refusal later changes nothing either.
    await recharge(caller, MAX_RECHARGE, "max");
    const funded = await moneySnapshot(h, userId);
    await expectDomainError(recharge(caller, 0n, "zero"), "invalid_argument", "INVALID_ARGUMENT");
    expect(await moneySnapshot(h, userId)).to.deep.equal(funded);
    expect(funded.wallets).to.equal(`${MAX_RECHARGE}/1`);
  });

  it("refuses request ids that are empty, too long or contain control characters", async () => {
    const caller = await admit("ids");
    for (const requestId of ["", "x".repeat(129), "tab\there"]) {
      await expectDomainError(
        recharge(caller, 10n, requestId),
        "invalid_argument",
        "INVALID_ARGUMENT",
      );
    }
    expect((await moneySnapshot(h, caller.principal.userId)).ledger).to.equal("0");
  });

  it("stops at the balance limit with BALANCE_LIMIT_REACHED and writes nothing", async () => {
    const caller = await admit("rich");
    const userId = caller.principal.userId;
    await recharge(caller, MAX_RECHARGE, "big");
    const before = await moneySnapshot(h, userId);
    const error = await expectDomainError(
      recharge(caller, MAX_BALANCE - MAX_RECHARGE + 1n, "over"),
      "resource_exhausted",
      "BALANCE_LIMIT_REACHED",
    );
    expect(error.metadata).to.deep.equal({ max_balance: String(MAX_BALANCE) });
    expect(await moneySnapshot(h, userId)).to.deep.equal(before);

    // Exactly up to the limit is fine; one more unit is not.
    const { wallet } = await recharge(caller, MAX_BALANCE - MAX_RECHARGE, "top-up");
    expect(wallet.balance).to.equal(MAX_BALANCE);
    await expectDomainError(
      recharge(caller, 1n, "one-more"),
      "resource_exhausted",
      "BALANCE_LIMIT_REACHED",
    );
    expect((await walletRow(userId))?.balance).to.equal(String(MAX_BALANCE));
    expect(await ledgerOf(userId)).to.have.length(2);
  });

  it("replays a request id with the first result and no second ledger row", async () => {
    const caller = await admit("retry");
    const userId = caller.principal.userId;
    const first = await recharge(caller, 500n, "same");
    h.clock.advance(1_000);
    await recharge(caller, 700n, "other");
    h.clock.advance(1_000);
    const replay = await recharge(caller, 500n, "same");

    expect(replay.entry.id).to.equal(first.entry.id);
    expect(replay.entry.balanceAfter).to.equal(500n);
    expect(replay.wallet).to.deep.equal(first.wallet);
    expect((await walletRow(userId))?.balance).to.equal("1200");
    expect((await ledgerOf(userId)).map((row) => row.amount)).to.deep.equal(["500", "700"]);
    const [keys] = await h.sql<{ count: number }>(
      "select count(*)::int as count from idempotency_key where user_id = $1",
      [userId],
    );
    expect(keys?.count).to.equal(2);
  });

  it("refuses a request id reused with another amount, but not the same id of another user", async () => {
    const [caller, neighbour] = [await admit("reuse"), await admit("neighbour")];
    await recharge(caller, 500n, "shared-id");
    const before = await moneySnapshot(h, caller.principal.userId);
    const error = await expectDomainError(
      recharge(caller, 600n, "shared-id"),
      "invalid_argument",
      "REQUEST_ID_REUSED",
    );
    expect(error.violations.map((v) => v.field)).to.deep.equal(["request_id"]);
    expect(await moneySnapshot(h, caller.principal.userId)).to.deep.equal(before);

    // Request ids are scoped to their user.
    const theirs = await recharge(neighbour, 600n, "shared-id");
    expect(theirs.wallet.balance).to.equal(600n);
    expect((await walletRow(caller.principal.userId))?.balance).to.equal("500");
  });

  it("lists the ledger newest first, page by page, and only the caller's", async () => {
    const [caller, neighbour] = [await admit("ledger"), await admit("noise")];
    const amounts = [100n, 200n, 300n, 400n, 500n];
    for (const [index, amount] of amounts.entries()) {
      // Two entries share an instant, to page across a created_at tie.
      if (index !== 2) h.clock.advance(1_000);
      await recharge(caller, amount, `l-${index}`);
    }
    await recharge(neighbour, 42n, "l-0");
    const expected = await h.sql<{ id: string }>(
      "select id from ledger_entry where user_id = $1 order by wallet_version desc",
      [caller.principal.userId],
    );

    const pages: { amount: bigint; balanceAfter: bigint; id: string }[][] = [];
    let token = "";
    do {
      const page = await h.services.wallet.listEntries(caller.principal, 2, token);
      pages.push(
        page.entries.map((e) => ({ amount: e.amount, balanceAfter: e.balanceAfter, id: e.id })),
      );
      token = page.nextPageToken;
    } while (token !== "" && pages.length < 10);
    expect(pages.map((page) => page.length)).to.deep.equal([2, 2, 1]);
    const entries = pages.flat();
    expect(entries.map((e) => e.id)).to.deep.equal(expected.map((row) => row.id));
    // Newest first is a total order, even across the entries that share an instant.
    expect(entries.map((e) => e.balanceAfter)).to.deep.equal([1500n, 1000n, 600n, 300n, 100n]);

    const whole = await h.services.wallet.listEntries(caller.principal, 0, "");
    expect(whole.nextPageToken).to.equal("");
    expect(whole.entries.map((e) => e.id)).to.deep.equal(expected.map((row) => row.id));

    const stranger = await admit("no-wallet");
    expect(await h.services.wallet.listEntries(stranger.principal, 0, "")).to.deep.equal({
      entries: [],
      nextPageToken: "",
    });
    for (const [size, pageToken] of [
      [501, ""],
      [-1, ""],
      [10, "%%%"],
      [10, Buffer.from('{"t":"x","id":1}').toString("base64url")],
    ] as const) {
      await expectDomainError(
        h.services.wallet.listEntries(caller.principal, size, pageToken),
        "invalid_argument",
        "INVALID_ARGUMENT",
      );
    }
  });

  it("applies concurrent recharges exactly, one wallet version each", async () => {
    const caller = await admit("burst");
    const amounts = Array.from({ length: 20 }, (_, i) => BigInt(1_000 + i));
    const results = await Promise.all(
      amounts.map((amount, i) => recharge(caller, amount, `burst-${i}`)),
    );
    const total = amounts.reduce((sum, amount) => sum + amount, 0n);
    expect((await h.services.wallet.get(caller.principal)).balance).to.equal(total);
    expect(results.map((r) => r.entry.walletVersion).sort((a, b) => a - b)).to.deep.equal(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    const rows = await ledgerOf(caller.principal.userId);
    expect(rows.map((row) => row.wallet_version)).to.deep.equal(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    // Each entry's balance_after is the running sum in version order.
    let running = 0n;
    for (const row of rows) {
      running += BigInt(row.amount);
      expect(row.balance_after).to.equal(String(running));
    }
  });

  it("has a database that refuses a second ledger row for one wallet version", async () => {
    const caller = await admit("dup");
    const { entry } = await recharge(caller, 300n, "dup-1");
    let refusal: unknown;
    try {
      await h.sql(
        `insert into ledger_entry (id, user_id, kind, amount, balance_after, wallet_version, created_at)
         values (gen_random_uuid(), $1, 'RECHARGE', 1, 301, $2, now())`,
        [caller.principal.userId, entry.walletVersion],
      );
    } catch (error) {
      refusal = error;
    }
    const dbError = refusal as pg.DatabaseError | undefined;
    expect([dbError?.code, dbError?.constraint]).to.deep.equal([
      "23505",
      "ledger_entry_user_id_wallet_version_key",
    ]);
    expect(await ledgerOf(caller.principal.userId)).to.have.length(1);
    expect(must(await walletRow(caller.principal.userId)).balance).to.equal("300");
  });

  // The first recharge creates and locks the wallet in one statement. When
  // another transaction inserts the same wallet while that statement runs,
  // the statement waits for it, and then either sees nothing under its
  // snapshot (the other committed) or creates the wallet itself (the other
  // rolled back). Both must end with exactly one wallet and one entry.
  for (const ending of ["commit", "rollback"] as const) {
    it(`creates the wallet once when another transaction inserts it at the same moment and ends with ${ending}`, async () => {
      const caller = await admit(`create-race-${ending}`);
      const userId = caller.principal.userId;
      const other = new pg.Client({ connectionString: h.database.url });
      await other.connect();
      try {
        await other.query("begin");
        await other.query(
          `insert into wallet (user_id, balance, version, created_at, updated_at)
           values ($1, 0, 0, $2, $2)`,
          [userId, new Date(h.clock.ms() - 1_000)],
        );
        const recharging = recharge(caller, 700n, `create-race-${ending}`);
        await h.untilAStatementWaitsForALock();
        await other.query(ending);
        const { wallet, entry } = await recharging;

        expect(wallet).to.deep.equal({
          userId,
          balance: 700n,
          version: 1,
          updatedAt: h.clock.now(),
        });
        expect(await walletRow(userId)).to.deep.equal({
          balance: "700",
          version: 1,
          updated_at: h.clock.now(),
        });
        expect((await ledgerOf(userId)).map((row) => [row.id, row.amount])).to.deep.equal([
          [entry.id, "700"],
        ]);
      } finally {
        await other.end();
      }
    });
  }

  it("waits for another change of the wallet to commit, then credits the balance it left", async () => {
    const caller = await admit("queued");
    const userId = caller.principal.userId;
    await recharge(caller, 5_000n, "queued-1");
    const other = new pg.Client({ connectionString: h.database.url });
    await other.connect();
    try {
      // Another change of the balance (a recharge written by hand) holds the row lock.
      await other.query("begin");
      await other.query(
        `with changed as (
           update wallet set balance = balance + 300, version = version + 1
            where user_id = $1 returning user_id, balance, version)
         insert into ledger_entry (id, user_id, kind, amount, balance_after, wallet_version, created_at)
         select gen_random_uuid(), user_id, 'RECHARGE', 300, balance, version, now() from changed`,
        [userId],
      );
      const recharging = recharge(caller, 700n, "queued-2");
      await h.untilAStatementWaitsForALock();
      await other.query("commit");
      const { wallet, entry } = await recharging;
      expect([wallet.balance, wallet.version]).to.deep.equal([6_000n, 3]);
      expect([entry.balanceAfter, entry.walletVersion]).to.deep.equal([6_000n, 3]);
    } finally {
      await other.end();
    }
  });
});
