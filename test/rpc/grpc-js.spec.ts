import * as grpc from "@grpc/grpc-js";
import { BadRequestSchema, ERROR_DOMAIN, ErrorInfoSchema } from "@stagedoor/sdk";
import { expect } from "chai";
import type { TestServer } from "../support/test-server.js";
import { GrpcJsClient, type GrpcJsError, isGrpcJsError, richError } from "./grpc-js-client.js";
import { must, newRequestId, startRpcServer, uniqueUser, withDeadline } from "./rpc-kit.js";

// What grpc-js hands back with { longs: String, enums: String, defaults: true, oneofs: true }.
interface JsTimestamp {
  seconds: string;
  nanos: number;
}
interface JsQueueStatus {
  state: string;
  position: string;
  waitingCount: string;
  expireTime: JsTimestamp | null;
}
interface JsDate {
  id: string;
  date: string;
  availableSeatCount: number;
  totalSeatCount: number;
}
interface JsSeat {
  id: string;
  number: number;
  grade: string;
  price: string;
  state: string;
}
interface JsReservation {
  id: string;
  userId: string;
  seatId: string;
  price: string;
  state: string;
  confirmTime: JsTimestamp | null;
}
interface JsWallet {
  userId: string;
  balance: string;
  version: string;
}
interface JsPayment {
  id: string;
  reservationId: string;
  amount: string;
  state: string;
}

const QUEUE = "stagedoor.queue.v1.QueueService";
const CATALOG = "stagedoor.catalog.v1.CatalogService";
const RESERVATION = "stagedoor.reservation.v1.ReservationService";
const WALLET = "stagedoor.wallet.v1.WalletService";
const PAYMENT = "stagedoor.payment.v1.PaymentService";
const HEALTH = "grpc.health.v1.Health";

async function grpcJsFailure(call: Promise<unknown>): Promise<GrpcJsError> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!isGrpcJsError(outcome)) throw new Error(`expected a gRPC status error, got ${outcome}`);
  return outcome;
}

/**
 * A stock `@grpc/grpc-js` client, built from the repository's .proto files
 * with `@grpc/proto-loader`, against the real server: what a third-party gRPC
 * integration sees (int64 as strings, enums by name).
 */
