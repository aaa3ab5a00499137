import { Code, ConnectError } from "@connectrpc/connect";
import { errorFromJson, errorToJson } from "@connectrpc/connect/protocol-connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "@stagedoor/sdk";
import { expect } from "chai";
import {
  DomainError,
  type ErrorKind,
  invalidField,
} from "../../../server/src/shared/domain-error.js";
import { transientDomainError } from "../../../server/src/shared/transient-errors.js";
import { toConnectError } from "../../../server/src/transport/interceptors/error.interceptor.js";
import { must } from "../unit-helpers.js";

const EXPECTED_CODES: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  unimplemented: Code.Unimplemented,
  deadline_exceeded: Code.DeadlineExceeded,
  canceled: Code.Canceled,
  internal: Code.Internal,
};

describe("toConnectError", () => {
  for (const [kind, code] of Object.entries(EXPECTED_CODES) as [ErrorKind, Code][]) {
    it(`maps ${kind} to ${Code[code]}`, () => {
      const error = toConnectError(new DomainError(kind, "SEAT_UNAVAILABLE", `a ${kind} failure`));
      expect(error).to.be.instanceOf(ConnectError);
      expect(error.code).to.equal(code);
      expect(error.rawMessage).to.equal(`a ${kind} failure`);
    });
  }

  it("carries an ErrorInfo with the reason, the stagedoor.dev domain and the metadata", () => {
    const error = toConnectError(
      new DomainError("failed_precondition", "SEAT_UNAVAILABLE", "the seat is not available", {
        metadata: { seat_id: "s-1", date: "2030-03-01" },
      }),
    );
    const infos = error.findDetails(ErrorInfoSchema);
    expect(infos).to.have.length(1);
    const info = must(infos[0]);
    expect(info.reason).to.equal("SEAT_UNAVAILABLE");
    expect(info.domain).to.equal("stagedoor.dev");
    expect(info.metadata).to.deep.equal({ seat_id: "s-1", date: "2030-03-01" });
  });

  it("puts the ErrorInfo on the Connect wire with its JSON as debug, encoded once per reason and metadata", () => {
    const refusal = (seatId: string) =>
      toConnectError(
        new DomainError("failed_precondition", "SEAT_UNAVAILABLE", "the seat is not available", {
          metadata: { seat_id: seatId },
        }),
      );
    const first = refusal("s-1");
    const again = refusal("s-1");
    const other = refusal("s-2");
    const wire = errorToJson(first, undefined) as { details: { type: string; debug: unknown }[] };
    expect(wire.details).to.have.length(1);
    expect(wire.details[0]?.type).to.equal("google.rpc.ErrorInfo");
    expect(wire.details[0]?.debug).to.deep.equal({
      reason: "SEAT_UNAVAILABLE",
      domain: "stagedoor.dev",
      metadata: { seat_id: "s-1" },
    });
    // What a client reads back from the wire is the same ErrorInfo.
    const read = errorFromJson(errorToJson(other, undefined), undefined, new ConnectError("x"));
    expect(must(read.findDetails(ErrorInfoSchema)[0]).metadata).to.deep.equal({ seat_id: "s-2" });
    // The same refusal shares its encoded detail; another seat's is its own.
    expect(again.details[0]).to.equal(first.details[0]);
    expect(other.details[0]).to.not.equal(first.details[0]);
    // A second error does not add to the first's details.
    expect(first.details).to.have.length(1);
  });

  it("carries an empty metadata map when the error has none, and no other details", () => {
    const error = toConnectError(new DomainError("not_found", "SEAT_NOT_FOUND", "no such seat"));
    const info = must(error.findDetails(ErrorInfoSchema)[0]);
    expect(info.metadata).to.deep.equal({});
    expect(error.findDetails(BadRequestSchema)).to.deep.equal([]);
    expect(error.findDetails(RetryInfoSchema)).to.deep.equal([]);
    expect(error.details).to.have.length(1);
  });

  it("lists invalid fields as BadRequest field violations", () => {
    const error = toConnectError(
      new DomainError("invalid_argument", "INVALID_ARGUMENT", "two bad fields", {
        violations: [
          { field: "user_id", description: "must not be empty" },
          { field: "amount", description: "must be positive" },
        ],
      }),
    );
    const badRequest = must(error.findDetails(BadRequestSchema)[0]);
    expect(
      badRequest.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
    ).to.deep.equal([
      { field: "user_id", description: "must not be empty" },
      { field: "amount", description: "must be positive" },
    ]);
    expect(error.code).to.equal(Code.InvalidArgument);
  });

  it("turns invalidField into InvalidArgument with both ErrorInfo and BadRequest", () => {
    const error = toConnectError(invalidField("date", "is not a real calendar date"));
    expect(error.code).to.equal(Code.InvalidArgument);
    expect(must(error.findDetails(ErrorInfoSchema)[0]).metadata).to.deep.equal({ field: "date" });
    expect(must(error.findDetails(BadRequestSchema)[0]).fieldViolations[0]?.field).to.equal("date");
  });

  it("adds a RetryInfo with the delay when retrying helps", () => {
    const error = toConnectError(
      new DomainError("unavailable", "QUEUE_UNAVAILABLE", "retry shortly", { retryAfterMs: 1500 }),
    );
    const retry = must(must(error.findDetails(RetryInfoSchema)[0]).retryDelay);
    expect(retry.seconds).to.equal(1n);
    expect(retry.nanos).to.equal(500_000_000);
  });

  it("adds a RetryInfo for transient database errors", () => {
    const transient = must(transientDomainError({ code: "40P01" }));
    const error = toConnectError(transient);
    expect(error.code).to.equal(Code.Aborted);
    expect(must(error.findDetails(ErrorInfoSchema)[0]).reason).to.equal("CONCURRENT_UPDATE");
    expect(error.findDetails(RetryInfoSchema)).to.have.length(1);
  });

  it("never leaks the underlying cause into the message or details", () => {
    const cause = new Error("password authentication failed for user postgres");
    const error = toConnectError(
      new DomainError("unavailable", "QUEUE_UNAVAILABLE", "the waiting room is unavailable", {
        cause,
        retryAfterMs: 1000,
      }),
    );
    expect(error.message).not.to.contain("password");
    expect(JSON.stringify(error.findDetails(ErrorInfoSchema))).not.to.contain("password");
  });

  it("survives the Connect wire encoding, as a client decodes it", () => {
    const error = toConnectError(
      new DomainError("unavailable", "QUEUE_UNAVAILABLE", "retry shortly", {
        metadata: { concert_id: "c-1" },
        violations: [{ field: "user_id", description: "bad" }],
        retryAfterMs: 250,
      }),
    );
    const decoded = errorFromJson(
      JSON.parse(JSON.stringify(errorToJson(error, undefined))),
      undefined,
      new ConnectError("could not decode", Code.Internal),
    );
    expect(decoded.code).to.equal(Code.Unavailable);
    expect(decoded.rawMessage).to.equal("retry shortly");
    const info = must(decoded.findDetails(ErrorInfoSchema)[0]);
    expect({ reason: info.reason, domain: info.domain, metadata: info.metadata }).to.deep.equal({
      reason: "QUEUE_UNAVAILABLE",
      domain: "stagedoor.dev",
      metadata: { concert_id: "c-1" },
    });
    expect(must(decoded.findDetails(BadRequestSchema)[0]).fieldViolations[0]?.field).to.equal(
      "user_id",
    );
    expect(must(must(decoded.findDetails(RetryInfoSchema)[0]).retryDelay).nanos).to.equal(
      250_000_000,
    );
  });
});
