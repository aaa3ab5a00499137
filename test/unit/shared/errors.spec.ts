import { ErrorReason, ErrorReasonSchema } from "@stagedoor/sdk";
import { expect } from "chai";
import { DomainError, invalidField } from "../../../server/src/shared/domain-error.js";
import { ErrorReasons } from "../../../server/src/shared/error-reasons.js";
import { transientDomainError } from "../../../server/src/shared/transient-errors.js";
import { expectDomainError, must } from "../unit-helpers.js";

describe("domain errors", () => {
  describe("DomainError", () => {
    it("keeps kind, reason, message, metadata, violations, retry hint and cause", () => {
      const cause = new Error("socket closed");
      const error = new DomainError("unavailable", "QUEUE_UNAVAILABLE", "try again", {
        metadata: { a: "b" },
        violations: [{ field: "x", description: "y" }],
        retryAfterMs: 250,
        cause,
      });
      expect(error).to.be.instanceOf(Error);
      expect(error.name).to.equal("DomainError");
      expect(error.message).to.equal("try again");
      expect(error.metadata).to.deep.equal({ a: "b" });
      expect(error.violations).to.deep.equal([{ field: "x", description: "y" }]);
      expect(error.retryAfterMs).to.equal(250);
      expect(error.cause).to.equal(cause);
    });

    it("captures no stack frames (an expected refusal), and leaves the stack limit as it was", () => {
      const limit = Error.stackTraceLimit;
      const cause = new Error("socket closed");
      const error = new DomainError("unavailable", "QUEUE_UNAVAILABLE", "try again", { cause });
      expect(error.stack).to.not.match(/\n\s+at /);
      expect(cause.stack).to.match(/\n\s+at /);
      expect(Error.stackTraceLimit).to.equal(limit);
    });

    it("defaults to no metadata, no violations, no retry hint and no cause", () => {
      const error = new DomainError("not_found", "SEAT_NOT_FOUND", "no such seat");
      expect(error.metadata).to.deep.equal({});
      expect(error.violations).to.deep.equal([]);
      expect(error.retryAfterMs).to.equal(undefined);
      expect("cause" in error).to.equal(false);
    });
  });

  describe("invalidField", () => {
    it("builds an invalid_argument error naming the field everywhere a client looks", () => {
      const error = invalidField("seat_number", "must be between 1 and 50");
      expect(error.kind).to.equal("invalid_argument");
      expect(error.reason).to.equal("INVALID_ARGUMENT");
      expect(error.message).to.equal("seat_number: must be between 1 and 50");
      expect(error.violations).to.deep.equal([
        { field: "seat_number", description: "must be between 1 and 50" },
      ]);
      expect(error.metadata).to.deep.equal({ field: "seat_number" });
      expect(error.retryAfterMs).to.equal(undefined);
    });
  });

  describe("ErrorReasons and the API's ErrorReason enum", () => {
    const apiNames = ErrorReasonSchema.values.map((v) => v.name);

    it("has no duplicate reasons", () => {
      expect(new Set(ErrorReasons).size).to.equal(ErrorReasons.length);
    });

    it("publishes every server reason as ERROR_REASON_<reason>", () => {
      const missing = ErrorReasons.filter((reason) => !apiNames.includes(`ERROR_REASON_${reason}`));
      expect(missing).to.deep.equal([]);
      for (const reason of ErrorReasons) {
        // The TypeScript enum strips the prefix, so ErrorInfo.reason equals its key.
        expect(ErrorReason[reason], reason).to.be.a("number").and.greaterThan(0);
      }
    });

    it("has a server reason for every API value except UNSPECIFIED", () => {
      const known = new Set<string>(ErrorReasons.map((reason) => `ERROR_REASON_${reason}`));
      const extra = apiNames.filter(
        (name) => name !== "ERROR_REASON_UNSPECIFIED" && !known.has(name),
      );
      expect(extra).to.deep.equal([]);
      expect(apiNames).to.include("ERROR_REASON_UNSPECIFIED");
      expect(must(ErrorReasonSchema.values.find((v) => v.number === 0)).name).to.equal(
        "ERROR_REASON_UNSPECIFIED",
      );
      expect(apiNames).to.have.length(ErrorReasons.length + 1);
    });
  });

  describe("transientDomainError", () => {
    for (const state of ["40001", "40P01", "55P03"]) {
      it(`maps SQLSTATE ${state} to aborted CONCURRENT_UPDATE with a retry hint`, () => {
        const cause = Object.assign(new Error("boom"), { code: state });
        const error = expectDomainError(
          transientDomainError(cause),
          "aborted",
          "CONCURRENT_UPDATE",
        );
        expect(error.retryAfterMs).to.be.a("number").and.greaterThan(0);
        expect(error.cause).to.equal(cause);
      });
    }

    for (const state of ["57014", "57P01", "53300"]) {
      it(`maps SQLSTATE ${state} to unavailable with a retry hint`, () => {
        const error = expectDomainError(
          transientDomainError({ code: state }),
          "unavailable",
          "SERVER_BUSY",
        );
        expect(error.retryAfterMs).to.be.a("number").and.greaterThan(0);
      });
    }

    for (const state of ["57P01", "57P02", "57P03", "08006", "08001", "08003"]) {
      it(`maps SQLSTATE ${state} (the database going away or not back yet) to unavailable, retry in a second`, () => {
        const error = expectDomainError(
          transientDomainError({ code: state }),
          "unavailable",
          "SERVER_BUSY",
        );
        expect(error.retryAfterMs).to.equal(1000);
        expect(error.message).to.contain("database is unreachable");
      });
    }

    for (const code of ["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT"]) {
      it(`maps a ${code} socket error (raw, or copied onto MikroORM's DriverException) to unavailable`, () => {
        const raw = Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code });
        const cause = expectDomainError(transientDomainError(raw), "unavailable", "SERVER_BUSY");
        expect(cause.retryAfterMs).to.equal(1000);
        expect(cause.cause).to.equal(raw);
        const wrapped = Object.assign(new Error(raw.message), { name: "DriverException", code });
        expectDomainError(transientDomainError(wrapped), "unavailable", "SERVER_BUSY");
      });
    }

    for (const message of [
      "Connection terminated unexpectedly",
      "Connection terminated",
      "Client has encountered a connection error and is not queryable",
      "Client was closed and is not queryable",
      "COMMIT; - Client has encountered a connection error and is not queryable",
    ]) {
      it(`maps node-postgres' code-less "${message}" to unavailable`, () => {
        const error = expectDomainError(
          transientDomainError(new Error(message)),
          "unavailable",
          "SERVER_BUSY",
        );
        expect(error.retryAfterMs).to.equal(1000);
      });
    }

    it("prefers sqlState over code (MikroORM wraps driver errors that way)", () => {
      const error = transientDomainError({ sqlState: "40P01", code: "ECONNRESET" });
      expectDomainError(error, "aborted", "CONCURRENT_UPDATE");
    });

    it("maps a pool acquisition timeout to unavailable", () => {
      const timeout = Object.assign(new Error("Knex: Timeout acquiring a connection"), {
        name: "KnexTimeoutError",
      });
      expectDomainError(transientDomainError(timeout), "unavailable", "SERVER_BUSY");
    });

    for (const [name, value] of [
      ["an unknown SQLSTATE", { code: "23505" }],
      ["a syntax error", { code: "42601" }],
      ["a plain Error", new Error("bug")],
      ["an error that merely mentions a connection", new Error("bad Connection terminated flag")],
      ["a Node error code of another kind", { code: "ERR_INVALID_ARG_TYPE" }],
      ["a numeric code", { code: 40001 }],
      ["null", null],
      ["undefined", undefined],
      ["a string", "40P01"],
    ] as const) {
      it(`returns undefined for ${name}`, () => {
        expect(transientDomainError(value)).to.equal(undefined);
      });
    }
  });
});
