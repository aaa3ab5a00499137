import { expect } from "chai";
import {
  MAX_REQUEST_ID_LENGTH,
  MAX_USER_ID_LENGTH,
  pageSize,
  requireCalendarDate,
  requireRequestId,
  requireUserId,
  requireUuid,
} from "../../../server/src/shared/validation.js";
import { expectThrowsDomain } from "../unit-helpers.js";

/** Asserts an invalid_argument error that names `field` in its violation. */
function expectInvalid(fn: () => unknown, field: string): void {
  const error = expectThrowsDomain(fn, "invalid_argument", "INVALID_ARGUMENT");
  expect(error.violations.map((v) => v.field)).to.deep.equal([field]);
  expect(error.metadata).to.deep.equal({ field });
  expect(error.message.startsWith(`${field}: `), error.message).to.equal(true);
}

describe("validation", () => {
  describe("requireUserId", () => {
    it("returns a valid id unchanged", () => {
      expect(requireUserId("alice")).to.equal("alice");
      expect(requireUserId("a")).to.equal("a");
      expect(requireUserId("user with spaces & symbols: é")).to.equal(
        "user with spaces & symbols: é",
      );
    });

    it("accepts exactly 128 characters and refuses 129", () => {
      expect(MAX_USER_ID_LENGTH).to.equal(128);
      expect(requireUserId("x".repeat(128))).to.have.length(128);
      expectInvalid(() => requireUserId("x".repeat(129)), "user_id");
    });

    it("counts characters, not UTF-16 code units, for multi-byte ids", () => {
      // 128 emoji are 256 UTF-16 code units and 512 UTF-8 bytes, yet 128 characters.
      const emoji = "😀".repeat(128);
      expect(requireUserId(emoji)).to.equal(emoji);
      expect(requireUserId("가".repeat(128))).to.have.length(128);
      expectInvalid(() => requireUserId("😀".repeat(129)), "user_id");
      expectInvalid(() => requireUserId("가".repeat(129)), "user_id");
    });

    it("refuses the empty id", () => {
      expectInvalid(() => requireUserId(""), "user_id");
    });

    for (const [name, value] of [
      ["NUL", "ali\u0000ce"],
      ["newline", "alice\n"],
      ["tab", "\talice"],
      ["escape", "al\u001bice"],
      ["DEL", "alice\u007f"],
    ] as const) {
      it(`refuses a ${name} control character`, () => {
        expectInvalid(() => requireUserId(value), "user_id");
      });
    }

    it("names the field it was given", () => {
      expectInvalid(() => requireUserId("", "userId"), "userId");
    });

    // Lone surrogates cannot be encoded as UTF-8: PostgreSQL and Redis would
    // both store U+FFFD, so "\ud800" and "\udbff" would become one user there.
    it("refuses ids that are not well-formed Unicode (lone surrogates)", () => {
      expectInvalid(() => requireUserId("user\ud800"), "user_id");
      expectInvalid(() => requireUserId("\udfffuser"), "user_id");
    });
  });

  describe("requireRequestId", () => {
    it("accepts 1 to 128 characters", () => {
      expect(MAX_REQUEST_ID_LENGTH).to.equal(128);
      expect(requireRequestId("r")).to.equal("r");
      expect(requireRequestId("9b2f6c1e-0d1f-4a7e-8b1e-6f8a2c3d4e5f")).to.equal(
        "9b2f6c1e-0d1f-4a7e-8b1e-6f8a2c3d4e5f",
      );
      expect(requireRequestId("r".repeat(128))).to.have.length(128);
    });

    it("refuses empty, too long and control characters", () => {
      expectInvalid(() => requireRequestId(""), "request_id");
      expectInvalid(() => requireRequestId("r".repeat(129)), "request_id");
      expectInvalid(() => requireRequestId("abc\r\n"), "request_id");
      expectInvalid(() => requireRequestId("a\u0000"), "request_id");
    });
  });

  describe("requireUuid", () => {
    it("accepts a canonical lower-case UUID", () => {
      const id = "3f0c9a52-8d4b-4e21-9a7c-1b2c3d4e5f60";
      expect(requireUuid(id, "seat_id")).to.equal(id);
    });

    for (const [name, value] of [
      ["empty", ""],
      ["upper case", "3F0C9A52-8D4B-4E21-9A7C-1B2C3D4E5F60"],
      ["braced", "{3f0c9a52-8d4b-4e21-9a7c-1b2c3d4e5f60}"],
      ["without dashes", "3f0c9a528d4b4e219a7c1b2c3d4e5f60"],
      ["too short", "3f0c9a52-8d4b-4e21-9a7c-1b2c3d4e5f6"],
      ["with a trailing newline", "3f0c9a52-8d4b-4e21-9a7c-1b2c3d4e5f60\n"],
      ["a non-hex digit", "3f0c9a52-8d4b-4e21-9a7c-1b2c3d4e5f6g"],
      ["a number", "42"],
    ] as const) {
      it(`refuses ${name}`, () => {
        expectInvalid(() => requireUuid(value, "seat_id"), "seat_id");
      });
    }
  });

  describe("pageSize", () => {
    it("maps 0 to the default and keeps 1..max", () => {
      expect(pageSize(0, 50, 500)).to.equal(50);
      expect(pageSize(1, 50, 500)).to.equal(1);
      expect(pageSize(500, 50, 500)).to.equal(500);
    });

    it("refuses negative, fractional, non-finite and too large sizes instead of clamping", () => {
      expectInvalid(() => pageSize(-1, 50, 500), "page_size");
      expectInvalid(() => pageSize(1.5, 50, 500), "page_size");
      expectInvalid(() => pageSize(Number.NaN, 50, 500), "page_size");
      expectInvalid(() => pageSize(Number.POSITIVE_INFINITY, 50, 500), "page_size");
      const error = expectThrowsDomain(
        () => pageSize(501, 50, 500),
        "invalid_argument",
        "INVALID_ARGUMENT",
      );
      expect(error.message).to.contain("500");
    });
  });

  describe("requireCalendarDate", () => {
    for (const value of ["2030-01-01", "2025-02-28", "2024-02-29", "2000-02-29", "9999-12-31"]) {
      it(`accepts ${value}`, () => {
        expect(requireCalendarDate(value)).to.equal(value);
      });
    }

    for (const [value, why] of [
      ["2025-02-30", "February 30th"],
      ["2023-02-29", "February 29th of a common year"],
      ["1900-02-29", "February 29th of a century that is not a leap year"],
      ["2025-04-31", "April 31st"],
      ["2025-13-01", "month 13"],
      ["2025-00-10", "month 0"],
      ["2025-01-00", "day 0"],
      ["2025-01-32", "day 32"],
      ["0000-01-01", "year 0"],
    ] as const) {
      it(`refuses ${value} (${why})`, () => {
        expectInvalid(() => requireCalendarDate(value), "date");
      });
    }

    for (const value of [
      "",
      "2025-1-01",
      "2025-01-1",
      "25-01-01",
      "2025/01/01",
      "2025-01-01T00:00:00Z",
      " 2025-01-01",
      "2025-01-01\n",
      "２０２５-01-01",
      "abcd-ef-gh",
    ]) {
      it(`refuses the malformed ${JSON.stringify(value)}`, () => {
        expectInvalid(() => requireCalendarDate(value), "date");
      });
    }

    // Date.UTC maps years 0..99 to 1900..1999, which must not make real dates "impossible".
    it("accepts real dates in years 1 to 99", () => {
      expect(requireCalendarDate("0001-01-01")).to.equal("0001-01-01");
      expect(requireCalendarDate("0099-12-31")).to.equal("0099-12-31");
    });
  });
});
