import { createHash, randomBytes } from "node:crypto";
import { type Client, Code, createClient } from "@connectrpc/connect";
import { AdminService, ErrorInfoSchema, type StagedoorClient, TicketState } from "@stagedoor/sdk";
import { expect } from "chai";
import pg from "pg";
import { signUserAssertion } from "../../server/src/modules/identity/index.js";
import { bearer, clientFor, PROTOCOLS, type Protocol, transportFor } from "../support/clients.js";
import { FakeClock } from "../support/fake-clock.js";
import type { TestServer } from "../support/test-server.js";
import {
  admittedUser,
  expectRpcError,
  ms,
  must,
  newRequestId,
  seatsOfDate,
  startRpcServer,
  uniqueUser,
} from "./rpc-kit.js";

const OPS_KEY = randomBytes(24).toString("base64url");
const OPS_ENTRY = `ops:${createHash("sha256").update(OPS_KEY).digest("hex")}`;

describe("rpc: TicketService (read-only sessions, tickets) and AdminService.VerifyTicket", () => {
  let server: TestServer;
  let db: pg.Pool;

  before(async () => {
    server = await startRpcServer({ env: { ADMIN_API_KEYS: OPS_ENTRY } });
    db = new pg.Pool({ connectionString: server.databaseUrl, max: 2 });
  });
  after(async () => {
    await db?.end();
    await server?.stop();
  });

  /** A fan who bought the given seat number of the first date with a queue token. */
  async function buyer(protocol: Protocol, label: string, seatNumber: number) {
    const anonymous = clientFor(protocol, server.url);
    const fan = await admittedUser(anonymous, server.concertId, label);
    const queued = clientFor(protocol, server.url, fan.token);
    const { seats } = await seatsOfDate(anonymous, server.concertId, 0);
    const seat = must(seats.get(seatNumber), `seat ${seatNumber}`);
    await queued.wallet.rechargeWallet({ amount: 500_000n, requestId: newRequestId() });
    const { reservation } = await queued.reservation.holdSeat({
      seatId: seat.id,
      requestId: newRequestId(),
    });
    const reservationId = must(reservation, "hold").id;
    const { payment } = await queued.payment.createPayment({
      reservationId,
      amount: seat.price,
      requestId: newRequestId(),
    });
    // Admission ended with the payment; the fan comes back with a session.
    const { sessionToken, expireTime } = await anonymous.ticket.createSession({
      userId: fan.userId,
    });
    return {
      userId: fan.userId,
      queued,
      anonymous,
      seat,
      reservationId,
      paymentId: must(payment, "payment").id,
      sessionToken,
      expireTime,
      reader: clientFor(protocol, server.url, sessionToken),
    };
  }

  async function walletRowCount(): Promise<number> {
    const { rows } = await db.query<{ n: number }>(
      "select (select count(*) from ledger_entry) + (select count(*) from reservation) + (select count(*) from payment) as n",
    );
    return Number(must(rows[0]).n);
  }

  for (const [index, protocol] of PROTOCOLS.entries()) {
    describe(`over ${protocol}`, () => {
      let ops: Client<typeof AdminService>;
      before(() => {
        ops = createClient(AdminService, transportFor(protocol, server.url, [bearer(OPS_KEY)]));
      });

      it("opens a read-only session that lists and gets the fan's ticket with every field", async () => {
        const sale = await buyer(protocol, `tickets-${protocol}`, 1 + index);
        expect(sale.sessionToken).to.match(/^sds_[A-Za-z0-9_-]{43}$/);
        expect(ms(sale.expireTime)).to.be.greaterThan(Date.now() + 3_600_000);
        const { rows } = await db.query<{ n: number }>(
          "select count(*)::int as n from fan_session where token_hash = $1",
          [createHash("sha256").update(sale.sessionToken).digest()],
        );
        expect(must(rows[0]).n, "stored by its hash").to.equal(1);

        const { tickets, nextPageToken } = await sale.reader.ticket.listTickets({});
        expect(nextPageToken).to.equal("");
        expect(tickets).to.have.length(1);
        const ticket = must(tickets[0], "ticket");
        expect(ticket.id).to.equal(sale.reservationId);
        expect(ticket.concertId).to.equal(server.concertId);
        expect(ticket.concertTitle).to.equal("Stagedoor Live: Seoul Nights");
        expect(ticket.venue).to.equal("KSPO Dome, Seoul");
        expect(ticket.timeZone).to.equal("Asia/Seoul");
        // The demo's performances start at 19:00 in Seoul (10:00 UTC).
        expect(ticket.localStartTime).to.match(/^\d{4}-\d{2}-\d{2}T19:00:00\+09:00$/);
        expect(new Date(ticket.localStartTime).getTime()).to.equal(ms(ticket.startTime));
        expect(ticket.seatId).to.equal(sale.seat.id);
        expect(ticket.seatNumber).to.equal(sale.seat.number);
        expect(ticket.grade).to.equal("VIP");
        expect(ticket.price).to.equal(sale.seat.price);
        expect(ticket.paymentId).to.equal(sale.paymentId);
        expect(ticket.paidTime, "paid_time").to.not.equal(undefined);
        expect(ticket.state).to.equal(TicketState.VALID);
        expect(ticket.useTime).to.equal(undefined);
        expect(ticket.entryCode).to.match(/^[A-Z2-7]{42}$/);

        const { ticket: got } = await sale.reader.ticket.getTicket({ ticketId: ticket.id });
        expect(got).to.deep.equal(ticket);
        // The queue token reads the same tickets.
        const byToken = await sale.queued.ticket.listTickets({});
        expect(byToken.tickets).to.deep.equal(tickets);
      });

      it("serves the fan's other reads to the session, and refuses every change with SESSION_READ_ONLY", async () => {
        const sale = await buyer(protocol, `readonly-${protocol}`, 11 + index);
        const { reader } = sale;
        const { wallet } = await reader.wallet.getWallet({});
        expect(wallet?.userId).to.equal(sale.userId);
        expect(wallet?.balance).to.equal(500_000n - sale.seat.price);
        const { entries } = await reader.wallet.listLedgerEntries({});
        expect(entries).to.have.length(2);
        const { reservations } = await reader.reservation.listReservations({});
        expect(reservations.map((r) => r.id)).to.deep.equal([sale.reservationId]);
        const { reservation } = await reader.reservation.getReservation({
          reservationId: sale.reservationId,
        });
        expect(reservation?.userId).to.equal(sale.userId);
        const { payment } = await reader.payment.getPayment({ paymentId: sale.paymentId });
        expect(payment?.id).to.equal(sale.paymentId);

        const { seats } = await seatsOfDate(sale.anonymous, server.concertId, 0);
        const free = must(seats.get(21 + index), "a free seat");
        const before = await walletRowCount();
        const refusals: [string, () => Promise<unknown>][] = [
          [
            "holdSeat",
            () => reader.reservation.holdSeat({ seatId: free.id, requestId: newRequestId() }),
          ],
          [
            "releaseReservation",
            () =>
              reader.reservation.releaseReservation({
                reservationId: sale.reservationId,
                requestId: newRequestId(),
              }),
          ],
          [
            "createPayment",
            () =>
              reader.payment.createPayment({
                reservationId: sale.reservationId,
                amount: 1n,
                requestId: newRequestId(),
              }),
          ],
          [
            "rechargeWallet",
            () => reader.wallet.rechargeWallet({ amount: 1000n, requestId: newRequestId() }),
          ],
          ["getQueueStatus", () => reader.queue.getQueueStatus({})],
          ["leaveQueue", () => reader.queue.leaveQueue({})],
        ];
        for (const [name, call] of refusals) {
          const error = await expectRpcError(call, {
            code: Code.PermissionDenied,
            reason: "SESSION_READ_ONLY",
          });
          expect(error.rawMessage, name).to.include("read-only session");
        }
        expect(await walletRowCount(), "nothing changed").to.equal(before);
        // The seat is still free for others.
        const again = await seatsOfDate(sale.anonymous, server.concertId, 0);
        expect(again.seats.has(free.number)).to.equal(true);
      });

      it("refuses bad input clearly: user ids, unknown and malformed session tokens, ticket ids, pages", async () => {
        const anonymous = clientFor(protocol, server.url);
        await expectRpcError(anonymous.ticket.createSession({ userId: "" }), {
          code: Code.InvalidArgument,
          reason: "INVALID_ARGUMENT",
          field: "user_id",
        });
        await expectRpcError(anonymous.ticket.createSession({ userId: "a\u0000b" }), {
          code: Code.InvalidArgument,
          reason: "INVALID_ARGUMENT",
          field: "user_id",
        });
        await expectRpcError(anonymous.ticket.listTickets({}), {
          code: Code.Unauthenticated,
          reason: "TOKEN_MISSING",
        });
        for (const token of [
          `sds_${randomBytes(32).toString("base64url")}`,
          "sds_short",
          `sds_${"!".repeat(43)}`,
        ]) {
          await expectRpcError(clientFor(protocol, server.url, token).ticket.listTickets({}), {
            code: Code.Unauthenticated,
            reason: "SESSION_INVALID",
          });
        }
        const sale = await buyer(protocol, `bad-input-${protocol}`, 31 + index);
        await expectRpcError(sale.reader.ticket.getTicket({ ticketId: "nope" }), {
          code: Code.InvalidArgument,
          reason: "INVALID_ARGUMENT",
          field: "ticket_id",
        });
        // Someone else's ticket, and a reservation id that is no ticket, are not found.
        const other = await buyer(protocol, `other-${protocol}`, 41 + index);
        await expectRpcError(sale.reader.ticket.getTicket({ ticketId: other.reservationId }), {
          code: Code.NotFound,
          reason: "RESERVATION_NOT_FOUND",
        });
        await expectRpcError(sale.reader.ticket.listTickets({ pageSize: 101 }), {
          code: Code.InvalidArgument,
          reason: "INVALID_ARGUMENT",
          field: "page_size",
        });
        await expectRpcError(sale.reader.ticket.listTickets({ pageToken: "%%%" }), {
          code: Code.InvalidArgument,
          reason: "INVALID_ARGUMENT",
          field: "page_token",
        });
        // A session is no operator key.
        await expectRpcError(
          createClient(
            AdminService,
            transportFor(protocol, server.url, [bearer(sale.sessionToken)]),
          ).verifyTicket({
            requestId: newRequestId(),
            code: "A".repeat(42),
          }),
          { code: Code.Unauthenticated, reason: "ADMIN_KEY_INVALID" },
        );
      });

      it("VerifyTicket admits a code once, audited; a retry replays; a second use says when the first was", async () => {
        const sale = await buyer(protocol, `verify-${protocol}`, 5 + index);
        const { tickets } = await sale.reader.ticket.listTickets({});
        const code = must(tickets[0], "ticket").entryCode;
        const requestId = newRequestId();
        const first = await ops.verifyTicket({ requestId, code: code.toLowerCase() });
        expect(first.userId).to.equal(sale.userId);
        expect(first.ticket?.id).to.equal(sale.reservationId);
        expect(first.ticket?.state).to.equal(TicketState.USED);
        expect(ms(first.useTime)).to.equal(ms(first.ticket?.useTime));

        const replay = await ops.verifyTicket({ requestId, code });
        expect(replay).to.deep.equal(first);

        const error = await expectRpcError(ops.verifyTicket({ requestId: newRequestId(), code }), {
          code: Code.FailedPrecondition,
          reason: "TICKET_ALREADY_USED",
        });
        const info = must(error.findDetails(ErrorInfoSchema)[0], "ErrorInfo");
        expect(Date.parse(must(info.metadata.first_use_time, "first_use_time"))).to.equal(
          ms(first.useTime),
        );

        const { ticket } = await sale.reader.ticket.getTicket({ ticketId: sale.reservationId });
        expect(ticket?.state).to.equal(TicketState.USED);
        expect(ms(ticket?.useTime)).to.equal(ms(first.useTime));
        const { rows } = await db.query<{ actor: string; action: string; request_id: string }>(
          "select actor, action, request_id from admin_audit where target = $1",
          [`reservation/${sale.reservationId}`],
        );
        expect(rows).to.deep.equal([
          { actor: "ops", action: "VerifyTicket", request_id: requestId },
        ]);
      });

      it("VerifyTicket refuses forged, mistyped and refunded codes, and a reused request id", async () => {
        const sale = await buyer(protocol, `forged-${protocol}`, 15 + index);
        const { tickets } = await sale.reader.ticket.listTickets({});
        const code = must(tickets[0], "ticket").entryCode;
        const forged = [
          `${code.slice(0, 30)}${code[30] === "A" ? "B" : "A"}${code.slice(31)}`,
          code.slice(1),
          "",
          "not a code at all",
          "A".repeat(42),
        ];
        for (const bad of forged) {
          await expectRpcError(ops.verifyTicket({ requestId: newRequestId(), code: bad }), {
            code: Code.InvalidArgument,
            reason: "TICKET_CODE_INVALID",
            field: "code",
          });
        }
        await expectRpcError(ops.verifyTicket({ requestId: "", code }), {
          code: Code.InvalidArgument,
          reason: "INVALID_ARGUMENT",
          field: "request_id",
        });

        await ops.refundTicket({
          reservationId: sale.reservationId,
          requestId: newRequestId(),
          note: "",
        });
        await expectRpcError(ops.verifyTicket({ requestId: newRequestId(), code }), {
          code: Code.FailedPrecondition,
          reason: "TICKET_REFUNDED",
        });
        const { ticket } = await sale.reader.ticket.getTicket({ ticketId: sale.reservationId });
        expect(ticket?.state).to.equal(TicketState.REFUNDED);
        expect(ticket?.entryCode).to.equal("");

        // A request id used for one ticket is refused for another.
        const second = await buyer(protocol, `reuse-${protocol}`, 25 + index);
        const secondCode = must((await second.reader.ticket.listTickets({})).tickets[0]).entryCode;
        const thirdSale = await buyer(protocol, `reuse2-${protocol}`, 35 + index);
        const thirdCode = must(
          (await thirdSale.reader.ticket.listTickets({})).tickets[0],
        ).entryCode;
        const shared = newRequestId();
        await ops.verifyTicket({ requestId: shared, code: secondCode });
        await expectRpcError(ops.verifyTicket({ requestId: shared, code: thirdCode }), {
          code: Code.InvalidArgument,
          reason: "REQUEST_ID_REUSED",
          field: "request_id",
        });
      });
    });
  }

  it("pages through a fan's tickets, newest first", async () => {
    const protocol: Protocol = "connect";
    const anonymous = clientFor(protocol, server.url);
    const userId = uniqueUser("pages");
    const bought: string[] = [];
    for (const dateIndex of [1, 2]) {
      // Each payment ends an admission: the fan queues again for the next one.
      const { token } = await anonymous.queue.issueQueueToken({
        concertId: server.concertId,
        userId,
      });
      const queued = clientFor(protocol, server.url, token);
      await queued.wallet.rechargeWallet({ amount: 200_000n, requestId: newRequestId() });
      const { seats } = await seatsOfDate(anonymous, server.concertId, dateIndex);
      const seat = must(seats.get(50), "seat 50");
      const { reservation } = await queued.reservation.holdSeat({
        seatId: seat.id,
        requestId: newRequestId(),
      });
      bought.push(must(reservation).id);
      await queued.payment.createPayment({
        reservationId: must(reservation).id,
        amount: seat.price,
        requestId: newRequestId(),
      });
    }
    const { sessionToken } = await anonymous.ticket.createSession({ userId });
    const reader: StagedoorClient = clientFor(protocol, server.url, sessionToken);
    const first = await reader.ticket.listTickets({ pageSize: 1 });
    expect(first.tickets.map((t) => t.id)).to.deep.equal([bought[1]]);
    expect(first.nextPageToken).to.not.equal("");
    const second = await reader.ticket.listTickets({ pageSize: 1, pageToken: first.nextPageToken });
    expect(second.tickets.map((t) => t.id)).to.deep.equal([bought[0]]);
    expect(second.nextPageToken).to.equal("");
  });
});

