import { expect } from "chai";
import { decodePageToken, encodePageToken } from "../../../server/src/shared/page-token.js";
import { expectThrowsDomain } from "../unit-helpers.js";

const SHAPE = { number: "number", id: "string" } as const;

function base64url(text: string): string {
  return Buffer.from(text, "utf8").toString("base64url");
}

function expectRefused(token: string): void {
  const error = expectThrowsDomain(
    () => decodePageToken(token, SHAPE),
    "invalid_argument",
    "INVALID_ARGUMENT",
  );
  expect(error.violations).to.deep.equal([
    { field: "page_token", description: "is not a page token this server issued" },
  ]);
}

describe("page tokens", () => {
  it("round-trips a keyset position", () => {
    const token = encodePageToken({ number: 42, id: "3f0c9a52-8d4b-4e21-9a7c-1b2c3d4e5f60" });
    expect(token).to.match(/^[A-Za-z0-9_-]+$/);
    expect(decodePageToken(token, SHAPE)).to.deep.equal({
      number: 42,
      id: "3f0c9a52-8d4b-4e21-9a7c-1b2c3d4e5f60",
    });
  });

  it("round-trips non-ASCII strings", () => {
    const token = encodePageToken({ number: 0, id: "좌석-ü-😀" });
    expect(decodePageToken(token, SHAPE)?.id).to.equal("좌석-ü-😀");
  });

  it("treats the empty token as the first page", () => {
    expect(decodePageToken("", SHAPE)).to.equal(undefined);
  });

  it("names the field it was given", () => {
    const error = expectThrowsDomain(
      () => decodePageToken("%%%", SHAPE, "pageToken"),
      "invalid_argument",
      "INVALID_ARGUMENT",
    );
    expect(error.violations[0]?.field).to.equal("pageToken");
  });

  describe("refuses", () => {
    const cases: [string, string][] = [
      ["characters outside base64url", "abc+/="],
      ["padding", `${base64url('{"number":1,"id":"a"}')}=`],
      ["whitespace", ` ${base64url('{"number":1,"id":"a"}')}`],
      ["base64url that is not JSON", base64url("not json at all")],
      ["JSON null", base64url("null")],
      ["a JSON string", base64url('"hello"')],
      ["a JSON number", base64url("42")],
      ["a JSON array", base64url("[1, 2]")],
      ["a missing key", base64url('{"number":1}')],
      ["a string where a number belongs", base64url('{"number":"1","id":"a"}')],
      ["a number where a string belongs", base64url('{"number":1,"id":2}')],
      ["a fractional number", base64url('{"number":1.5,"id":"a"}')],
      ["an unsafe integer", base64url('{"number":9007199254740993,"id":"a"}')],
      ["a huge exponent", base64url('{"number":1e400,"id":"a"}')],
      ["null values", base64url('{"number":null,"id":null}')],
      ["an oversized token", base64url(JSON.stringify({ number: 1, id: "x".repeat(600) }))],
    ];
    for (const [name, token] of cases) {
      it(name, () => {
        expectRefused(token);
      });
    }

    it("a forged token with the right keys but an object value", () => {
      expectRefused(base64url('{"number":{"$gt":0},"id":"a"}'));
    });
  });

  it("refuses tokens longer than 512 characters even when they are valid JSON", () => {
    const id = "y".repeat(400);
    const token = encodePageToken({ number: 1, id });
    expect(token.length).to.be.greaterThan(512);
    expectRefused(token);
    // Just under the bound still works, so the bound is the only reason.
    const shorter = encodePageToken({ number: 1, id: "y".repeat(350) });
    expect(shorter.length).to.be.at.most(512);
    expect(decodePageToken(shorter, SHAPE)?.id).to.have.length(350);
  });
});
