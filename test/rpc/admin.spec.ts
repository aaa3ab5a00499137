import { createHash, randomBytes } from "node:crypto";
import { type Client, Code, createClient } from "@connectrpc/connect";
import {
  AdminService,
  ErrorInfoSchema,
  LedgerEntryKind,
  PaymentState,
  ReservationState,
  SeatState,
  type StagedoorClient,
} from "@stagedoor/sdk";
import { expect } from "chai";
import pg from "pg";
import { bearer, clientFor, PROTOCOLS, type Protocol, transportFor } from "../support/clients.js";
import type { TestServer } from "../support/test-server.js";
import { GrpcJsClient, isGrpcJsError, richError } from "./grpc-js-client.js";
import {
  admittedUser,
  expectRpcError,
  must,
  newRequestId,
  seatsOfDate,
  startRpcServer,
  uniqueUser,
} from "./rpc-kit.js";

/** A random operator key and its `ADMIN_API_KEYS` entry. */
function operatorKey(name: string): { key: string; entry: string } {
  const key = randomBytes(24).toString("base64url");
  return { key, entry: `${name}:${createHash("sha256").update(key).digest("hex")}` };
}

const OPS = operatorKey("ops");
const SUPPORT = operatorKey("support");

/** An AdminService client over one protocol, sending `credential` as the bearer, if any. */
function adminClient(
  protocol: Protocol,
  baseUrl: string,
  credential?: string,
): Client<typeof AdminService> {
  return createClient(
    AdminService,
    transportFor(protocol, baseUrl, credential === undefined ? [] : [bearer(credential)]),
  );
}

interface AuditRow {
  readonly actor: string;
  readonly action: string;
  readonly target: string;
  readonly before: Record<string, unknown> | null;
  readonly after: Record<string, unknown> | null;
  readonly request_id: string;
}