describe("rpc: read-only sessions in hmac mode, and their expiry", () => {
  const SECRET = randomBytes(32).toString("hex");
  const clock = new FakeClock(Date.now());
  let server: TestServer;

  before(async () => {
    server = await startRpcServer({ clock, env: { AUTH_MODE: "hmac", AUTH_HMAC_SECRET: SECRET } });
  });
  after(async () => {
    await server?.stop();
  });

  it("opens a session only with a fresh assertion for the same user, and ends it after 12 hours", async () => {
    const userId = uniqueUser("hmac-session");
    const anonymous = clientFor("connect", server.url);
    await expectRpcError(anonymous.ticket.createSession({ userId }), {
      code: Code.Unauthenticated,
      reason: "ASSERTION_INVALID",
    });
    const expiry = new Date(clock.ms() + 600_000);
    await expectRpcError(
      clientFor(
        "connect",
        server.url,
        signUserAssertion(SECRET, "someone-else", expiry),
      ).ticket.createSession({
        userId,
      }),
      { code: Code.PermissionDenied, reason: "USER_MISMATCH" },
    );
    await expectRpcError(
      clientFor(
        "connect",
        server.url,
        signUserAssertion("x".repeat(64), userId, expiry),
      ).ticket.createSession({
        userId,
      }),
      { code: Code.Unauthenticated, reason: "ASSERTION_INVALID" },
    );
    const assertion = signUserAssertion(SECRET, userId, expiry);
    const { sessionToken, expireTime } = await clientFor(
      "connect",
      server.url,
      assertion,
    ).ticket.createSession({
      userId,
    });
    expect(ms(expireTime)).to.equal(clock.ms() + 12 * 3_600_000);
    const reader = clientFor("grpc", server.url, sessionToken);
    expect((await reader.ticket.listTickets({})).tickets).to.deep.equal([]);
    expect((await reader.wallet.getWallet({})).wallet?.userId).to.equal(userId);

    clock.advance(12 * 3_600_000);
    await expectRpcError(reader.ticket.listTickets({}), {
      code: Code.Unauthenticated,
      reason: "SESSION_EXPIRED",
    });

    // Opening a session deletes the ended ones.
    const db = new pg.Pool({ connectionString: server.databaseUrl, max: 1 });
    try {
      const hashes = async () =>
        (
          await db.query<{ hash: string }>(
            "select encode(token_hash, 'hex') as hash from fan_session",
          )
        ).rows.map((row) => row.hash);
      expect(await hashes()).to.deep.equal([
        createHash("sha256").update(sessionToken).digest("hex"),
      ]);
      const fresh = await clientFor(
        "connect",
        server.url,
        signUserAssertion(SECRET, userId, new Date(clock.ms() + 600_000)),
      ).ticket.createSession({ userId });
      expect(await hashes()).to.deep.equal([
        createHash("sha256").update(fresh.sessionToken).digest("hex"),
      ]);
    } finally {
      await db.end();
    }
  });
});
