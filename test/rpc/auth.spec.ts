import { randomUUID } from "node:crypto";
import { Code, type Interceptor } from "@connectrpc/connect";
import {
  createStagedoorClient,
  QueueTokenState,
  type Reservation,
  ReservationState,
  SeatState,
  type StagedoorClient,
} from "@stagedoor/sdk";
import { expect } from "chai";
import { signUserAssertion } from "../../server/src/modules/identity/user-verifier.js";
import { clientFor, PROTOCOLS, type Protocol, transportFor } from "../support/clients.js";
import type { TestServer } from "../support/test-server.js";
import {
  admittedUser,
  expectRpcError,
  must,
  newRequestId,
  seatsOfDate,
  startRpcServer,
  uniqueUser,
} from "./rpc-kit.js";

/** Reads a server stream to its end, so its error (if any) surfaces. */
async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _message of stream) {
    // Only the outcome matters.
  }
}

/** What the non-public calls below act on: real ids, so only the credential is wrong. */
interface Targets {
  readonly seatId: string;
  readonly reservationId: string;
}

/** Every RPC that needs a queue token. */
const PRIVATE_CALLS: [string, (c: StagedoorClient, t: Targets) => Promise<unknown>][] = [
  ["QueueService.GetQueueStatus", (c) => c.queue.getQueueStatus({})],
  ["QueueService.WatchQueueStatus", (c) => drain(c.queue.watchQueueStatus({}))],
  ["QueueService.LeaveQueue", (c) => c.queue.leaveQueue({})],
  [
    "ReservationService.HoldSeat",
    (c, t) => c.reservation.holdSeat({ seatId: t.seatId, requestId: newRequestId() }),
  ],
  [
    "ReservationService.GetReservation",
    (c, t) => c.reservation.getReservation({ reservationId: t.reservationId }),
  ],
  [
    "ReservationService.ReleaseReservation",
    (c, t) =>
      c.reservation.releaseReservation({
        reservationId: t.reservationId,
        requestId: newRequestId(),
      }),
  ],
  ["ReservationService.ListReservations", (c) => c.reservation.listReservations({})],
  [
    "WalletService.RechargeWallet",
    (c) => c.wallet.rechargeWallet({ amount: 1_000n, requestId: newRequestId() }),
  ],
  ["WalletService.GetWallet", (c) => c.wallet.getWallet({})],
  ["WalletService.ListLedgerEntries", (c) => c.wallet.listLedgerEntries({})],
  [
    "PaymentService.CreatePayment",
    (c, t) =>
      c.payment.createPayment({
        reservationId: t.reservationId,
        amount: 150_000n,
        requestId: newRequestId(),
      }),
  ],
  ["PaymentService.GetPayment", (c) => c.payment.getPayment({ paymentId: randomUUID() })],
];

/** A well-formed token (right prefix and length) that the server never issued. */
const UNKNOWN_TOKEN = `sdq_${"A".repeat(65)}`;

