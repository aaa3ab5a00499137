import { isMessage } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  CreatePaymentRequestSchema,
  callIdempotently,
  errorReason,
  LedgerEntryKind,
  payReservation,
  RechargeWalletRequestSchema,
  ReservationState,
  type RetryAttempt,
  RetryInfoSchema,
  rechargeWallet,
  type Seat,
  type StagedoorClient,
} from "@stagedoor/sdk";
import { expect } from "chai";
import { admittedUser, must, newRequestId, seatsOfDate, startRpcServer } from "../rpc/rpc-kit.js";
import type { TestServer } from "../support/test-server.js";
import { expectConnectError, rejectionOf, sdkClient } from "./sdk-kit.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** Fast retries, so the tests do not wait out production delays. */
const QUICK = { initialDelayMs: 5, maxDelayMs: 20 };

/** Reads the request id of the pay and recharge calls passing through. */
function requestIdOf(message: unknown): string | undefined {
  if (isMessage(message, CreatePaymentRequestSchema)) return message.requestId;
  if (isMessage(message, RechargeWalletRequestSchema)) return message.requestId;
  return undefined;
}

/**
 * Records the request id of every `method` call, and fails the first
 * `failures` of them with `code`: AFTER the server has processed them when
 * `after` is set (the response is lost on its way back), before otherwise.
 */
function faultyMethod(
  method: string,
  options: {
    failures: number;
    code: Code;
    after: boolean;
    details?: ConstructorParameters<typeof ConnectError>[3];
  },
): { interceptor: Interceptor; requestIds: string[] } {
  const requestIds: string[] = [];
  const interceptor: Interceptor = (next) => async (req) => {
    if (req.stream || req.method.name !== method) return next(req);
    requestIds.push(must(requestIdOf(req.message), "request_id"));
    const fail = requestIds.length <= options.failures;
    const injected = new ConnectError("injected failure", options.code, undefined, options.details);
    if (fail && !options.after) throw injected;
    const res = await next(req);
    if (fail) throw injected;
    return res;
  };
  return { interceptor, requestIds };
}

