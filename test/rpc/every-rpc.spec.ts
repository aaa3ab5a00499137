import { type Client, Code, createClient } from "@connectrpc/connect";
import {
  type ConcertDate,
  Health,
  LedgerEntryKind,
  PaymentState,
  QueueTokenState,
  ReservationState,
  SeatState,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type StagedoorClient,
} from "@stagedoor/sdk";
import { expect } from "chai";
import { clientFor, PROTOCOLS, transportFor } from "../support/clients.js";
import type { TestServer } from "../support/test-server.js";
import {
  admittedUser,
  demoSeat,
  expectNear,
  expectRpcError,
  ms,
  must,
  newRequestId,
  seatsOfDate,
  startRpcServer,
} from "./rpc-kit.js";

const TOKEN_TTL_MS = 600_000;
const HOLD_TTL_MS = 300_000;

/**
 * Every RPC of every service, through Connect, gRPC and gRPC-Web, checking the
 * field values that come back (int64 as bigint, enums, timestamps). Each
 * protocol works on its own concert date, and each test on its own users and
 * seats, so one server serves the whole file.
 */
describe("every RPC through every protocol", () => {
  let server: TestServer;

  before(async () => {
    server = await startRpcServer();
  });

  after(async () => {
    await server?.stop();
  });

  for (const [index, protocol] of PROTOCOLS.entries()) {
    describe(`over ${protocol}`, () => {
      let anonymous: StagedoorClient;
      const as = (token: string) => clientFor(protocol, server.url, token);

      before(() => {
        anonymous = clientFor(protocol, server.url);
      });

      it("CatalogService.ListConcerts lists the demo concert", async () => {
        const first = await anonymous.catalog.listConcerts({});
        expect(first.concerts.map((c) => c.id)).to.deep.equal([server.concertId]);
        const concert = must(first.concerts[0]);
        expect(concert.title).to.be.a("string").and.not.equal("");
        expect(concert.venue).to.be.a("string").and.not.equal("");
        expect(first.nextPageToken).to.equal("");

        const paged = await anonymous.catalog.listConcerts({ pageSize: 1 });
        expect(paged.concerts.map((c) => c.id)).to.deep.equal([server.concertId]);
        expect(paged.nextPageToken).to.equal("");
      });

      it("CatalogService.ListConcertDates lists three future dates in order", async () => {
        const { dates } = await anonymous.catalog.listConcertDates({ concertId: server.concertId });
        expect(dates).to.have.length(3);
        const days = dates.map((d: ConcertDate) => d.date);
        expect([...days].sort()).to.deep.equal(days);
        for (const date of dates) {
          expect(date.concertId).to.equal(server.concertId);
          expect(date.date).to.match(/^\d{4}-\d{2}-\d{2}$/);
          expect(date.totalSeatCount).to.equal(50);
          expect(date.availableSeatCount).to.be.within(1, 50);
          expect(ms(date.startTime)).to.be.greaterThan(Date.now());
          expect(date.startTime?.seconds).to.be.a("bigint");
        }
      });

      it("CatalogService.ListAvailableSeats pages through a date's free seats", async () => {
        const { dates } = await anonymous.catalog.listConcertDates({ concertId: server.concertId });
        const date = must(dates[index]);
        const numbers: number[] = [];
        let pageToken = "";
        let pages = 0;
        do {
          const page = await anonymous.catalog.listAvailableSeats({
            concertDateId: date.id,
            pageSize: 20,
            pageToken,
          });
          expect(page.seats.length).to.be.at.most(20);
          for (const seat of page.seats) {
            expect(seat.concertDateId).to.equal(date.id);
            expect(seat.state).to.equal(SeatState.AVAILABLE);
            expect(seat.price).to.be.a("bigint");
            expect({ grade: seat.grade, price: seat.price }).to.deep.equal(demoSeat(seat.number));
            numbers.push(seat.number);
          }
          pageToken = page.nextPageToken;
          pages++;
        } while (pageToken !== "" && pages < 10);
        expect(pageToken, "the last page has no next token").to.equal("");
        expect(pages).to.be.at.least(2);
        expect(numbers).to.deep.equal([...numbers].sort((a, b) => a - b));
        expect(new Set(numbers).size).to.equal(numbers.length);
        expect(numbers.length).to.equal(date.availableSeatCount);
      });

      it("CatalogService.GetSeat returns one seat with its state", async () => {
        const { seats } = await seatsOfDate(anonymous, server.concertId, index);
        const listed = must(seats.get(45), "seat 45");
        const { seat } = await anonymous.catalog.getSeat({ seatId: listed.id });
        expect(seat?.id).to.equal(listed.id);
        expect(seat?.number).to.equal(45);
        expect(seat?.grade).to.equal("S");
        expect(seat?.price).to.equal(80_000n);
        expect(seat?.state).to.equal(SeatState.AVAILABLE);
      });

      it("QueueService.IssueQueueToken admits at once, idempotently", async () => {
        const { userId, token } = await admittedUser(
          anonymous,
          server.concertId,
          `issue-${protocol}`,
        );
        expect(token).to.match(/^sdq_[A-Za-z0-9_-]{65}$/);
        const again = await anonymous.queue.issueQueueToken({
          concertId: server.concertId,
          userId,
        });
        expect(again.token).to.equal(token);
        const status = must(again.status);
        expect(status.concertId).to.equal(server.concertId);
        expect(status.state).to.equal(QueueTokenState.ADMITTED);
        expect(status.position).to.equal(0n);
        expect(status.waitingCount).to.equal(0n);
        expect(status.estimatedWait?.seconds).to.equal(0n);
        expectNear(status.expireTime, Date.now() + TOKEN_TTL_MS);
      });

      it("QueueService.GetQueueStatus, WatchQueueStatus and LeaveQueue", async () => {
        const { token } = await admittedUser(anonymous, server.concertId, `queue-${protocol}`);
        const me = as(token);

        const { status } = await me.queue.getQueueStatus({});
        expect(status?.state).to.equal(QueueTokenState.ADMITTED);
        expect(status?.position).to.equal(0n);
        expect(status?.concertId).to.equal(server.concertId);
        const expireMs = ms(status?.expireTime);
        expectNear(status?.expireTime, Date.now() + TOKEN_TTL_MS);

        // An admitted caller gets its status, then `admitted`, then the end.
        const events = [];
        for await (const message of me.queue.watchQueueStatus({})) events.push(message.event);
        expect(events.map((e) => e.case)).to.deep.equal(["status", "admitted"]);
        const [first, last] = events;
        expect(first?.case === "status" && first.value.state).to.equal(QueueTokenState.ADMITTED);
        expect(last?.case === "admitted" && ms(last.value.expireTime)).to.equal(expireMs);

        expect(await me.queue.leaveQueue({})).to.be.an("object");
        await expectRpcError(me.queue.getQueueStatus({}), {
          code: Code.Unauthenticated,
          reason: "TOKEN_INVALID",
        });
      });

      it("ReservationService.HoldSeat, GetReservation, ListReservations, ReleaseReservation", async () => {
        const { userId, token } = await admittedUser(
          anonymous,
          server.concertId,
          `hold-${protocol}`,
        );
        const me = as(token);
        const { dateId, seats } = await seatsOfDate(anonymous, server.concertId, index);
        const seat = must(seats.get(12), "seat 12");

        const before = Date.now();
        const { reservation } = await me.reservation.holdSeat({
          seatId: seat.id,
          requestId: newRequestId(),
        });
        const held = must(reservation);
        expect(held.id).to.match(/^[0-9a-f-]{36}$/);
        expect(held.userId).to.equal(userId);
        expect(held.concertId).to.equal(server.concertId);
        expect(held.concertDateId).to.equal(dateId);
        expect(held.date).to.match(/^\d{4}-\d{2}-\d{2}$/);
        expect(held.seatId).to.equal(seat.id);
        expect(held.seatNumber).to.equal(12);
        expect(held.price).to.equal(110_000n);
        expect(held.state).to.equal(ReservationState.HELD);
        expectNear(held.createTime, before);
        expectNear(held.holdExpireTime, before + HOLD_TTL_MS);
        expect(held.confirmTime).to.equal(undefined);

        const seatNow = await anonymous.catalog.getSeat({ seatId: seat.id });
        expect(seatNow.seat?.state).to.equal(SeatState.HELD);

        const got = await me.reservation.getReservation({ reservationId: held.id });
        expect(got.reservation).to.deep.equal(held);

        const listed = await me.reservation.listReservations({});
        expect(listed.reservations.map((r) => r.id)).to.deep.equal([held.id]);
        expect(listed.nextPageToken).to.equal("");

        const released = await me.reservation.releaseReservation({
          reservationId: held.id,
          requestId: newRequestId(),
        });
        expect(released.reservation?.id).to.equal(held.id);
        expect(released.reservation?.state).to.equal(ReservationState.RELEASED);
        const freed = await anonymous.catalog.getSeat({ seatId: seat.id });
        expect(freed.seat?.state).to.equal(SeatState.AVAILABLE);
        const after = await me.reservation.getReservation({ reservationId: held.id });
        expect(after.reservation?.state).to.equal(ReservationState.RELEASED);
      });

      it("WalletService.RechargeWallet, GetWallet, ListLedgerEntries", async () => {
        const { userId, token } = await admittedUser(
          anonymous,
          server.concertId,
          `wallet-${protocol}`,
        );
        const me = as(token);

        // A fan who never recharged has an empty wallet, not a missing one.
        const empty = await me.wallet.getWallet({});
        expect(empty.wallet?.userId).to.equal(userId);
        expect(empty.wallet?.balance).to.equal(0n);
        expect(empty.wallet?.version).to.equal(0n);
        expect(empty.wallet?.updateTime).to.equal(undefined);

        const first = await me.wallet.rechargeWallet({
          amount: 100_000n,
          requestId: newRequestId(),
        });
        expect(first.wallet?.userId).to.equal(userId);
        expect(first.wallet?.balance).to.equal(100_000n);
        expect(first.wallet?.version).to.equal(1n);
        expectNear(first.wallet?.updateTime, Date.now());
        expect(first.entry?.amount).to.equal(100_000n);
        expect(first.entry?.balanceAfter).to.equal(100_000n);
        expect(first.entry?.kind).to.equal(LedgerEntryKind.RECHARGE);
        expect(first.entry?.paymentId).to.equal("");

        const requestId = newRequestId();
        const second = await me.wallet.rechargeWallet({ amount: 2_500n, requestId });
        expect(second.wallet?.balance).to.equal(102_500n);
        expect(second.wallet?.version).to.equal(2n);
        // A retry of the same request replays the first result without a second effect.
        const replay = await me.wallet.rechargeWallet({ amount: 2_500n, requestId });
        expect(replay.entry?.id).to.equal(second.entry?.id);
        expect(replay.wallet?.balance).to.equal(102_500n);

        const { wallet } = await me.wallet.getWallet({});
        expect(wallet?.userId).to.equal(userId);
        expect(wallet?.balance).to.equal(102_500n);
        expect(wallet?.version).to.equal(2n);

        const page1 = await me.wallet.listLedgerEntries({ pageSize: 1 });
        expect(page1.entries.map((e) => e.id)).to.deep.equal([second.entry?.id]);
        expect(page1.nextPageToken).to.not.equal("");
        const page2 = await me.wallet.listLedgerEntries({
          pageSize: 1,
          pageToken: page1.nextPageToken,
        });
        expect(page2.entries.map((e) => e.id)).to.deep.equal([first.entry?.id]);
        expect(page2.entries[0]?.balanceAfter).to.equal(100_000n);
        expect(page2.nextPageToken, "the last page has no next token").to.equal("");
      });

      it("PaymentService.CreatePayment and GetPayment sell the seat", async () => {
        const { userId, token } = await admittedUser(
          anonymous,
          server.concertId,
          `pay-${protocol}`,
        );
        const me = as(token);
        const { seats } = await seatsOfDate(anonymous, server.concertId, index);
        const seat = must(seats.get(3), "seat 3");
        const held = must(
          (await me.reservation.holdSeat({ seatId: seat.id, requestId: newRequestId() }))
            .reservation,
        );
        await me.wallet.rechargeWallet({ amount: 200_000n, requestId: newRequestId() });

        const requestId = newRequestId();
        const paid = await me.payment.createPayment({
          reservationId: held.id,
          amount: 150_000n,
          requestId,
        });
        const payment = must(paid.payment);
        expect(payment.userId).to.equal(userId);
        expect(payment.reservationId).to.equal(held.id);
        expect(payment.amount).to.equal(150_000n);
        expect(payment.state).to.equal(PaymentState.COMPLETED);
        expectNear(payment.createTime, Date.now());
        expect(paid.reservation?.state).to.equal(ReservationState.CONFIRMED);
        expectNear(paid.reservation?.confirmTime, Date.now());

        const replay = await me.payment.createPayment({
          reservationId: held.id,
          amount: 150_000n,
          requestId,
        });
        expect(replay.payment?.id).to.equal(payment.id);

        const got = await me.payment.getPayment({ paymentId: payment.id });
        expect(got.payment).to.deep.equal(payment);

        expect((await anonymous.catalog.getSeat({ seatId: seat.id })).seat?.state).to.equal(
          SeatState.SOLD,
        );
        const reservation = await me.reservation.getReservation({ reservationId: held.id });
        expect(reservation.reservation?.state).to.equal(ReservationState.CONFIRMED);
        const { wallet } = await me.wallet.getWallet({});
        expect(wallet?.balance).to.equal(50_000n);
        const { entries } = await me.wallet.listLedgerEntries({});
        expect(entries.map((e) => [e.kind, e.amount, e.paymentId])).to.deep.equal([
          [LedgerEntryKind.PAYMENT, -150_000n, payment.id],
          [LedgerEntryKind.RECHARGE, 200_000n, ""],
        ]);
        // Paying ends the admission; the token still reads the user's own data.
        const { status } = await me.queue.getQueueStatus({});
        expect(status?.state).to.equal(QueueTokenState.COMPLETED);
      });

      describe("grpc.health.v1.Health", () => {
        let health: Client<typeof Health>;

        before(() => {
          health = createClient(Health, transportFor(protocol, server.url));
        });

        it("Check reports SERVING for the server and each service", async () => {
          expect((await health.check({ service: "" })).status).to.equal(ServingStatus.SERVING);
          const queue = await health.check({ service: "stagedoor.queue.v1.QueueService" });
          expect(queue.status).to.equal(ServingStatus.SERVING);
          await expectNotFound(health.check({ service: "no.such.Service" }));
        });

        it("Watch streams SERVING first", async () => {
          const controller = new AbortController();
          const stream = health.watch({ service: "" }, { signal: controller.signal });
          const iterator = stream[Symbol.asyncIterator]();
          const first = await iterator.next();
          controller.abort();
          await iterator.return?.();
          expect(first.done).to.equal(false);
          expect(first.value?.status).to.equal(ServingStatus.SERVING);
        });

        it("List names the server and every service", async () => {
          const { statuses } = await health.list({});
          expect(Object.keys(statuses).sort()).to.deep.equal(
            [
              "",
              "stagedoor.admin.v1.AdminService",
              "stagedoor.catalog.v1.CatalogService",
              "stagedoor.payment.v1.PaymentService",
              "stagedoor.queue.v1.QueueService",
              "stagedoor.reservation.v1.ReservationService",
              "stagedoor.ticket.v1.TicketService",
              "stagedoor.wallet.v1.WalletService",
            ].sort(),
          );
          for (const value of Object.values(statuses)) {
            expect(value.status).to.equal(ServingStatus.SERVING);
          }
        });
      });
    });
  }
});

/** Health's NOT_FOUND is the standard one, without a Stagedoor ErrorInfo. */
async function expectNotFound(call: Promise<unknown>): Promise<void> {
  const error = await call.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error, "the call must fail").to.not.equal(undefined);
  expect((error as { code?: unknown }).code).to.equal(Code.NotFound);
}
