import { expect } from "chai";
import { assertAdmitted } from "../../../server/src/modules/identity/principal.js";
import {
  HmacUserVerifier,
  signUserAssertion,
} from "../../../server/src/modules/identity/user-verifier.js";
import { MemorySeatGate } from "../../../server/src/modules/queue/memory-seat-gate.js";
import type { QueueStore } from "../../../server/src/modules/queue/queue-store.js";
import { DomainError } from "../../../server/src/shared/domain-error.js";
import {
  expectDomainError,
  expectRejectsDomain,
  expectThrowsDomain,
  must,
  rejectionOf,
} from "../unit-helpers.js";
import { CONCERT, OTHER_CONCERT, queueFixture, UNKNOWN_CONCERT } from "./queue-fixture.js";

describe("QueueService", () => {
  describe("issueToken", () => {
    it("refuses a bad user id before touching the store or the catalog", async () => {
      const f = queueFixture();
      for (const userId of ["", "x".repeat(129), "bad\nid"]) {
        const error = await expectRejectsDomain(
          f.queue.issueToken({ concertId: CONCERT, userId, assertion: undefined }),
          "invalid_argument",
          "INVALID_ARGUMENT",
        );
        expect(error.violations[0]?.field).to.equal("user_id");
      }
      expect(f.concerts.calls).to.deep.equal([]);
      expect(await f.store.concerts()).to.deep.equal([]);
    });

    it("refuses a concert id that is not a UUID", async () => {
      const f = queueFixture();
      for (const concertId of ["", "concert-1", CONCERT.toUpperCase()]) {
        const error = await expectRejectsDomain(
          f.queue.issueToken({ concertId, userId: "alice", assertion: undefined }),
          "invalid_argument",
          "INVALID_ARGUMENT",
        );
        expect(error.violations[0]?.field).to.equal("concert_id");
      }
      expect(f.concerts.calls).to.deep.equal([]);
    });

    it("refuses an unknown concert with CONCERT_NOT_FOUND and queues nobody", async () => {
      const f = queueFixture();
      const error = await expectRejectsDomain(
        f.issue("alice", UNKNOWN_CONCERT),
        "not_found",
        "CONCERT_NOT_FOUND",
      );
      expect(error.metadata).to.deep.equal({ concert_id: UNKNOWN_CONCERT });
      expect(await f.store.concerts()).to.deep.equal([]);
    });

    it("asks the verifier first, so an unproven caller learns nothing about concerts", async () => {
      const secret = "k".repeat(32);
      const f = queueFixture({ verifier: new HmacUserVerifier(secret) });
      await expectRejectsDomain(
        f.queue.issueToken({ concertId: UNKNOWN_CONCERT, userId: "alice", assertion: undefined }),
        "unauthenticated",
        "ASSERTION_INVALID",
      );
      expect(f.concerts.calls).to.deep.equal([]);
      const assertion = signUserAssertion(secret, "alice", new Date(f.clock.ms() + 60_000));
      const { status } = await f.queue.issueToken({
        concertId: CONCERT,
        userId: "alice",
        assertion,
      });
      expect(status.state).to.equal("admitted");
    });

    it("admits at once (position 0) when a slot is free and nobody waits", async () => {
      const f = queueFixture();
      const { token, status } = await f.issue("alice");
      expect(f.codec.isWellFormed(token)).to.equal(true);
      expect(status).to.deep.equal({
        concertId: CONCERT,
        state: "admitted",
        position: 0,
        waitingCount: 0,
        estimatedWaitMs: 0,
        expireTime: new Date(f.clock.ms() + f.limits.admissionTtlMs),
        opensAt: null,
        admissionPaused: false,
      });
    });

    it("puts users in line once every slot is taken", async () => {
      const f = queueFixture({ limits: { maxActive: 2 } });
      await f.issue("a1");
      await f.issue("a2");
      const third = await f.issue("w1");
      const fourth = await f.issue("w2");
      expect(third.status).to.deep.include({ state: "waiting", position: 1, waitingCount: 1 });
      expect(fourth.status).to.deep.include({ state: "waiting", position: 2, waitingCount: 2 });
    });

    it("returns the same token with its live position when issued again", async () => {
      const f = queueFixture({ limits: { maxActive: 1 } });
      const first = await f.issue("ann");
      await f.issue("bob");
      const carol = await f.issue("carol");
      expect(carol.status.position).to.equal(2);

      await f.queue.leave((await f.queue.authenticate((await f.issue("bob")).token)).principal);
      f.clock.advance(1000);
      const again = await f.issue("carol");
      expect(again.token).to.equal(carol.token);
      expect(again.status.position).to.equal(1);
      expect((await f.issue("ann")).token).to.equal(first.token);
    });

    it("keeps one line per concert", async () => {
      const f = queueFixture({ limits: { maxActive: 1 } });
      await f.issue("ann", CONCERT);
      const other = await f.issue("ann", OTHER_CONCERT);
      expect(other.status).to.deep.include({ concertId: OTHER_CONCERT, state: "admitted" });
      const session = await f.queue.authenticate(other.token);
      expect(session.principal.concertId).to.equal(OTHER_CONCERT);
    });

    it("puts a user whose admission ended at the back with a new token and revokes the old one", async () => {
      const f = queueFixture({ limits: { maxActive: 1 } });
      const ann = await f.issue("ann");
      await f.issue("bob");
      await f.queue.endAdmission((await f.queue.authenticate(ann.token)).principal);
      const again = await f.issue("ann");
      expect(again.token).not.to.equal(ann.token);
      expect(again.status).to.deep.include({ state: "waiting", position: 1 });
      await expectRejectsDomain(
        f.queue.authenticate(ann.token),
        "unauthenticated",
        "TOKEN_INVALID",
      );
    });
  });

  describe("a concert whose sale has ended", () => {
    it("issues no token for it (SALE_CLOSED), and still issues when the catalog cannot tell", async () => {
      const f = queueFixture();
      f.concerts.ended.add(CONCERT);
      await expectRejectsDomain(f.issue("late"), "failed_precondition", "SALE_CLOSED");
      f.concerts.ended.clear();
      f.concerts.saleEnded = () => Promise.reject(new Error("the catalog's database is down"));
      expect((await f.issue("anyway")).status.state).to.equal("admitted");
    });
  });

  describe("estimated wait", () => {
    it("is ceil(position * average admission / maxActive)", async () => {
      const f = queueFixture({ limits: { maxActive: 3, admissionTtlMs: 10_000 } });
      const admitted = [await f.issue("a1"), await f.issue("a2"), await f.issue("a3")];
      const w1 = await f.issue("w1");
      const w2 = await f.issue("w2");
      const w3 = await f.issue("w3");
      // No admission has ended yet, so the average is the admission TTL.
      expect(w1.status.estimatedWaitMs).to.equal(Math.ceil((1 * 10_000) / 3));
      expect(w1.status.estimatedWaitMs).to.equal(3334);
      expect(w2.status.estimatedWaitMs).to.equal(6667);
      expect(w3.status.estimatedWaitMs).to.equal(10_000);

      // An admission that ends after 4 s pulls the average down to 4 s.
      f.clock.advance(4000);
      const first = must(admitted[0]);
      await f.queue.endAdmission((await f.queue.authenticate(first.token)).principal);
      const w2Now = await f.queue.authenticate(w2.token);
      const w3Now = await f.queue.authenticate(w3.token);
      expect(w2Now.status).to.deep.include({ position: 1, estimatedWaitMs: 1334 });
      expect(w3Now.status).to.deep.include({ position: 2, estimatedWaitMs: 2667 });
    });
  });

  describe("authenticate", () => {
    it("refuses a missing token with TOKEN_MISSING", async () => {
      const f = queueFixture();
      await expectRejectsDomain(
        f.queue.authenticate(undefined),
        "unauthenticated",
        "TOKEN_MISSING",
      );
      await expectRejectsDomain(f.queue.authenticate(""), "unauthenticated", "TOKEN_MISSING");
    });

    it("refuses a malformed token with TOKEN_INVALID", async () => {
      const f = queueFixture();
      const { token } = await f.issue("alice");
      for (const bad of [
        "hello",
        `${token}x`,
        token.slice(0, -1),
        ` ${token}`,
        `Bearer ${token}`,
      ]) {
        await expectRejectsDomain(f.queue.authenticate(bad), "unauthenticated", "TOKEN_INVALID");
      }
    });

    it("refuses a well-formed token it never issued with TOKEN_INVALID", async () => {
      const f = queueFixture();
      await f.issue("alice");
      await expectRejectsDomain(
        f.queue.authenticate(`sdq_${"A".repeat(65)}`),
        "unauthenticated",
        "TOKEN_INVALID",
      );
      // A token minted for an id the store never saw is just as unknown.
      await expectRejectsDomain(
        f.queue.authenticate(f.codec.tokenFor(CONCERT, f.codec.newTokenId())),
        "unauthenticated",
        "TOKEN_INVALID",
      );
    });

    it("builds the admitted principal from the store, never from the request", async () => {
      const f = queueFixture();
      const { token } = await f.issue("alice");
      f.clock.advance(5000);
      const { principal, status } = await f.queue.authenticate(token);
      expect(principal.userId).to.equal("alice");
      expect(principal.concertId).to.equal(CONCERT);
      expect(principal.state).to.equal("admitted");
      expect(f.codec.tokenFor(CONCERT, principal.tokenId)).to.equal(token);
      expect(principal.admissionExpiresAt?.getTime()).to.equal(
        f.clock.ms() - 5000 + f.limits.admissionTtlMs,
      );
      expect(() => assertAdmitted(principal, f.clock.now(), CONCERT)).not.to.throw();
      expect(status.expireTime.getTime()).to.equal(principal.admissionExpiresAt?.getTime());
    });

    it("gives a waiting principal no admission end", async () => {
      const f = queueFixture({ limits: { maxActive: 1 } });
      await f.issue("ann");
      const bob = await f.issue("bob");
      const { principal } = await f.queue.authenticate(bob.token);
      expect(principal).to.deep.include({
        userId: "bob",
        state: "waiting",
        admissionExpiresAt: null,
      });
    });

    it("evicts a waiter who stays silent past the idle window (TOKEN_EXPIRED)", async () => {
      const f = queueFixture({ limits: { maxActive: 1 } });
      await f.issue("ann");
      const bob = await f.issue("bob");
      f.clock.advance(f.limits.idleMs + 1);
      const error = await expectRejectsDomain(
        f.queue.authenticate(bob.token),
        "unauthenticated",
        "TOKEN_EXPIRED",
      );
      expect(error.message).to.contain("idle");
    });

    it("keeps the place of a waiter who polls within the idle window", async () => {
      const f = queueFixture({ limits: { maxActive: 1 } });
      await f.issue("ann");
      const bob = await f.issue("bob");
      const carol = await f.issue("carol");
      for (let i = 0; i < 4; i++) {
        f.clock.advance(f.limits.idleMs - 1000);
        const session = await f.queue.authenticate(bob.token);
        expect(session.status).to.deep.include({ state: "waiting", position: 1 });
      }
      // Carol never polled, so she lost her place in the meantime.
      await expectRejectsDomain(
        f.queue.authenticate(carol.token),
        "unauthenticated",
        "TOKEN_EXPIRED",
      );
    });

    it("refuses a token after its user left (TOKEN_INVALID)", async () => {
      const f = queueFixture();
      const { token } = await f.issue("alice");
      await f.queue.leave((await f.queue.authenticate(token)).principal);
      await expectRejectsDomain(f.queue.authenticate(token), "unauthenticated", "TOKEN_INVALID");
    });

    it("refuses an admission past its absolute end (TOKEN_EXPIRED), however active the user was", async () => {
      const f = queueFixture();
      const admittedAt = f.clock.ms();
      const { token } = await f.issue("alice");
      for (let i = 0; i < 5; i++) {
        f.clock.advance(f.limits.admissionTtlMs / 6);
        await f.queue.authenticate(token);
      }
      f.clock.set(admittedAt + f.limits.admissionTtlMs);
      await expectRejectsDomain(f.queue.authenticate(token), "unauthenticated", "TOKEN_EXPIRED");
    });
  });

  describe("expireTime", () => {
    it("is the last activity plus the idle window while waiting", async () => {
      const f = queueFixture({ limits: { maxActive: 1 } });
      await f.issue("ann");
      const issuedAt = f.clock.ms();
      const bob = await f.issue("bob");
      expect(bob.status.expireTime.getTime()).to.equal(issuedAt + f.limits.idleMs);
      f.clock.advance(7000);
      const polled = await f.queue.authenticate(bob.token);
      expect(polled.status.expireTime.getTime()).to.equal(issuedAt + 7000 + f.limits.idleMs);
    });

    it("is the admission's fixed end once admitted, not moved by activity", async () => {
      const f = queueFixture();
      const admittedAt = f.clock.ms();
      const { token } = await f.issue("alice");
      f.clock.advance(7000);
      const { status } = await f.queue.authenticate(token);
      expect(status.expireTime.getTime()).to.equal(admittedAt + f.limits.admissionTtlMs);
    });
  });

  describe("leave, endAdmission and promoteAll", () => {
    it("leave frees the slot for the next user at once", async () => {
      const f = queueFixture({ limits: { maxActive: 1 } });
      const ann = await f.issue("ann");
      const bob = await f.issue("bob");
      expect((await f.queue.authenticate(bob.token)).status.state).to.equal("waiting");
      await f.queue.leave((await f.queue.authenticate(ann.token)).principal);
      const session = await f.queue.authenticate(bob.token);
      expect(session.status).to.deep.include({ state: "admitted", position: 0 });
    });

    it("an admission end that could not reach the store is retried by the admitter until it lands", async () => {
      let storeDown = false;
      const f = queueFixture({
        limits: { maxActive: 1 },
        store: (inner) =>
          new Proxy(inner, {
            get(target, property, receiver) {
              const value = Reflect.get(target, property, receiver);
              if (property !== "complete" || typeof value !== "function") {
                return typeof value === "function" ? value.bind(target) : value;
              }
              return (...args: Parameters<typeof inner.complete>) =>
                storeDown ? Promise.reject(new Error("ECONNREFUSED")) : inner.complete(...args);
            },
          }),
      });
      const ann = await f.issue("ann");
      const bob = await f.issue("bob");
      storeDown = true;
      const paid = (await f.queue.authenticate(ann.token)).principal;
      await expectRejectsDomain(f.queue.endAdmission(paid), "unavailable", "QUEUE_UNAVAILABLE");
      await f.queue.promoteAll().catch(() => undefined);
      expect((await f.queue.authenticate(bob.token)).status.state).to.equal("waiting");
      storeDown = false;
      await f.queue.promoteAll();
      expect((await f.queue.authenticate(ann.token)).status.state).to.equal("completed");
      expect((await f.queue.authenticate(bob.token)).status.state).to.equal("admitted");
    });

    it("leave from the line moves those behind up", async () => {
      const f = queueFixture({ limits: { maxActive: 1 } });
      await f.issue("ann");
      const bob = await f.issue("bob");
      const carol = await f.issue("carol");
      await f.queue.leave((await f.queue.authenticate(bob.token)).principal);
      expect((await f.queue.authenticate(carol.token)).status.position).to.equal(1);
    });

    it("endAdmission completes the token: it still authenticates, but no longer admits", async () => {
      const f = queueFixture({ limits: { maxActive: 1 } });
      const admittedAt = f.clock.ms();
      const ann = await f.issue("ann");
      const bob = await f.issue("bob");
      f.clock.advance(3000);
      await f.queue.endAdmission((await f.queue.authenticate(ann.token)).principal);

      const session = await f.queue.authenticate(ann.token);
      expect(session.principal.state).to.equal("completed");
      expect(session.status).to.deep.include({
        state: "completed",
        position: 0,
        estimatedWaitMs: 0,
      });
      expect(session.status.expireTime.getTime()).to.equal(admittedAt + f.limits.admissionTtlMs);
      expectThrowsDomain(
        () => assertAdmitted(session.principal, f.clock.now(), CONCERT),
        "permission_denied",
        "TOKEN_NOT_ADMITTED",
      );
      expect((await f.queue.authenticate(bob.token)).status.state).to.equal("admitted");

      // The completed token stops authenticating when the admission would have ended.
      f.clock.set(admittedAt + f.limits.admissionTtlMs);
      await expectRejectsDomain(
        f.queue.authenticate(ann.token),
        "unauthenticated",
        "TOKEN_EXPIRED",
      );
    });

    it("promoteAll fills slots freed by expired admissions, in every concert", async () => {
      const f = queueFixture({ limits: { maxActive: 1, admissionTtlMs: 20_000, idleMs: 30_000 } });
      await f.issue("ann", CONCERT);
      const bob = await f.issue("bob", CONCERT);
      await f.issue("ann", OTHER_CONCERT);
      const carol = await f.issue("carol", OTHER_CONCERT);
      expect(await f.queue.promoteAll()).to.equal(0);

      f.clock.advance(20_000);
      expect((await f.queue.authenticate(bob.token)).status.state).to.equal("waiting");
      expect(await f.queue.promoteAll()).to.equal(2);
      expect((await f.queue.authenticate(bob.token)).status.state).to.equal("admitted");
      expect((await f.queue.authenticate(carol.token)).status.state).to.equal("admitted");
      expect(await f.queue.promoteAll()).to.equal(0);
    });

    it("refresh reads the live status, and null once the record is gone", async () => {
      const f = queueFixture({ limits: { maxActive: 1, graceMs: 10_000 } });
      const ann = await f.issue("ann");
      const bob = await f.issue("bob");
      const bobSession = await f.queue.authenticate(bob.token);
      await f.queue.leave((await f.queue.authenticate(ann.token)).principal);
      const refreshed = must(await f.queue.refresh(bobSession.principal, false));
      expect(refreshed.status.state).to.equal("admitted");

      await f.queue.leave(bobSession.principal);
      f.clock.advance(10_000);
      expect(await f.queue.refresh(bobSession.principal, false)).to.equal(null);
    });
  });

  describe("when the store fails", () => {
    const failure = new Error("ECONNREFUSED 127.0.0.1:6379");
    const broken: QueueStore = {
      issue: () => Promise.reject(failure),
      lookup: () => Promise.reject(failure),
      lookupWithSeat: () => Promise.reject(failure),
      retire: () => Promise.reject(failure),
      seats: new MemorySeatGate(),
      snapshots: () => Promise.reject(failure),
      leave: () => Promise.reject(failure),
      complete: () => Promise.reject(failure),
      promote: () => Promise.reject(failure),
      concerts: () => Promise.reject(failure),
      versions: () => Promise.reject(failure),
      lineDigest: () => Promise.reject(failure),
      touchMany: () => Promise.reject(failure),
      configure: () => Promise.reject(failure),
      openingDraw: () => Promise.reject(failure),
      close: () => Promise.resolve(),
    };

    function expectUnavailable(error: unknown): void {
      const domainError = expectDomainError(error, "unavailable", "QUEUE_UNAVAILABLE");
      expect(domainError.retryAfterMs).to.equal(1000);
      expect(domainError.cause).to.equal(failure);
      expect(domainError.message).not.to.contain("ECONNREFUSED");
    }

    it("reports QUEUE_UNAVAILABLE with a retry hint from every call", async () => {
      const f = queueFixture({ store: () => broken });
      const principal = {
        userId: "alice",
        concertId: CONCERT,
        tokenId: "t",
        state: "waiting" as const,
        admissionExpiresAt: null,
      };
      expectUnavailable(await rejectionOf(f.issue("alice")));
      expectUnavailable(await rejectionOf(f.queue.authenticate(f.codec.tokenFor(CONCERT, "t"))));
      expectUnavailable(
        await rejectionOf(
          f.queue.authenticate(f.codec.tokenFor(CONCERT, "t"), { dateId: "d", seatId: "s" }),
        ),
      );
      expectUnavailable(await rejectionOf(f.queue.refresh(principal, true)));
      expectUnavailable(await rejectionOf(f.queue.leave(principal)));
      expectUnavailable(await rejectionOf(f.queue.endAdmission(principal)));
    });

    it("passes a store's own domain errors through unchanged", async () => {
      const own = new DomainError("aborted", "CONCURRENT_UPDATE", "retry");
      const f = queueFixture({ store: () => ({ ...broken, issue: () => Promise.reject(own) }) });
      expect(await rejectionOf(f.issue("alice"))).to.equal(own);
    });

    it("still checks the token's shape before asking the store", async () => {
      const f = queueFixture({ store: () => broken });
      await expectRejectsDomain(f.queue.authenticate("nope"), "unauthenticated", "TOKEN_INVALID");
      await expectRejectsDomain(
        f.queue.authenticate(undefined),
        "unauthenticated",
        "TOKEN_MISSING",
      );
    });
  });
});
