import { expect } from "chai";
import {
  HmacUserVerifier,
  signUserAssertion,
  TrustUserVerifier,
} from "../../../server/src/modules/identity/user-verifier.js";
import { FakeClock } from "../../support/fake-clock.js";
import { expectThrowsDomain } from "../unit-helpers.js";

const SECRET = "0123456789abcdef0123456789abcdef-hmac-test-secret";
const MINUTE = 60_000;

describe("user verifiers", () => {
  let clock: FakeClock;
  let verifier: HmacUserVerifier;

  beforeEach(() => {
    clock = new FakeClock();
    verifier = new HmacUserVerifier(SECRET);
  });

  function sign(userId: string, lifetimeMs = 5 * MINUTE, secret = SECRET): string {
    return signUserAssertion(secret, userId, new Date(clock.ms() + lifetimeMs));
  }

  function expectRefused(userId: string, assertion: string | undefined, why: RegExp): void {
    const error = expectThrowsDomain(
      () => verifier.verify(userId, assertion, clock.now()),
      "unauthenticated",
      "ASSERTION_INVALID",
    );
    expect(error.message).to.match(why);
  }

  /** Swaps one part of a `v1.user.expiry.signature` assertion. */
  function withPart(assertion: string, index: number, value: string): string {
    const parts = assertion.split(".");
    parts[index] = value;
    return parts.join(".");
  }

  describe("HmacUserVerifier", () => {
    it("accepts a valid assertion for the user", () => {
      const assertion = sign("alice");
      expect(assertion).to.match(/^v1\.[A-Za-z0-9_-]+\.\d+\.[A-Za-z0-9_-]{43}$/);
      expect(() => verifier.verify("alice", assertion, clock.now())).not.to.throw();
    });

    it("accepts multi-byte user ids and ids containing dots", () => {
      for (const userId of ["사용자-😀", "first.last@example.com"]) {
        expect(() => verifier.verify(userId, sign(userId), clock.now())).not.to.throw();
      }
    });

    it("refuses a missing or empty assertion", () => {
      expectRefused("alice", undefined, /missing/);
      expectRefused("alice", "", /missing/);
    });

    it("refuses an assertion signed with another secret", () => {
      expectRefused("alice", sign("alice", 5 * MINUTE, `${SECRET}-other`), /signature/);
    });

    it("refuses a tampered user", () => {
      const forged = withPart(sign("alice"), 1, Buffer.from("mallory").toString("base64url"));
      expectRefused("mallory", forged, /signature/);
    });

    it("refuses a tampered expiry", () => {
      const assertion = sign("alice", MINUTE);
      const expires = Number(assertion.split(".")[2]);
      expectRefused("alice", withPart(assertion, 2, String(expires + 60)), /signature/);
    });

    it("refuses a tampered signature", () => {
      const assertion = sign("alice");
      const signature = assertion.split(".")[3] ?? "";
      const flipped = (signature[0] === "A" ? "B" : "A") + signature.slice(1);
      expectRefused("alice", withPart(assertion, 3, flipped), /signature/);
      expectRefused("alice", withPart(assertion, 3, signature.slice(0, 20)), /signature/);
      expectRefused("alice", withPart(assertion, 3, ""), /signature/);
    });

    it("refuses an assertion once it has expired", () => {
      const assertion = sign("alice", MINUTE);
      clock.advance(MINUTE - 1000);
      expect(() => verifier.verify("alice", assertion, clock.now())).not.to.throw();
      clock.advance(1000);
      expectRefused("alice", assertion, /expired/);
    });

    it("refuses an assertion that lives longer than an hour", () => {
      expect(() =>
        verifier.verify("alice", sign("alice", 60 * MINUTE), clock.now()),
      ).not.to.throw();
      expectRefused("alice", sign("alice", 60 * MINUTE + 1000), /too long/);
      expectRefused("alice", sign("alice", 24 * 60 * MINUTE), /too long/);
    });

    it("refuses another user's valid assertion with USER_MISMATCH permission_denied", () => {
      const error = expectThrowsDomain(
        () => verifier.verify("bob", sign("alice"), clock.now()),
        "permission_denied",
        "USER_MISMATCH",
      );
      expect(error.message).to.contain("another user");
    });

    it("does not treat a user id prefix as a match", () => {
      expectThrowsDomain(
        () => verifier.verify("alice", sign("alice2"), clock.now()),
        "permission_denied",
        "USER_MISMATCH",
      );
    });

    const malformed: [string, (good: string) => string][] = [
      ["a random string", () => "hello"],
      ["a queue token", () => `sdq_${"A".repeat(65)}`],
      ["another version", (good) => withPart(good, 0, "v2")],
      ["three parts", (good) => good.split(".").slice(0, 3).join(".")],
      ["five parts", (good) => `${good}.extra`],
      ["a non-numeric expiry", (good) => withPart(good, 2, "soon")],
      ["a negative expiry", (good) => withPart(good, 2, "-1")],
      ["a fractional expiry", (good) => withPart(good, 2, "1.5")],
      ["a 13-digit expiry", (good) => withPart(good, 2, "1".repeat(13))],
      ["only dots", () => "..."],
    ];
    for (const [name, make] of malformed) {
      it(`refuses ${name} as malformed, without throwing anything else`, () => {
        expectRefused("alice", make(sign("alice")), /malformed|signature/);
      });
    }
  });

  describe("TrustUserVerifier", () => {
    it("accepts any user with or without an assertion", () => {
      const trust = new TrustUserVerifier();
      expect(() => trust.verify()).not.to.throw();
      // Called the way the queue service calls any verifier.
      const asVerifier: { verify(u: string, a: string | undefined, n: Date): void } = trust;
      expect(() => asVerifier.verify("anyone", undefined, clock.now())).not.to.throw();
      expect(() => asVerifier.verify("anyone", "garbage", clock.now())).not.to.throw();
    });
  });
});