describe("a plain @grpc/grpc-js client", () => {
  let server: TestServer;
  let client: GrpcJsClient;

  before(async () => {
    server = await startRpcServer();
    client = new GrpcJsClient(server.url);
  });

  after(async () => {
    client?.close();
    await server?.stop();
  });

  it("runs the whole purchase flow: token, dates, seats, hold, recharge, pay", async () => {
    const userId = uniqueUser("grpcjs-buyer");
    const issued = await client.unary<{ token: string; status: JsQueueStatus }>(
      QUEUE,
      "IssueQueueToken",
      { concertId: server.concertId, userId },
    );
    expect(issued.token).to.match(/^sdq_/);
    expect(issued.status.state).to.equal("QUEUE_TOKEN_STATE_ADMITTED");
    expect(issued.status.position).to.equal("0");
    expect(Number(must(issued.status.expireTime).seconds)).to.be.greaterThan(Date.now() / 1000);
    const token = issued.token;

    const { dates } = await client.unary<{ dates: JsDate[] }>(CATALOG, "ListConcertDates", {
      concertId: server.concertId,
    });
    expect(dates).to.have.length(3);
    const date = must(dates[1]);
    expect(date.totalSeatCount).to.equal(50);

    const { seats } = await client.unary<{ seats: JsSeat[]; nextPageToken: string }>(
      CATALOG,
      "ListAvailableSeats",
      { concertDateId: date.id, pageSize: 50 },
    );
    expect(seats).to.have.length(date.availableSeatCount);
    const seat = must(seats.find((s) => s.number === 20));
    expect(seat).to.include({ grade: "R", price: "110000", state: "SEAT_STATE_AVAILABLE" });

    const { reservation } = await client.unary<{ reservation: JsReservation }>(
      RESERVATION,
      "HoldSeat",
      { seatId: seat.id, requestId: newRequestId() },
      token,
    );
    expect(reservation).to.include({
      userId,
      seatId: seat.id,
      price: "110000",
      state: "RESERVATION_STATE_HELD",
    });
    expect(reservation.confirmTime).to.equal(null);

    const topUp = await client.unary<{ wallet: JsWallet }>(
      WALLET,
      "RechargeWallet",
      { amount: "130000", requestId: newRequestId() },
      token,
    );
    expect(topUp.wallet).to.include({ userId, balance: "130000", version: "1" });

    const paid = await client.unary<{ payment: JsPayment; reservation: JsReservation }>(
      PAYMENT,
      "CreatePayment",
      { reservationId: reservation.id, amount: "110000", requestId: newRequestId() },
      token,
    );
    expect(paid.payment).to.include({
      reservationId: reservation.id,
      amount: "110000",
      state: "PAYMENT_STATE_COMPLETED",
    });
    expect(paid.reservation.state).to.equal("RESERVATION_STATE_CONFIRMED");
    expect(paid.reservation.confirmTime).to.not.equal(null);

    const got = await client.unary<{ reservation: JsReservation }>(
      RESERVATION,
      "GetReservation",
      { reservationId: reservation.id },
      token,
    );
    expect(got.reservation.state).to.equal("RESERVATION_STATE_CONFIRMED");
    const sold = await client.unary<{ seat: JsSeat }>(CATALOG, "GetSeat", { seatId: seat.id });
    expect(sold.seat.state).to.equal("SEAT_STATE_SOLD");
    const payment = await client.unary<{ payment: JsPayment }>(
      PAYMENT,
      "GetPayment",
      { paymentId: paid.payment.id },
      token,
    );
    expect(payment.payment.amount).to.equal("110000");
    const { wallet } = await client.unary<{ wallet: JsWallet }>(WALLET, "GetWallet", {}, token);
    expect(wallet).to.include({ balance: "20000", version: "2" });
    const { status } = await client.unary<{ status: JsQueueStatus }>(
      QUEUE,
      "GetQueueStatus",
      {},
      token,
    );
    expect(status.state).to.equal("QUEUE_TOKEN_STATE_COMPLETED");
  });

  it("receives ErrorInfo and BadRequest details in grpc-status-details-bin", async () => {
    const missing = await grpcJsFailure(client.unary(WALLET, "GetWallet", {}));
    expect(missing.code).to.equal(grpc.status.UNAUTHENTICATED);
    const [info] = must(richError(missing), "decoded status").findDetails(ErrorInfoSchema);
    expect(info?.domain).to.equal(ERROR_DOMAIN);
    expect(info?.reason).to.equal("TOKEN_MISSING");

    const { token } = await client.unary<{ token: string }>(QUEUE, "IssueQueueToken", {
      concertId: server.concertId,
      userId: uniqueUser("grpcjs-bad-amount"),
    });
    const refused = await grpcJsFailure(
      client.unary(WALLET, "RechargeWallet", { amount: "0", requestId: newRequestId() }, token),
    );
    expect(refused.code).to.equal(grpc.status.INVALID_ARGUMENT);
    const rich = must(richError(refused), "decoded status");
    expect(rich.findDetails(ErrorInfoSchema)[0]?.reason).to.equal("INVALID_ARGUMENT");
    const fields = rich
      .findDetails(BadRequestSchema)
      .flatMap((bad) => bad.fieldViolations.map((v) => v.field));
    expect(fields).to.deep.equal(["amount"]);
  });

  describe("grpc.health.v1.Health", () => {
    for (const service of ["", "stagedoor.queue.v1.QueueService"]) {
      it(`Check("${service}") is SERVING`, async () => {
        const reply = await client.unary<{ status: string }>(HEALTH, "Check", { service });
        expect(reply.status).to.equal("SERVING");
      });
    }

    it("Check of an unknown service fails NOT_FOUND", async () => {
      const error = await grpcJsFailure(
        client.unary(HEALTH, "Check", { service: "no.such.v1.Service" }),
      );
      expect(error.code).to.equal(grpc.status.NOT_FOUND);
    });

    it("Watch yields SERVING", async () => {
      const stream = client.serverStream(HEALTH, "Watch", { service: "" });
      try {
        const first = await withDeadline(
          new Promise<{ status: string }>((resolve, reject) => {
            stream.once("data", (message: { status: string }) => resolve(message));
            stream.once("error", reject);
          }),
          5_000,
          "the first Health.Watch message",
        );
        expect(first.status).to.equal("SERVING");
      } finally {
        // Cancelling ends the call with CANCELLED, which is expected here.
        stream.on("error", (_error: grpc.ServiceError) => {});
        stream.cancel();
      }
    });

    it("List reports every service SERVING", async () => {
      const { statuses } = await client.unary<{ statuses: Record<string, { status: string }> }>(
        HEALTH,
        "List",
        {},
      );
      expect(statuses[""]?.status).to.equal("SERVING");
      expect(statuses["stagedoor.payment.v1.PaymentService"]?.status).to.equal("SERVING");
    });
  });
});
