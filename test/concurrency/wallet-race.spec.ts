import { randomInt } from "node:crypto";
import { LedgerEntryKind } from "@stagedoor/sdk";
import { expect } from "chai";
import {
  admitUser,
  describeError,
  must,
  NO_USER_RATE_LIMITS,
  partition,
  RACE_PROTOCOLS,
  raceSuite,
  requestId,
} from "./race-support.js";

describe("concurrency: wallet recharges", () => {
  const race = raceSuite({ env: NO_USER_RATE_LIMITS });

  async function ledgerOf(userId: string) {
    const entries = await race.db.query<{ amount: string; kind: string; wallet_version: number }>(
      `select amount::text as amount, kind, wallet_version from ledger_entry
        where user_id = $1 order by wallet_version`,
      [userId],
    );
    const [wallet] = await race.db.query<{ balance: string; version: number }>(
      "select balance::text as balance, version from wallet where user_id = $1",
      [userId],
    );
    return { entries, wallet: must(wallet, `wallet of ${userId}`) };
  }

  for (const protocol of RACE_PROTOCOLS) {
    it(`100 concurrent recharges of varied amounts over ${protocol} add up exactly`, async () => {
      const user = await admitUser(race.server, protocol, `recharge-${protocol}`);
      // Varied amounts, so a lost or doubled update shows in the total.
      const amounts = Array.from({ length: 100 }, () => BigInt(randomInt(1, 1_000_000)));

      const results = await Promise.allSettled(
        amounts.map((amount) =>
          user.client.wallet.rechargeWallet({ amount, requestId: requestId() }),
        ),
      );

      const { fulfilled, rejected } = partition(results);
      expect(rejected.map(describeError), "failed recharges").to.deep.equal([]);
      const total = amounts.reduce((sum, amount) => sum + amount, 0n);
      // Each response reports the balance right after its own recharge. The
      // recharges ran one after another, so the reported balances, sorted,
      // step up by exactly the amounts, ending at the total.
      const after = fulfilled.map((res) => must(res.wallet, "wallet").balance).sort(compareBigInt);
      const steps = after.map((balance, i) => balance - (i === 0 ? 0n : must(after[i - 1])));
      expect(steps.sort(compareBigInt)).to.deep.equal([...amounts].sort(compareBigInt));
      expect(after.at(-1)).to.equal(total);

      const { entries, wallet } = await ledgerOf(user.userId);
      expect(entries).to.have.length(100);
      expect(entries.every((e) => e.kind === "RECHARGE")).to.equal(true);
      expect(entries.map((e) => BigInt(e.amount)).sort(compareBigInt)).to.deep.equal(
        [...amounts].sort(compareBigInt),
      );
      expect(BigInt(wallet.balance)).to.equal(total);
      expect(wallet.version).to.equal(100);

      const { wallet: read } = await user.client.wallet.getWallet({});
      expect(read?.balance).to.equal(total);
    });

    it(`20 concurrent recharges sharing one request id over ${protocol} add once`, async () => {
      const user = await admitUser(race.server, protocol, `recharge-once-${protocol}`);
      const shared = requestId();
      const amount = 12_345n;

      const results = await Promise.allSettled(
        Array.from({ length: 20 }, () =>
          user.client.wallet.rechargeWallet({ amount, requestId: shared }),
        ),
      );

      const { fulfilled, rejected } = partition(results);
      expect(rejected.map(describeError), "failed replays").to.deep.equal([]);
      const entryIds = new Set(fulfilled.map((res) => must(res.entry, "entry").id));
      expect(entryIds.size, "distinct ledger entries returned").to.equal(1);
      for (const res of fulfilled) {
        expect(res.wallet?.balance).to.equal(amount);
        expect(res.entry?.kind).to.equal(LedgerEntryKind.RECHARGE);
      }

      const { entries, wallet } = await ledgerOf(user.userId);
      expect(entries).to.deep.equal([
        { amount: String(amount), kind: "RECHARGE", wallet_version: 1 },
      ]);
      expect(wallet).to.deep.equal({ balance: String(amount), version: 1 });
    });
  }
});

function compareBigInt(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