describe("authentication and authorization", () => {
  describe("queue tokens (AUTH_MODE=trust)", () => {
    let server: TestServer;

    before(async () => {
      server = await startRpcServer();
    });

    after(async () => {
      await server?.stop();
    });

    for (const [dateIndex, protocol] of PROTOCOLS.entries()) {
      describe(`over ${protocol}`, () => {
        let anonymous: StagedoorClient;
        let owner: { userId: string; token: string };
        let ownerHold: Reservation;
        let leftToken: string;
        let seats: Map<number, { id: string }>;

        before(async () => {
          anonymous = clientFor(protocol, server.url);
          ({ seats } = await seatsOfDate(anonymous, server.concertId, dateIndex));
          owner = await admittedUser(anonymous, server.concertId, `owner-${protocol}`);
          ownerHold = must(
            (
              await clientFor(protocol, server.url, owner.token).reservation.holdSeat({
                seatId: must(seats.get(1)).id,
                requestId: newRequestId(),
              })
            ).reservation,
          );
          const leaver = await admittedUser(anonymous, server.concertId, `leaver-${protocol}`);
          await clientFor(protocol, server.url, leaver.token).queue.leaveQueue({});
          leftToken = leaver.token;
        });

        /** The owner's hold and admission survive every refused call. */
        async function expectOwnerUntouched(): Promise<void> {
          const ownerApi = clientFor("connect", server.url, owner.token);
          const { reservation } = await ownerApi.reservation.getReservation({
            reservationId: ownerHold.id,
          });
          expect(reservation?.state).to.equal(ReservationState.HELD);
          const { status } = await ownerApi.queue.getQueueStatus({});
          expect(status?.state).to.equal(QueueTokenState.ADMITTED);
          const free = must(seats.get(2)).id;
          expect((await anonymous.catalog.getSeat({ seatId: free })).seat?.state).to.equal(
            SeatState.AVAILABLE,
          );
        }

        for (const [rpc, call] of PRIVATE_CALLS) {
          it(`${rpc} refuses a missing, malformed, unknown or left token`, async () => {
            const targets = { seatId: must(seats.get(2)).id, reservationId: ownerHold.id };
            const unauthenticated = (reason: string) => ({ code: Code.Unauthenticated, reason });
            await expectRpcError(call(anonymous, targets), unauthenticated("TOKEN_MISSING"));
            // The Basic scheme carries no bearer token at all.
            const basic = withAuthorization(protocol, server.url, "Basic dXNlcjpwYXNz");
            await expectRpcError(call(basic, targets), unauthenticated("TOKEN_MISSING"));
            for (const token of ["garbage", UNKNOWN_TOKEN, `${owner.token}x`, leftToken]) {
              await expectRpcError(
                call(clientFor(protocol, server.url, token), targets),
                unauthenticated("TOKEN_INVALID"),
              );
            }
            await expectOwnerUntouched();
          });
        }

        it("serves the catalog and IssueQueueToken without a token", async () => {
          const { concerts } = await anonymous.catalog.listConcerts({});
          expect(concerts.map((c) => c.id)).to.deep.equal([server.concertId]);
          const { dates } = await anonymous.catalog.listConcertDates({
            concertId: server.concertId,
          });
          const date = must(dates[dateIndex]);
          const { seats: free } = await anonymous.catalog.listAvailableSeats({
            concertDateId: date.id,
          });
          expect(free.length).to.be.greaterThan(0);
          const { seat } = await anonymous.catalog.getSeat({ seatId: must(free[0]).id });
          expect(seat?.id).to.equal(must(free[0]).id);
          const issued = await anonymous.queue.issueQueueToken({
            concertId: server.concertId,
            userId: uniqueUser(`public-${protocol}`),
          });
          expect(issued.token).to.match(/^sdq_/);
        });

        it("keeps users apart: A never reads B's reservation or payment, nor touches B's wallet", async () => {
          const a = await admittedUser(anonymous, server.concertId, `alice-${protocol}`);
          const b = await admittedUser(anonymous, server.concertId, `bob-${protocol}`);
          const c = await admittedUser(anonymous, server.concertId, `carol-${protocol}`);
          const asA = clientFor(protocol, server.url, a.token);
          const asB = clientFor(protocol, server.url, b.token);
          const asC = clientFor(protocol, server.url, c.token);

          // B buys seat 3; C holds seat 4; A only recharges.
          const bHold = must(
            (
              await asB.reservation.holdSeat({
                seatId: must(seats.get(3)).id,
                requestId: newRequestId(),
              })
            ).reservation,
          );
          await asB.wallet.rechargeWallet({ amount: 150_000n, requestId: newRequestId() });
          const bPayment = must(
            (
              await asB.payment.createPayment({
                reservationId: bHold.id,
                amount: bHold.price,
                requestId: newRequestId(),
              })
            ).payment,
          );
          const cHold = must(
            (
              await asC.reservation.holdSeat({
                seatId: must(seats.get(4)).id,
                requestId: newRequestId(),
              })
            ).reservation,
          );
          await asC.wallet.rechargeWallet({ amount: 300_000n, requestId: newRequestId() });
          await asA.wallet.rechargeWallet({ amount: 500_000n, requestId: newRequestId() });

          const notMine = (reason: string) => ({ code: Code.NotFound, reason });
          await expectRpcError(
            asA.reservation.getReservation({ reservationId: bHold.id }),
            notMine("RESERVATION_NOT_FOUND"),
          );
          await expectRpcError(
            asA.payment.getPayment({ paymentId: bPayment.id }),
            notMine("PAYMENT_NOT_FOUND"),
          );
          await expectRpcError(
            asA.reservation.releaseReservation({
              reservationId: cHold.id,
              requestId: newRequestId(),
            }),
            notMine("RESERVATION_NOT_FOUND"),
          );
          await expectRpcError(
            asA.payment.createPayment({
              reservationId: cHold.id,
              amount: cHold.price,
              requestId: newRequestId(),
            }),
            notMine("RESERVATION_NOT_FOUND"),
          );

          // Wallet calls name no user: they act on the caller, whatever else exists.
          const recharge = await asA.wallet.rechargeWallet({
            amount: 1_000n,
            requestId: newRequestId(),
          });
          expect(recharge.wallet?.userId).to.equal(a.userId);
          expect(recharge.wallet?.balance).to.equal(501_000n);
          const aWallet = (await asA.wallet.getWallet({})).wallet;
          expect([aWallet?.userId, aWallet?.balance]).to.deep.equal([a.userId, 501_000n]);
          const aLedger = (await asA.wallet.listLedgerEntries({})).entries;
          expect(aLedger.map((e) => e.amount)).to.deep.equal([1_000n, 500_000n]);
          expect((await asA.reservation.listReservations({})).reservations).to.have.length(0);

          // B's and C's state is exactly what they made it.
          const bWallet = (await asB.wallet.getWallet({})).wallet;
          expect([bWallet?.userId, bWallet?.balance]).to.deep.equal([b.userId, 0n]);
          expect(
            (await asB.payment.getPayment({ paymentId: bPayment.id })).payment?.userId,
          ).to.equal(b.userId);
          const cNow = await asC.reservation.getReservation({ reservationId: cHold.id });
          expect(cNow.reservation?.state).to.equal(ReservationState.HELD);
          expect((await asC.wallet.getWallet({})).wallet?.balance).to.equal(300_000n);
          expect((await anonymous.catalog.getSeat({ seatId: cHold.seatId })).seat?.state).to.equal(
            SeatState.HELD,
          );
          await asC.reservation.releaseReservation({
            reservationId: cHold.id,
            requestId: newRequestId(),
          });
        });

        it("a paid-up token still reads its own data but no longer admits", async () => {
          const payer = await admittedUser(anonymous, server.concertId, `paid-${protocol}`);
          const me = clientFor(protocol, server.url, payer.token);
          const hold = must(
            (
              await me.reservation.holdSeat({
                seatId: must(seats.get(5)).id,
                requestId: newRequestId(),
              })
            ).reservation,
          );
          await me.wallet.rechargeWallet({ amount: hold.price, requestId: newRequestId() });
          await me.payment.createPayment({
            reservationId: hold.id,
            amount: hold.price,
            requestId: newRequestId(),
          });
          expect((await me.wallet.getWallet({})).wallet?.balance).to.equal(0n);
          expect((await me.reservation.listReservations({})).reservations).to.have.length(1);
          const next = must(seats.get(6)).id;
          await expectRpcError(
            me.reservation.holdSeat({ seatId: next, requestId: newRequestId() }),
            {
              code: Code.PermissionDenied,
              reason: "TOKEN_NOT_ADMITTED",
            },
          );
          expect((await anonymous.catalog.getSeat({ seatId: next })).seat?.state).to.equal(
            SeatState.AVAILABLE,
          );
        });
      });
    }
  });

  describe("waiting tokens (QUEUE_MAX_ACTIVE=1)", () => {
    let server: TestServer;
    const tokens: string[] = [];

    before(async () => {
      server = await startRpcServer({ env: { QUEUE_MAX_ACTIVE: "1" } });
    });

    after(async () => {
      await server?.stop();
    });

    afterEach(async () => {
      // Free the one slot for whatever runs next.
      for (const token of tokens.splice(0)) {
        await clientFor("connect", server.url, token)
          .queue.leaveQueue({})
          .catch(() => undefined);
      }
    });

    async function issue(label: string): Promise<{ userId: string; token: string }> {
      const userId = uniqueUser(label);
      const { token } = await clientFor("connect", server.url).queue.issueQueueToken({
        concertId: server.concertId,
        userId,
      });
      tokens.push(token);
      return { userId, token };
    }

    it("a waiting token may not hold a seat nor pay (TOKEN_NOT_ADMITTED)", async () => {
      const anonymous = clientFor("connect", server.url);
      const { seats } = await seatsOfDate(anonymous, server.concertId, 0);
      const seatId = must(seats.get(10)).id;

      const blocker = await issue("blocker");
      const blockerApi = clientFor("connect", server.url, blocker.token);
      expect((await blockerApi.queue.getQueueStatus({})).status?.state).to.equal(
        QueueTokenState.ADMITTED,
      );
      const blockerHold = must(
        (await blockerApi.reservation.holdSeat({ seatId, requestId: newRequestId() })).reservation,
      );
      await blockerApi.wallet.rechargeWallet({ amount: 200_000n, requestId: newRequestId() });

      const waiter = await issue("waiter");
      const other = must(seats.get(11)).id;
      for (const protocol of PROTOCOLS) {
        const waiting = clientFor(protocol, server.url, waiter.token);
        expect((await waiting.queue.getQueueStatus({})).status?.position).to.equal(1n);
        await expectRpcError(
          waiting.reservation.holdSeat({ seatId: other, requestId: newRequestId() }),
          {
            code: Code.PermissionDenied,
            reason: "TOKEN_NOT_ADMITTED",
          },
        );
      }
      expect((await anonymous.catalog.getSeat({ seatId: other })).seat?.state).to.equal(
        SeatState.AVAILABLE,
      );
      const waiterApi = clientFor("connect", server.url, waiter.token);
      expect((await waiterApi.reservation.listReservations({})).reservations).to.have.length(0);

      // The blocker leaves (its hold stays) and queues again: the waiter takes
      // the slot, and the blocker's new token waits behind it.
      await blockerApi.queue.leaveQueue({});
      const again = await anonymous.queue.issueQueueToken({
        concertId: server.concertId,
        userId: blocker.userId,
      });
      tokens.push(again.token);
      expect(again.token).to.not.equal(blocker.token);
      expect(again.status?.state).to.equal(QueueTokenState.WAITING);
      for (const protocol of PROTOCOLS) {
        await expectRpcError(
          clientFor(protocol, server.url, again.token).payment.createPayment({
            reservationId: blockerHold.id,
            amount: blockerHold.price,
            requestId: newRequestId(),
          }),
          { code: Code.PermissionDenied, reason: "TOKEN_NOT_ADMITTED" },
        );
      }
      const blockerNow = clientFor("connect", server.url, again.token);
      const { reservation } = await blockerNow.reservation.getReservation({
        reservationId: blockerHold.id,
      });
      expect(reservation?.state).to.equal(ReservationState.HELD);
      expect((await blockerNow.wallet.getWallet({})).wallet?.balance).to.equal(200_000n);
      expect((await anonymous.catalog.getSeat({ seatId })).seat?.state).to.equal(SeatState.HELD);
    });
  });

  describe("identity assertions (AUTH_MODE=hmac)", () => {
    const secret = "s3cret-for-the-hmac-verifier-0123456789a"; // 40 characters
    let server: TestServer;

    before(async () => {
      expect(secret).to.have.length(40);
      server = await startRpcServer({ env: { AUTH_MODE: "hmac", AUTH_HMAC_SECRET: secret } });
    });

    after(async () => {
      await server?.stop();
    });

    const inFiveMinutes = () => new Date(Date.now() + 300_000);

    for (const protocol of PROTOCOLS) {
      describe(`over ${protocol}`, () => {
        it("IssueQueueToken without an assertion is unauthenticated ASSERTION_INVALID", async () => {
          await expectRpcError(
            clientFor(protocol, server.url).queue.issueQueueToken({
              concertId: server.concertId,
              userId: uniqueUser("no-assertion"),
            }),
            { code: Code.Unauthenticated, reason: "ASSERTION_INVALID" },
          );
        });

        it("IssueQueueToken with the user's signed assertion issues a working token", async () => {
          const userId = uniqueUser(`hmac-${protocol}`);
          const assertion = signUserAssertion(secret, userId, inFiveMinutes());
          const issued = await clientFor(protocol, server.url, assertion).queue.issueQueueToken({
            concertId: server.concertId,
            userId,
          });
          expect(issued.token).to.match(/^sdq_/);
          expect(issued.status?.state).to.equal(QueueTokenState.ADMITTED);
          const me = clientFor(protocol, server.url, issued.token);
          const recharge = await me.wallet.rechargeWallet({
            amount: 5_000n,
            requestId: newRequestId(),
          });
          expect(recharge.wallet?.userId).to.equal(userId);
          await me.queue.leaveQueue({});
        });

        it("an assertion for another user is permission_denied USER_MISMATCH", async () => {
          const assertion = signUserAssertion(secret, uniqueUser("mallory"), inFiveMinutes());
          await expectRpcError(
            clientFor(protocol, server.url, assertion).queue.issueQueueToken({
              concertId: server.concertId,
              userId: uniqueUser("victim"),
            }),
            { code: Code.PermissionDenied, reason: "USER_MISMATCH" },
          );
        });

        it("expired, forged or malformed assertions are ASSERTION_INVALID", async () => {
          const userId = uniqueUser("forger");
          const bad = [
            signUserAssertion(secret, userId, new Date(Date.now() - 1_000)),
            signUserAssertion("another-secret-of-forty-characters-00000", userId, inFiveMinutes()),
            signUserAssertion(secret, userId, new Date(Date.now() + 86_400_000)),
            `sdq_${"A".repeat(65)}`,
            "v1.not.an.assertion",
          ];
          for (const assertion of bad) {
            await expectRpcError(
              clientFor(protocol, server.url, assertion).queue.issueQueueToken({
                concertId: server.concertId,
                userId,
              }),
              { code: Code.Unauthenticated, reason: "ASSERTION_INVALID" },
            );
          }
        });

        it("the catalog stays public", async () => {
          const { concerts } = await clientFor(protocol, server.url).catalog.listConcerts({});
          expect(concerts).to.have.length(1);
        });
      });
    }
  });
});

/** Clients whose every call carries the given Authorization header verbatim. */
function withAuthorization(
  protocol: Protocol,
  baseUrl: string,
  authorization: string,
): StagedoorClient {
  const setHeader: Interceptor = (next) => (req) => {
    req.header.set("authorization", authorization);
    return next(req);
  };
  return createStagedoorClient(transportFor(protocol, baseUrl, [setHeader]));
}
