import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  createStagedoorClient,
  ErrorInfoSchema,
  ReservationState,
  retryDelay,
  SeatState,
  type StagedoorClient,
} from "@stagedoor/sdk";
import { expect } from "chai";
import { signUserAssertion } from "../../server/src/modules/identity/user-verifier.js";
import { bearer, clientFor, PROTOCOLS, type Protocol, transportFor } from "../support/clients.js";
import { FakeClock } from "../support/fake-clock.js";
import type { TestServer } from "../support/test-server.js";
import {
  expectRpcError,
  must,
  newRequestId,
  seatsOfDate,
  startRpcServer,
  uniqueUser,
} from "./rpc-kit.js";

const HOUR_MS = 3_600_000;
const SECRET = "rate-limit-test-secret-0123456789abcdef";
const NO_ADDRESS_LIMITS = {
  RATE_LIMIT_TOKEN_PER_ADDRESS: "off",
  RATE_LIMIT_HOLD_PER_ADDRESS: "off",
  RATE_LIMIT_PAYMENT_PER_ADDRESS: "off",
};
const NO_USER_LIMITS = {
  RATE_LIMIT_TOKEN_PER_USER: "off",
  RATE_LIMIT_HOLD_PER_USER: "off",
  RATE_LIMIT_PAYMENT_PER_USER: "off",
};

/** Asserts a RATE_LIMITED refusal of the given limit, with its RetryInfo; returns the delay (ms). */
async function expectRateLimited(
  call: Promise<unknown>,
  action: string,
  scope: "user" | "address",
): Promise<number> {
  const error = await expectRpcError(call, {
    code: Code.ResourceExhausted,
    reason: "RATE_LIMITED",
  });
  const info = must(error.findDetails(ErrorInfoSchema)[0], "ErrorInfo");
  expect(info.metadata).to.deep.equal({ action, scope });
  return must(retryDelay(error), "RetryInfo");
}

/** Sends `X-Forwarded-For: <address>` with every call. */
function forwardedFor(address: string): Interceptor {
  return (next) => (req) => {
    req.header.set("x-forwarded-for", address);
    return next(req);
  };
}

/**
 * Rate limits through Connect, gRPC and gRPC-Web: RESOURCE_EXHAUSTED with an
 * ErrorInfo RATE_LIMITED (naming the action and the limit) and a RetryInfo
 * saying when the next call is accepted; a refused call does nothing. The
 * servers run on a fake clock, so buckets refill only when a test says so.
 */
