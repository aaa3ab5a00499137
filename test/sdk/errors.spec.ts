import { Code, ConnectError } from "@connectrpc/connect";
import {
  ERROR_DOMAIN,
  ErrorInfoSchema,
  errorReason,
  fieldViolations,
  isRetryable,
  type KnownErrorReason,
  retryDelay,
} from "@stagedoor/sdk";
import { expect } from "chai";
import { admittedUser, must, newRequestId, seatsOfDate, startRpcServer } from "../rpc/rpc-kit.js";
import type { TestServer } from "../support/test-server.js";
import { rejectionOf, sdkClient } from "./sdk-kit.js";

describe("SDK error helpers", () => {
  describe("on errors from a real server", () => {
    let server: TestServer;

    before(async () => {
      server = await startRpcServer({
        env: { WALLET_MAX_RECHARGE: "300000", WALLET_MAX_BALANCE: "300000" },
      });
    });

    after(async () => {
      await server?.stop();
    });

    async function admitted(label: string) {
      const { token } = await admittedUser(sdkClient(server.url), server.concertId, label);
      return sdkClient(server.url, { token });
    }

    it("reads the reason of a refused hold, which is not retryable", async () => {
      const [winner, loser] = [await admitted("winner"), await admitted("loser")];
      const { seats } = await seatsOfDate(winner, server.concertId, 0);
      const seat = must(seats.get(7), "seat 7");
      await winner.reservation.holdSeat({ seatId: seat.id, requestId: newRequestId() });

      const error = await rejectionOf(
        loser.reservation.holdSeat({ seatId: seat.id, requestId: newRequestId() }),
      );
      expect(errorReason(error)).to.equal("SEAT_UNAVAILABLE");
      expect(isRetryable(error)).to.equal(false);
      expect(retryDelay(error)).to.equal(undefined);
      expect(fieldViolations(error)).to.deep.equal([]);
    });

    it("reads the field violations of an invalid request", async () => {
      const client = await admitted("typo");
      const error = await rejectionOf(
        client.wallet.rechargeWallet({ amount: 0n, requestId: newRequestId() }),
      );
      expect(errorReason(error)).to.equal("INVALID_ARGUMENT");
      const violations = fieldViolations(error);
      expect(violations.map((v) => v.field)).to.include("amount");
      for (const violation of violations)
        expect(violation.description).to.be.a("string").and.not.empty;
      expect(isRetryable(error)).to.equal(false);
    });

    it("does not call a resource_exhausted refusal with a reason retryable", async () => {
      const client = await admitted("rich");
      await client.wallet.rechargeWallet({ amount: 300_000n, requestId: newRequestId() });
      const error = await rejectionOf(
        client.wallet.rechargeWallet({ amount: 1n, requestId: newRequestId() }),
      );
      expect(ConnectError.from(error).code).to.equal(Code.ResourceExhausted);
      expect(errorReason(error)).to.equal("BALANCE_LIMIT_REACHED");
      expect(isRetryable(error)).to.equal(false);
    });

    it("reads the retry hint of a stream ended by a shutdown, which is retryable", async () => {
      // Its own server: this test stops it.
      const doomed = await startRpcServer({ env: { QUEUE_MAX_ACTIVE: "1" } });
      try {
        await admittedUser(sdkClient(doomed.url), doomed.concertId, "holder");
        const { token } = await sdkClient(doomed.url).queue.issueQueueToken({
          concertId: doomed.concertId,
          userId: "waiter",
        });
        const stream = sdkClient(doomed.url, { token }).queue.watchQueueStatus({});
        const iterator = stream[Symbol.asyncIterator]();
        expect((await iterator.next()).value?.event.case).to.equal("status");
        const stopping = doomed.stop();
        const error = await rejectionOf(
          (async () => {
            for (;;) if ((await iterator.next()).done) return;
          })(),
        );
        await stopping;
        expect(ConnectError.from(error).code).to.equal(Code.Unavailable);
        expect(errorReason(error)).to.equal("SERVER_SHUTTING_DOWN");
        expect(retryDelay(error)).to.equal(500);
        expect(isRetryable(error)).to.equal(true);
      } finally {
        await doomed.stop();
      }
    });
  });

  describe("on any value", () => {
    it("returns nothing for values that are not Stagedoor errors", () => {
      for (const value of [new Error("boom"), "text", undefined, null, 42]) {
        expect(errorReason(value)).to.equal(undefined);
        expect(retryDelay(value)).to.equal(undefined);
        expect(fieldViolations(value)).to.deep.equal([]);
        expect(isRetryable(value)).to.equal(false);
      }
    });

    it("ignores an ErrorInfo of another domain", () => {
      const foreign = new ConnectError("nope", Code.FailedPrecondition, undefined, [
        { desc: ErrorInfoSchema, value: { reason: "SEAT_UNAVAILABLE", domain: "example.com" } },
      ]);
      expect(errorReason(foreign)).to.equal(undefined);
      const ours = new ConnectError("nope", Code.FailedPrecondition, undefined, [
        { desc: ErrorInfoSchema, value: { reason: "SEAT_UNAVAILABLE", domain: ERROR_DOMAIN } },
      ]);
      expect(errorReason(ours)).to.equal("SEAT_UNAVAILABLE");
    });

    it("calls transient codes without server details retryable, and nothing else", () => {
      const retryable = [
        Code.Unavailable,
        Code.DeadlineExceeded,
        Code.Aborted,
        Code.ResourceExhausted,
        Code.Unknown,
        Code.Internal,
      ];
      for (const code of Object.values(Code).filter((c): c is Code => typeof c === "number")) {
        const expected = retryable.includes(code);
        expect(isRetryable(new ConnectError("x", code)), Code[code]).to.equal(expected);
      }
    });

    it("types the documented reasons", () => {
      const reason: KnownErrorReason = "INSUFFICIENT_BALANCE";
      const error = new ConnectError("low", Code.FailedPrecondition, undefined, [
        { desc: ErrorInfoSchema, value: { reason, domain: ERROR_DOMAIN } },
      ]);
      expect(errorReason(error) === reason).to.equal(true);
    });
  });
});