describe("SDK idempotent mutations", () => {
  let server: TestServer;

  before(async () => {
    server = await startRpcServer();
  });

  after(async () => {
    await server?.stop();
  });

  /** An admitted fan's client, with extra interceptors for fault injection. */
  async function admittedClient(label: string, interceptors: Interceptor[] = []) {
    const { token } = await admittedUser(sdkClient(server.url), server.concertId, label);
    return sdkClient(server.url, { token, interceptors });
  }

  /** Holds a free seat of the second date for the client's fan. */
  async function holdSomeSeat(client: StagedoorClient): Promise<{ id: string; seat: Seat }> {
    const { seats } = await seatsOfDate(client, server.concertId, 1);
    const seat = must([...seats.values()][0], "a free seat");
    const { reservation } = await client.reservation.holdSeat({
      seatId: seat.id,
      requestId: newRequestId(),
    });
    return { id: must(reservation, "reservation").id, seat };
  }

  for (const code of [Code.Unavailable, Code.DeadlineExceeded]) {
    it(`rechargeWallet retried after a lost response (${Code[code]}) adds the amount once`, async () => {
      const fault = faultyMethod("RechargeWallet", { failures: 1, code, after: true });
      const client = await admittedClient("recharger", [fault.interceptor]);
      const retries: RetryAttempt[] = [];

      const { wallet } = await rechargeWallet(
        client,
        { amount: 5_000 },
        { ...QUICK, onRetry: (retry) => retries.push(retry) },
      );

      expect(fault.requestIds).to.have.length(2);
      const [firstId, secondId] = fault.requestIds;
      expect(firstId).to.match(UUID);
      expect(secondId).to.equal(firstId);
      expect(retries.map((r) => [r.attempt, Code[r.error.code], r.requestId])).to.deep.equal([
        [1, Code[code], firstId],
      ]);
      expect(wallet?.balance).to.equal(5_000n);
      expect((await client.wallet.getWallet({})).wallet?.balance).to.equal(5_000n);
      const { entries } = await client.wallet.listLedgerEntries({});
      expect(entries).to.have.length(1);
    });
  }

  it("payReservation retried after a lost response charges once and confirms", async () => {
    const fault = faultyMethod("CreatePayment", {
      failures: 1,
      code: Code.Unavailable,
      after: true,
    });
    const client = await admittedClient("payer", [fault.interceptor]);
    await client.wallet.rechargeWallet({ amount: 200_000n, requestId: newRequestId() });
    const held = await holdSomeSeat(client);

    const { payment, reservation } = await payReservation(
      client,
      { reservationId: held.id, amount: held.seat.price },
      QUICK,
    );

    expect(fault.requestIds).to.have.length(2);
    expect(fault.requestIds[1]).to.equal(fault.requestIds[0]);
    expect(payment?.amount).to.equal(held.seat.price);
    expect(reservation?.state).to.equal(ReservationState.CONFIRMED);
    const { wallet } = await client.wallet.getWallet({});
    expect(wallet?.balance).to.equal(200_000n - held.seat.price);
    const { entries } = await client.wallet.listLedgerEntries({});
    expect(entries.map((e) => e.kind)).to.deep.equal([
      LedgerEntryKind.PAYMENT,
      LedgerEntryKind.RECHARGE,
    ]);
  });

  it("gives every logical operation its own request id", async () => {
    const fault = faultyMethod("RechargeWallet", {
      failures: 0,
      code: Code.Unavailable,
      after: true,
    });
    const client = await admittedClient("twice", [fault.interceptor]);
    await rechargeWallet(client, { amount: 1_000n });
    const { wallet } = await rechargeWallet(client, { amount: 2_000n });
    expect(fault.requestIds).to.have.length(2);
    expect(fault.requestIds[0]).to.not.equal(fault.requestIds[1]);
    expect(wallet?.balance).to.equal(3_000n);
  });

  it("does not retry what the server refused for good", async () => {
    const fault = faultyMethod("CreatePayment", {
      failures: 0,
      code: Code.Unavailable,
      after: true,
    });
    const client = await admittedClient("refused", [fault.interceptor]);
    await client.wallet.rechargeWallet({ amount: 1_000n, requestId: newRequestId() });
    const held = await holdSomeSeat(client);
    const retries: RetryAttempt[] = [];
    const onRetry = (retry: RetryAttempt) => retries.push(retry);

    const short = await rejectionOf(
      payReservation(client, { reservationId: held.id, amount: held.seat.price }, { onRetry }),
    );
    expect(errorReason(short)).to.equal("INSUFFICIENT_BALANCE");
    const wrong = await rejectionOf(
      payReservation(client, { reservationId: held.id, amount: 1n }, { onRetry }),
    );
    expect(errorReason(wrong)).to.equal("AMOUNT_MISMATCH");

    expect(fault.requestIds).to.have.length(2);
    expect(retries).to.have.length(0);
  });

  it("waits the server's RetryInfo delay instead of its own backoff", async () => {
    const fault = faultyMethod("RechargeWallet", {
      failures: 1,
      code: Code.Aborted,
      after: false,
      details: [{ desc: RetryInfoSchema, value: { retryDelay: durationFromMs(120) } }],
    });
    const client = await admittedClient("hinted", [fault.interceptor]);
    const retries: RetryAttempt[] = [];
    await rechargeWallet(
      client,
      { amount: 700n },
      // Its own backoff would wait at least 5 minutes.
      { initialDelayMs: 600_000, maxDelayMs: 600_000, onRetry: (retry) => retries.push(retry) },
    );
    expect(retries.map((r) => r.delayMs)).to.deep.equal([120]);
    expect(fault.requestIds).to.have.length(2);
  });

  it("gives up after maxAttempts with the last error, every attempt with the same id", async () => {
    const fault = faultyMethod("RechargeWallet", {
      failures: 99,
      code: Code.Unavailable,
      after: false,
    });
    const client = await admittedClient("unlucky", [fault.interceptor]);
    const retries: RetryAttempt[] = [];
    await expectConnectError(
      rechargeWallet(
        client,
        { amount: 100n },
        { ...QUICK, maxAttempts: 3, onRetry: (retry) => retries.push(retry) },
      ),
      Code.Unavailable,
    );
    expect(fault.requestIds).to.have.length(3);
    expect(new Set(fault.requestIds).size).to.equal(1);
    expect(retries.map((r) => r.attempt)).to.deep.equal([1, 2]);
    // Backoff grows, capped at maxDelayMs and never below half of it.
    for (const retry of retries) expect(retry.delayMs).to.be.within(2, 20);
  });

  it("stops retrying when the AbortSignal fires during the backoff", async () => {
    const fault = faultyMethod("RechargeWallet", {
      failures: 99,
      code: Code.Unavailable,
      after: false,
    });
    const client = await admittedClient("aborted", [fault.interceptor]);
    const controller = new AbortController();
    await expectConnectError(
      rechargeWallet(
        client,
        { amount: 100n },
        {
          signal: controller.signal,
          initialDelayMs: 600_000,
          maxDelayMs: 600_000,
          onRetry: () => controller.abort(),
        },
      ),
      Code.Canceled,
    );
    expect(fault.requestIds).to.have.length(1);
  });

  it("uses a caller-chosen request id, so a retry across restarts stays one operation", async () => {
    const fault = faultyMethod("RechargeWallet", {
      failures: 0,
      code: Code.Unavailable,
      after: true,
    });
    const client = await admittedClient("resumer", [fault.interceptor]);
    const requestId = newRequestId();
    await rechargeWallet(client, { amount: 400n }, { requestId });
    const { wallet } = await rechargeWallet(client, { amount: 400n }, { requestId });
    expect(fault.requestIds).to.deep.equal([requestId, requestId]);
    expect(wallet?.balance).to.equal(400n);
  });

  it("callIdempotently rethrows a failure that is not a ConnectError without retrying", async () => {
    let calls = 0;
    const error = await rejectionOf(
      callIdempotently(async () => {
        calls += 1;
        throw new TypeError("a bug in the operation");
      }, QUICK),
    );
    expect(error).to.be.instanceOf(TypeError);
    expect(calls).to.equal(1);
  });

  it("callIdempotently retries a transient failure and returns the operation's result", async () => {
    const seen: string[] = [];
    const result = await callIdempotently(async (requestId) => {
      seen.push(requestId);
      if (seen.length < 3) {
        throw new ConnectError("busy", Code.Aborted, undefined, [
          { desc: RetryInfoSchema, value: { retryDelay: durationFromMs(1) } },
        ]);
      }
      return `done with ${requestId}`;
    }, QUICK);
    expect(seen).to.have.length(3);
    expect(result).to.equal(`done with ${seen[0]}`);
  });

  it("refuses an amount that is not a whole number of minor units", async () => {
    const client = sdkClient(server.url);
    const error = await rejectionOf(rechargeWallet(client, { amount: 10.5 }));
    expect(error).to.be.instanceOf(RangeError);
  });
});
