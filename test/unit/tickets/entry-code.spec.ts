import { randomBytes, randomUUID } from "node:crypto";
import { expect } from "chai";
import {
  ENTRY_CODE_LENGTH,
  EntryCodes,
  localIsoTime,
} from "../../../server/src/modules/tickets/index.js";

const TICKET = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** The code with the character at `index` replaced by another base32 letter. */
function flip(code: string, index: number): string {
  const current = code[index] ?? "A";
  const other = ALPHABET[(ALPHABET.indexOf(current) + 1) % 32] ?? "A";
  return code.slice(0, index) + other + code.slice(index + 1);
}

describe("EntryCodes", () => {
  const codes = new EntryCodes(randomBytes(32));

  it("signs a ticket id into 42 base32 characters and reads it back", () => {
    const code = codes.codeFor(TICKET);
    expect(code).to.have.length(ENTRY_CODE_LENGTH).and.to.equal(code.toUpperCase());
    expect(ENTRY_CODE_LENGTH).to.equal(42);
    expect(code).to.match(/^[A-Z2-7]{42}$/);
    expect(codes.read(code)).to.equal(TICKET);
    // Deterministic: the same ticket always shows the same code.
    expect(codes.codeFor(TICKET)).to.equal(code);
  });

  it("reads codes typed in lower case, with spaces or dashes", () => {
    const code = codes.codeFor(TICKET);
    const grouped = code.match(/.{1,6}/g)?.join("-") ?? "";
    expect(codes.read(code.toLowerCase())).to.equal(TICKET);
    expect(codes.read(grouped)).to.equal(TICKET);
    expect(codes.read(` ${code.slice(0, 20)} ${code.slice(20)} `)).to.equal(TICKET);
  });

  it("refuses every single-character change of a code (tampered id or MAC)", () => {
    const code = codes.codeFor(TICKET);
    for (let index = 0; index < code.length; index++) {
      expect(codes.read(flip(code, index)), `character ${index} changed`).to.equal(null);
    }
  });

  it("refuses a code of another key, one made for another ticket by splicing, and junk", () => {
    const other = new EntryCodes(randomBytes(32));
    const code = codes.codeFor(TICKET);
    expect(other.read(code)).to.equal(null);
    const second = codes.codeFor(randomUUID());
    // The first ticket's id with the second ticket's MAC.
    expect(codes.read(code.slice(0, 26) + second.slice(26))).to.equal(null);
    for (const junk of [
      "",
      code.slice(0, -1),
      `${code}A`,
      code.replace(/.$/, "1"),
      "0".repeat(42),
      "A".repeat(42),
      "x".repeat(10_000),
      `${code.slice(0, 41)}\u0000`,
    ]) {
      expect(codes.read(junk), JSON.stringify(junk.slice(0, 50))).to.equal(null);
    }
  });

  it("refuses a non-canonical last character (padding bits set)", () => {
    const code = codes.codeFor(TICKET);
    const last = ALPHABET.indexOf(code.at(-1) ?? "A");
    // The last character carries 3 bits of data and 2 zero bits.
    expect(last & 3).to.equal(0);
    expect(codes.read(code.slice(0, -1) + ALPHABET[last | 1])).to.equal(null);
  });

  it("refuses keys shorter than 32 bytes and ids that are not UUIDs", () => {
    expect(() => new EntryCodes(randomBytes(31))).to.throw(RangeError);
    expect(() => codes.codeFor("not-a-uuid")).to.throw(RangeError);
  });
});

describe("localIsoTime", () => {
  it("renders an instant on the venue's wall clock with its offset", () => {
    const instant = new Date("2026-12-24T10:30:00Z");
    expect(localIsoTime(instant, "Asia/Seoul")).to.equal("2026-12-24T19:30:00+09:00");
    expect(localIsoTime(instant, "UTC")).to.equal("2026-12-24T10:30:00+00:00");
    expect(localIsoTime(instant, "America/New_York")).to.equal("2026-12-24T05:30:00-05:00");
    expect(localIsoTime(instant, "Asia/Kolkata")).to.equal("2026-12-24T16:00:00+05:30");
    // Daylight saving time moves the offset.
    expect(localIsoTime(new Date("2026-07-01T12:00:00Z"), "Europe/Berlin")).to.equal(
      "2026-07-01T14:00:00+02:00",
    );
    // Midnight is 00, never 24.
    expect(localIsoTime(new Date("2026-12-24T15:00:00Z"), "Asia/Seoul")).to.equal(
      "2026-12-25T00:00:00+09:00",
    );
  });
});