describe("rate limits over RPC", () => {
  describe("per user (HMAC identities)", () => {
    let server: TestServer;
    const clock = new FakeClock(Date.now());

    before(async () => {
      server = await startRpcServer({
        clock,
        env: {
          AUTH_MODE: "hmac",
          AUTH_HMAC_SECRET: SECRET,
          TOKEN_TTL_SECONDS: "86400",
          HOLD_TTL_SECONDS: "3600",
          RATE_LIMIT_TOKEN_PER_USER: "2,1/h",
          RATE_LIMIT_HOLD_PER_USER: "2,1/h",
          RATE_LIMIT_PAYMENT_PER_USER: "3,2/h",
          ...NO_ADDRESS_LIMITS,
        },
      });
    });
    after(async () => {
      await server?.stop();
    });

    /** Issues a token for `userId` with a valid assertion, over `protocol`. */
    function issue(protocol: Protocol, userId: string) {
      const assertion = signUserAssertion(SECRET, userId, new Date(clock.ms() + 300_000));
      return clientFor(protocol, server.url, assertion).queue.issueQueueToken({
        concertId: server.concertId,
        userId,
      });
    }

    it("answers Connect's JSON protocol with HTTP 429 and the details in the body", async () => {
      const userId = uniqueUser("token-raw");
      const assertion = signUserAssertion(SECRET, userId, new Date(clock.ms() + 300_000));
      const post = () =>
        fetch(`${server.url}/stagedoor.queue.v1.QueueService/IssueQueueToken`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${assertion}` },
          body: JSON.stringify({ concertId: server.concertId, userId }),
        });
      expect((await post()).status).to.equal(200);
      expect((await post()).status).to.equal(200);
      const refused = await post();
      expect(refused.status).to.equal(429);
      const body = (await refused.json()) as { code: string; details: { type: string }[] };
      expect(body.code).to.equal("resource_exhausted");
      expect(body.details.map((d) => d.type)).to.include.members([
        "google.rpc.ErrorInfo",
        "google.rpc.RetryInfo",
      ]);
    });

    for (const [index, protocol] of PROTOCOLS.entries()) {
      describe(`over ${protocol}`, () => {
        const anonymous = () => clientFor(protocol, server.url);
        const as = (token: string) => clientFor(protocol, server.url, token);

        it("IssueQueueToken: a user's third request within the hour is refused, then allowed again", async () => {
          const userId = uniqueUser(`token-${protocol}`);
          const first = await issue(protocol, userId);
          expect((await issue(protocol, userId)).token).to.equal(first.token);
          expect(await expectRateLimited(issue(protocol, userId), "token", "user")).to.equal(
            HOUR_MS,
          );
          clock.advance(HOUR_MS / 2);
          expect(await expectRateLimited(issue(protocol, userId), "token", "user")).to.equal(
            HOUR_MS / 2,
          );
          clock.advance(HOUR_MS / 2);
          expect((await issue(protocol, userId)).token).to.equal(first.token);
        });

        it("CreateSession: a user's third session within the hour is refused; token issue keeps its own budget", async () => {
          const userId = uniqueUser(`session-${protocol}`);
          const assertion = signUserAssertion(SECRET, userId, new Date(clock.ms() + 300_000));
          const open = () => as(assertion).ticket.createSession({ userId });
          await open();
          await open();
          expect(await expectRateLimited(open(), "token", "user")).to.equal(HOUR_MS);
          // Sessions are counted apart from any concert's line.
          await issue(protocol, userId);
        });

        it("IssueQueueToken: requests that do not prove the user never spend that user's budget", async () => {
          const victim = uniqueUser(`victim-${protocol}`);
          const forged = clientFor(protocol, server.url, "v1.forged.1.x").queue;
          for (let i = 0; i < 4; i++) {
            await expectRpcError(
              forged.issueQueueToken({ concertId: server.concertId, userId: victim }),
              { code: Code.Unauthenticated, reason: "ASSERTION_INVALID" },
            );
          }
          await issue(protocol, victim);
          await issue(protocol, victim);
        });

        it("HoldSeat: refused past the user's budget with nothing held; other users unaffected", async () => {
          const ann = await issue(protocol, uniqueUser(`hold-${protocol}`));
          const bob = await issue(protocol, uniqueUser(`hold-other-${protocol}`));
          const { seats } = await seatsOfDate(anonymous(), server.concertId, index);
          const [s1, s2, s3] = [1, 2, 3].map((n) => must(seats.get(n), `seat ${n}`));
          const me = as(ann.token);
          const held = must(
            (await me.reservation.holdSeat({ seatId: must(s1).id, requestId: newRequestId() }))
              .reservation,
          );
          await me.reservation.releaseReservation({
            reservationId: held.id,
            requestId: newRequestId(),
          });
          await me.reservation.holdSeat({ seatId: must(s2).id, requestId: newRequestId() });
          const s2held = (await me.reservation.listReservations({})).reservations.find(
            (r) => r.state === ReservationState.HELD,
          );
          await me.reservation.releaseReservation({
            reservationId: must(s2held).id,
            requestId: newRequestId(),
          });

          const delay = await expectRateLimited(
            me.reservation.holdSeat({ seatId: must(s3).id, requestId: newRequestId() }),
            "hold",
            "user",
          );
          expect(delay).to.equal(HOUR_MS);
          // Nothing happened: the seat is free and the user holds nothing.
          expect((await anonymous().catalog.getSeat({ seatId: must(s3).id })).seat?.state).to.equal(
            SeatState.AVAILABLE,
          );
          const mine = (await me.reservation.listReservations({})).reservations;
          expect(mine.filter((r) => r.state === ReservationState.HELD)).to.have.length(0);
          // Another user's budget is their own.
          const other = await as(bob.token).reservation.holdSeat({
            seatId: must(s3).id,
            requestId: newRequestId(),
          });
          expect(other.reservation?.state).to.equal(ReservationState.HELD);
        });

        it("RechargeWallet and CreatePayment share the payment budget; a refusal moves no money", async () => {
          const ann = await issue(protocol, uniqueUser(`pay-${protocol}`));
          const me = as(ann.token);
          const { seats } = await seatsOfDate(anonymous(), server.concertId, index);
          const seat = must(seats.get(40), "seat 40");
          const held = must(
            (await me.reservation.holdSeat({ seatId: seat.id, requestId: newRequestId() }))
              .reservation,
          );
          for (let i = 0; i < 3; i++) {
            await me.wallet.rechargeWallet({ amount: 30_000n, requestId: newRequestId() });
          }
          // One more every 30 minutes (within the hour-long hold).
          const delay = await expectRateLimited(
            me.wallet.rechargeWallet({ amount: 30_000n, requestId: newRequestId() }),
            "payment",
            "user",
          );
          expect(delay).to.equal(HOUR_MS / 2);
          await expectRateLimited(
            me.payment.createPayment({
              reservationId: held.id,
              amount: held.price,
              requestId: newRequestId(),
            }),
            "payment",
            "user",
          );
          const { wallet } = await me.wallet.getWallet({});
          expect(wallet?.balance).to.equal(90_000n);
          expect((await me.wallet.listLedgerEntries({})).entries).to.have.length(3);
          const still = await me.reservation.getReservation({ reservationId: held.id });
          expect(still.reservation?.state).to.equal(ReservationState.HELD);

          clock.advance(HOUR_MS / 2);
          const paid = await me.payment.createPayment({
            reservationId: held.id,
            amount: held.price,
            requestId: newRequestId(),
          });
          expect(paid.reservation?.state).to.equal(ReservationState.CONFIRMED);
          expect((await me.wallet.getWallet({})).wallet?.balance).to.equal(90_000n - held.price);
        });
      });
    }
  });

  describe("per client address, behind a trusted proxy (X-Forwarded-For)", () => {
    let server: TestServer;

    before(async () => {
      server = await startRpcServer({
        clock: new FakeClock(Date.now()),
        env: {
          QUEUE_MAX_ACTIVE: "1",
          TOKEN_TTL_SECONDS: "86400",
          QUEUE_IDLE_SECONDS: "3600",
          TRUSTED_PROXIES: "127.0.0.1, ::1",
          RATE_LIMIT_TOKEN_PER_ADDRESS: "2,1/h",
          ...NO_USER_LIMITS,
        },
      });
    });
    after(async () => {
      await server?.stop();
    });

    for (const [index, protocol] of PROTOCOLS.entries()) {
      it(`over ${protocol}: a refused IssueQueueToken takes no place in line`, async () => {
        const from = (address: string): StagedoorClient =>
          createStagedoorClient(transportFor(protocol, server.url, [forwardedFor(address)]));
        const a = from(`203.0.113.${index * 2 + 1}`);
        const b = from(`203.0.113.${index * 2 + 2}`);
        const join = (client: StagedoorClient, userId: string) =>
          client.queue.issueQueueToken({ concertId: server.concertId, userId });
        const zed = uniqueUser(`zed-${protocol}`);

        await join(a, uniqueUser("first"));
        const second = await join(a, uniqueUser("second"));
        await expectRateLimited(join(a, zed), "token", "address");
        // From another address, the same user joins behind someone who came after the refusal.
        const third = await join(b, uniqueUser("third"));
        const late = await join(b, zed);
        expect(must(late.status).position).to.equal(must(third.status).position + 1n);
        expect(must(third.status).position).to.equal(must(second.status).position + 1n);
      });
    }
  });

  describe("per client address, without trusted proxies", () => {
    let server: TestServer;

    before(async () => {
      server = await startRpcServer({
        clock: new FakeClock(Date.now()),
        env: { RATE_LIMIT_HOLD_PER_ADDRESS: "3,1/h", ...NO_USER_LIMITS },
      });
    });
    after(async () => {
      await server?.stop();
    });

    it("ignores X-Forwarded-For: a client cannot spread its calls over made-up addresses", async () => {
      const { seats } = await seatsOfDate(clientFor("connect", server.url), server.concertId, 0);
      const seat = must(seats.get(5), "seat 5");
      const tokens: string[] = [];
      for (let i = 0; i < 4; i++) {
        const { token } = await clientFor("connect", server.url).queue.issueQueueToken({
          concertId: server.concertId,
          userId: uniqueUser("spoofer"),
        });
        tokens.push(token);
      }
      const holdFrom = (i: number) =>
        createStagedoorClient(
          transportFor("grpc", server.url, [
            bearer(must(tokens[i])),
            forwardedFor(`198.51.100.${i + 1}`),
          ]),
        ).reservation.holdSeat({ seatId: seat.id, requestId: newRequestId() });
      // One hold wins the seat, the next two are refused as taken; all three count.
      const outcomes = [];
      for (let i = 0; i < 3; i++) {
        outcomes.push(
          await holdFrom(i).then(
            () => "held",
            (e) => ConnectError.from(e).code,
          ),
        );
      }
      expect(outcomes).to.deep.equal(["held", Code.FailedPrecondition, Code.FailedPrecondition]);
      await expectRateLimited(holdFrom(3), "hold", "address");
    });
  });
});
