import { expect } from "chai";
import { Wallet } from "../../../server/src/modules/wallet/wallet.entity.js";
import { FakeClock } from "../../support/fake-clock.js";
import { expectThrowsDomain } from "../unit-helpers.js";

const MAX_BALANCE = 1_000_000_000_000n;

describe("Wallet entity", () => {
  let clock: FakeClock;

  beforeEach(() => {
    clock = new FakeClock();
  });

  function newWallet(): Wallet {
    return new Wallet("alice", clock.now(), clock.now());
  }

  describe("credit", () => {
    it("adds the amount, bumps the version and stamps the update", () => {
      const wallet = newWallet();
      clock.advance(1000);
      wallet.credit(150_000n, MAX_BALANCE, clock.now());
      expect(wallet.balance).to.equal(150_000n);
      expect(wallet.version).to.equal(1);
      expect(wallet.updatedAt.getTime()).to.equal(clock.ms());
      wallet.credit(1n, MAX_BALANCE, clock.now());
      expect(wallet.balance).to.equal(150_001n);
      expect(wallet.version).to.equal(2);
    });

    it("allows reaching the limit exactly", () => {
      const wallet = newWallet();
      wallet.credit(MAX_BALANCE - 1n, MAX_BALANCE, clock.now());
      wallet.credit(1n, MAX_BALANCE, clock.now());
      expect(wallet.balance).to.equal(MAX_BALANCE);
    });

    it("refuses to cross the limit with BALANCE_LIMIT_REACHED and changes nothing", () => {
      const wallet = newWallet();
      wallet.credit(900n, 1000n, clock.now());
      const updatedAt = wallet.updatedAt.getTime();
      clock.advance(1000);
      const error = expectThrowsDomain(
        () => wallet.credit(101n, 1000n, clock.now()),
        "resource_exhausted",
        "BALANCE_LIMIT_REACHED",
      );
      expect(error.metadata).to.deep.equal({ max_balance: "1000" });
      expect(wallet.balance).to.equal(900n);
      expect(wallet.version).to.equal(1);
      expect(wallet.updatedAt.getTime()).to.equal(updatedAt);
    });

    it("refuses zero and negative amounts as programming errors", () => {
      const wallet = newWallet();
      expect(() => wallet.credit(0n, MAX_BALANCE, clock.now())).to.throw(RangeError);
      expect(() => wallet.credit(-5n, MAX_BALANCE, clock.now())).to.throw(RangeError);
      expect(wallet.balance).to.equal(0n);
      expect(wallet.version).to.equal(0);
    });

    it("stays exact beyond the range of doubles", () => {
      const wallet = newWallet();
      const huge = 2n ** 62n;
      wallet.credit(huge, 2n ** 63n, clock.now());
      wallet.credit(1n, 2n ** 63n, clock.now());
      // As a double, 2^62 + 1 would round back to 2^62.
      expect(wallet.balance).to.equal(4_611_686_018_427_387_905n);
      expect(typeof wallet.balance).to.equal("bigint");
    });
  });

  describe("debit", () => {
    it("takes the amount, bumps the version and stamps the update", () => {
      const wallet = newWallet();
      wallet.credit(200_000n, MAX_BALANCE, clock.now());
      clock.advance(1000);
      wallet.debit(150_000n, clock.now());
      expect(wallet.balance).to.equal(50_000n);
      expect(wallet.version).to.equal(2);
      expect(wallet.updatedAt.getTime()).to.equal(clock.ms());
    });

    it("may empty the wallet exactly", () => {
      const wallet = newWallet();
      wallet.credit(80_000n, MAX_BALANCE, clock.now());
      wallet.debit(80_000n, clock.now());
      expect(wallet.balance).to.equal(0n);
    });

    it("refuses to go below zero with INSUFFICIENT_BALANCE and changes nothing", () => {
      const wallet = newWallet();
      wallet.credit(79_999n, MAX_BALANCE, clock.now());
      const error = expectThrowsDomain(
        () => wallet.debit(80_000n, clock.now()),
        "failed_precondition",
        "INSUFFICIENT_BALANCE",
      );
      expect(error.metadata).to.deep.equal({ balance: "79999", amount: "80000" });
      expect(wallet.balance).to.equal(79_999n);
      expect(wallet.version).to.equal(1);
    });

    it("refuses any debit from an empty wallet", () => {
      const wallet = newWallet();
      expectThrowsDomain(
        () => wallet.debit(1n, clock.now()),
        "failed_precondition",
        "INSUFFICIENT_BALANCE",
      );
      expect(wallet.version).to.equal(0);
    });

    it("refuses zero and negative amounts as programming errors", () => {
      const wallet = newWallet();
      wallet.credit(10n, MAX_BALANCE, clock.now());
      expect(() => wallet.debit(0n, clock.now())).to.throw(RangeError);
      expect(() => wallet.debit(-1n, clock.now())).to.throw(RangeError);
      expect(wallet.balance).to.equal(10n);
    });

    it("is exact on large balances", () => {
      const wallet = newWallet();
      wallet.credit(9_007_199_254_740_993n, 2n ** 63n, clock.now());
      wallet.debit(1n, clock.now());
      expect(wallet.balance).to.equal(9_007_199_254_740_992n);
    });
  });
});