describe("rpc: AdminService (operator API)", () => {
  let server: TestServer;
  let db: pg.Pool;

  before(async () => {
    server = await startRpcServer({
      env: { ADMIN_API_KEYS: `${OPS.entry}, ${SUPPORT.entry}` },
    });
    db = new pg.Pool({ connectionString: server.databaseUrl, max: 2 });
  });
  after(async () => {
    await db?.end();
    await server?.stop();
  });

  async function auditRows(target: string): Promise<AuditRow[]> {
    const { rows } = await db.query<AuditRow>(
      `select actor, action, target, before, after, request_id
         from admin_audit where target = $1 order by created_at, id`,
      [target],
    );
    return rows;
  }

  async function auditCount(): Promise<number> {
    const { rows } = await db.query<{ n: number }>("select count(*)::int as n from admin_audit");
    return must(rows[0]).n;
  }

  /** A fan who bought the given seat number of the first date; returns the sale. */
  async function buyer(protocol: Protocol, label: string, seatNumber: number) {
    const anonymous = clientFor(protocol, server.url);
    const fan = await admittedUser(anonymous, server.concertId, label);
    const client = clientFor(protocol, server.url, fan.token);
    const { dateId, seats } = await seatsOfDate(anonymous, server.concertId, 0);
    const seat = must(seats.get(seatNumber), `seat ${seatNumber}`);
    await client.wallet.rechargeWallet({ amount: 500_000n, requestId: newRequestId() });
    const { reservation } = await client.reservation.holdSeat({
      seatId: seat.id,
      requestId: newRequestId(),
    });
    const held = must(reservation, "hold");
    await client.payment.createPayment({
      reservationId: held.id,
      amount: seat.price,
      requestId: newRequestId(),
    });
    return { fan, client, anonymous, dateId, seat, reservationId: held.id };
  }

  for (const [index, protocol] of PROTOCOLS.entries()) {
    describe(`over ${protocol}`, () => {
      let ops: Client<typeof AdminService>;
      before(() => {
        ops = adminClient(protocol, server.url, OPS.key);
      });

      it("refunds a confirmed ticket: money back with a REFUND entry, seat back on sale, audited", async () => {
        const sale = await buyer(protocol, `refund-${protocol}`, 40 + index);
        const { wallet: paidWallet } = await sale.client.wallet.getWallet({});
        const requestId = newRequestId();

        const refunded = await ops.refundTicket({
          reservationId: sale.reservationId,
          requestId,
          note: "artist illness",
        });
        expect(refunded.reservation?.state).to.equal(ReservationState.REFUNDED);
        expect(refunded.payment?.state).to.equal(PaymentState.REFUNDED);
        expect(refunded.payment?.refundTime, "refund_time").to.not.equal(undefined);
        const entry = must(refunded.entry, "entry");
        expect(entry.kind).to.equal(LedgerEntryKind.REFUND);
        expect(entry.amount).to.equal(sale.seat.price);
        expect(entry.paymentId).to.equal(refunded.payment?.id);
        expect(refunded.wallet?.balance).to.equal(must(paidWallet).balance + sale.seat.price);

        // The fan sees the money and the refund in their own ledger.
        const { wallet } = await sale.client.wallet.getWallet({});
        expect(wallet?.balance).to.equal(refunded.wallet?.balance);
        const { entries } = await sale.client.wallet.listLedgerEntries({});
        expect(entries.map((e) => e.kind)).to.deep.equal([
          LedgerEntryKind.REFUND,
          LedgerEntryKind.PAYMENT,
          LedgerEntryKind.RECHARGE,
        ]);
        const { reservation } = await sale.client.reservation.getReservation({
          reservationId: sale.reservationId,
        });
        expect(reservation?.state).to.equal(ReservationState.REFUNDED);

        // The seat is on sale again, in every listing, and another fan can buy it.
        const { seat } = await sale.anonymous.catalog.getSeat({ seatId: sale.seat.id });
        expect(seat?.state).to.equal(SeatState.AVAILABLE);
        const { seats } = await seatsOfDate(sale.anonymous, server.concertId, 0);
        expect(seats.has(sale.seat.number), "listed as available").to.equal(true);
        const next = await buyer(protocol, `rebuy-${protocol}`, sale.seat.number);
        const { seat: resold } = await next.anonymous.catalog.getSeat({ seatId: sale.seat.id });
        expect(resold?.state).to.equal(SeatState.SOLD);

        const [audit, ...more] = await auditRows(`reservation/${sale.reservationId}`);
        expect(more).to.have.length(0);
        expect(must(audit)).to.deep.include({
          actor: "ops",
          action: "RefundTicket",
          request_id: requestId,
        });
        expect(audit?.before).to.deep.include({ reservation: { status: "CONFIRMED" } });
        expect(audit?.before?.wallet).to.deep.include({
          balance: String(must(paidWallet).balance),
        });
        expect(audit?.after).to.deep.include({
          reservation: { status: "REFUNDED" },
          note: "artist illness",
          ledger_entry_id: entry.id,
        });
        expect(audit?.after?.wallet).to.deep.include({ balance: String(wallet?.balance) });
      });

      it("replays a refund retried with its request id, and refuses a second refund", async () => {
        const sale = await buyer(protocol, `refund-twice-${protocol}`, 43 + index);
        const requestId = newRequestId();
        const first = await ops.refundTicket({
          reservationId: sale.reservationId,
          requestId,
          note: "",
        });
        const again = await ops.refundTicket({
          reservationId: sale.reservationId,
          requestId,
          note: "",
        });
        expect(again.entry?.id).to.equal(first.entry?.id);
        expect(again.wallet?.balance).to.equal(first.wallet?.balance);
        expect(again.payment?.state).to.equal(PaymentState.REFUNDED);

        // Another operator, another request id: still never paid twice.
        const support = adminClient(protocol, server.url, SUPPORT.key);
        await expectRpcError(
          support.refundTicket({
            reservationId: sale.reservationId,
            requestId: newRequestId(),
            note: "",
          }),
          { code: Code.FailedPrecondition, reason: "ALREADY_REFUNDED" },
        );
        const { entries } = await sale.client.wallet.listLedgerEntries({});
        expect(entries.filter((e) => e.kind === LedgerEntryKind.REFUND)).to.have.length(1);
        expect(await auditRows(`reservation/${sale.reservationId}`)).to.have.length(1);
      });

      it("refuses refunds of what is not a paid ticket, and malformed requests, changing nothing", async () => {
        const anonymous = clientFor(protocol, server.url);
        const fan = await admittedUser(anonymous, server.concertId, `held-${protocol}`);
        const client = clientFor(protocol, server.url, fan.token);
        const { seats } = await seatsOfDate(anonymous, server.concertId, 1);
        const seat = must(seats.get(46 + index));
        const { reservation } = await client.reservation.holdSeat({
          seatId: seat.id,
          requestId: newRequestId(),
        });
        const audits = await auditCount();

        await expectRpcError(
          ops.refundTicket({
            reservationId: must(reservation).id,
            requestId: newRequestId(),
            note: "",
          }),
          { code: Code.FailedPrecondition, reason: "RESERVATION_NOT_CONFIRMED" },
        );
        await expectRpcError(
          ops.refundTicket({
            reservationId: "00000000-0000-4000-8000-000000000000",
            requestId: newRequestId(),
            note: "",
          }),
          { code: Code.NotFound, reason: "RESERVATION_NOT_FOUND" },
        );
        await expectRpcError(
          ops.refundTicket({ reservationId: "not-a-uuid", requestId: newRequestId(), note: "" }),
          { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: "reservation_id" },
        );
        await expectRpcError(
          ops.refundTicket({ reservationId: must(reservation).id, requestId: "", note: "" }),
          { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: "request_id" },
        );
        await expectRpcError(
          ops.refundTicket({
            reservationId: must(reservation).id,
            requestId: newRequestId(),
            note: "x".repeat(501),
          }),
          { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: "note" },
        );
        const { reservation: still } = await client.reservation.getReservation({
          reservationId: must(reservation).id,
        });
        expect(still?.state).to.equal(ReservationState.HELD);
        expect(await auditCount()).to.equal(audits);
      });

      it("credits a wallet (creating it), replays a retry, and audits it once", async () => {
        const userId = uniqueUser(`credited-${protocol}`);
        const requestId = newRequestId();
        const first = await ops.creditWallet({ userId, amount: 12_345n, requestId, note: "sorry" });
        expect(first.wallet?.balance).to.equal(12_345n);
        expect(first.entry?.kind).to.equal(LedgerEntryKind.CREDIT);
        const again = await ops.creditWallet({ userId, amount: 12_345n, requestId, note: "sorry" });
        expect(again.entry?.id).to.equal(first.entry?.id);
        expect(again.wallet?.balance).to.equal(12_345n);
        const second = await ops.creditWallet({
          userId,
          amount: 5n,
          requestId: newRequestId(),
          note: "",
        });
        expect(second.wallet?.balance).to.equal(12_350n);

        // The same request id for another credit is refused.
        await expectRpcError(ops.creditWallet({ userId, amount: 1n, requestId, note: "" }), {
          code: Code.InvalidArgument,
          reason: "REQUEST_ID_REUSED",
        });

        const rows = await auditRows(`wallet/${userId}`);
        expect(rows.map((row) => [row.actor, row.action, row.before?.balance])).to.deep.equal([
          ["ops", "CreditWallet", "0"],
          ["ops", "CreditWallet", "12345"],
        ]);
        expect(rows[0]?.after).to.deep.include({
          balance: "12345",
          amount: "12345",
          note: "sorry",
        });

        // The user sees the credit in their ledger once they have a token.
        const fan = await clientFor(protocol, server.url).queue.issueQueueToken({
          concertId: server.concertId,
          userId,
        });
        const { entries } = await clientFor(
          protocol,
          server.url,
          fan.token,
        ).wallet.listLedgerEntries({});
        expect(entries.map((e) => [e.kind, e.amount])).to.deep.equal([
          [LedgerEntryKind.CREDIT, 5n],
          [LedgerEntryKind.CREDIT, 12_345n],
        ]);
      });

      it("refuses bad credits with a clear error and changes nothing", async () => {
        const userId = uniqueUser(`bad-credit-${protocol}`);
        const audits = await auditCount();
        const cases: [Parameters<typeof ops.creditWallet>[0], string][] = [
          [{ userId, amount: -5n, requestId: newRequestId(), note: "" }, "amount"],
          [{ userId, amount: 0n, requestId: newRequestId(), note: "" }, "amount"],
          [{ userId, amount: 2n ** 62n, requestId: newRequestId(), note: "" }, "amount"],
          [{ userId: "", amount: 1n, requestId: newRequestId(), note: "" }, "user_id"],
          [{ userId: "a\u0007b", amount: 1n, requestId: newRequestId(), note: "" }, "user_id"],
          [{ userId, amount: 1n, requestId: "", note: "" }, "request_id"],
          [{ userId, amount: 1n, requestId: newRequestId(), note: "n".repeat(501) }, "note"],
        ];
        for (const [request, field] of cases) {
          await expectRpcError(ops.creditWallet(request), {
            code: Code.InvalidArgument,
            reason: "INVALID_ARGUMENT",
            field,
          });
        }
        // Over the balance limit: refused as a whole.
        await ops.creditWallet({
          userId,
          amount: 1_000_000_000_000n,
          requestId: newRequestId(),
          note: "",
        });
        await expectRpcError(
          ops.creditWallet({ userId, amount: 1n, requestId: newRequestId(), note: "" }),
          { code: Code.ResourceExhausted, reason: "BALANCE_LIMIT_REACHED" },
        );
        expect(await auditCount()).to.equal(audits + 1);
        const { rows } = await db.query<{ n: number }>(
          "select count(*)::int as n from ledger_entry where user_id = $1",
          [userId],
        );
        expect(must(rows[0]).n).to.equal(1);
      });

      it("needs an operator key: none, a wrong one, or a fan's queue token are refused", async () => {
        const request = {
          userId: uniqueUser("nobody"),
          amount: 1n,
          requestId: newRequestId(),
          note: "",
        };
        const audits = await auditCount();
        await expectRpcError(adminClient(protocol, server.url).creditWallet(request), {
          code: Code.Unauthenticated,
          reason: "ADMIN_KEY_MISSING",
        });
        await expectRpcError(
          adminClient(protocol, server.url, `${OPS.key}x`).creditWallet(request),
          {
            code: Code.Unauthenticated,
            reason: "ADMIN_KEY_INVALID",
          },
        );
        // The hash itself is not the key.
        const hash = createHash("sha256").update(OPS.key).digest("hex");
        await expectRpcError(adminClient(protocol, server.url, hash).creditWallet(request), {
          code: Code.Unauthenticated,
          reason: "ADMIN_KEY_INVALID",
        });
        const fan = await admittedUser(
          clientFor(protocol, server.url),
          server.concertId,
          "fan-as-admin",
        );
        await expectRpcError(adminClient(protocol, server.url, fan.token).creditWallet(request), {
          code: Code.Unauthenticated,
          reason: "ADMIN_KEY_INVALID",
        });
        expect(await auditCount()).to.equal(audits);
      });

      it("never accepts an operator key as a queue token", async () => {
        const asFan: StagedoorClient = clientFor(protocol, server.url, OPS.key);
        await expectRpcError(asFan.wallet.getWallet({}), {
          code: Code.Unauthenticated,
          reason: "TOKEN_INVALID",
        });
        await expectRpcError(asFan.queue.getQueueStatus({}), {
          code: Code.Unauthenticated,
          reason: "TOKEN_INVALID",
        });
      });
    });
  }

  it("serves a stock grpc-js client with an operator key, and refuses it without one", async () => {
    const grpcJs = new GrpcJsClient(server.url);
    try {
      const userId = uniqueUser("grpc-js-credit");
      const request = { userId, amount: "700", requestId: newRequestId(), note: "" };
      const response = await grpcJs.unary<{ wallet: { balance: string }; entry: { kind: string } }>(
        "stagedoor.admin.v1.AdminService",
        "CreditWallet",
        request,
        OPS.key,
      );
      expect(response.wallet.balance).to.equal("700");
      expect(response.entry.kind).to.equal("LEDGER_ENTRY_KIND_CREDIT");
      let refused: unknown;
      try {
        await grpcJs.unary("stagedoor.admin.v1.AdminService", "CreditWallet", request);
      } catch (error) {
        refused = error;
      }
      if (!isGrpcJsError(refused)) throw new Error("expected a grpc-js status error");
      expect(refused.code).to.equal(Code.Unauthenticated);
      const info = richError(refused)?.findDetails(ErrorInfoSchema)[0];
      expect(info?.reason).to.equal("ADMIN_KEY_MISSING");
    } finally {
      grpcJs.close();
    }
  });
});

describe("rpc: AdminService without ADMIN_API_KEYS", () => {
  let server: TestServer;

  before(async () => {
    server = await startRpcServer();
  });
  after(async () => {
    await server?.stop();
  });

  for (const protocol of PROTOCOLS) {
    it(`answers failed_precondition ADMIN_API_DISABLED over ${protocol}, whatever the credential`, async () => {
      const request = { userId: "someone", amount: 1n, requestId: newRequestId(), note: "" };
      for (const credential of [undefined, OPS.key]) {
        await expectRpcError(adminClient(protocol, server.url, credential).creditWallet(request), {
          code: Code.FailedPrecondition,
          reason: "ADMIN_API_DISABLED",
        });
      }
    });
  }
});
