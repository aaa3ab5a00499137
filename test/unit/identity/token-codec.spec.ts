import { randomBytes } from "node:crypto";
import { expect } from "chai";
import { TokenCodec } from "../../../server/src/modules/identity/token-codec.js";

const TOKEN_SHAPE = /^sdq_[A-Za-z0-9_-]{43}$/;

describe("TokenCodec", () => {
  const codec = new TokenCodec(randomBytes(32));

  it("mints sdq_ followed by 43 base64url characters", () => {
    for (let i = 0; i < 50; i++) {
      const token = codec.tokenFor(codec.newTokenId());
      expect(token).to.match(TOKEN_SHAPE);
      expect(codec.isWellFormed(token)).to.equal(true);
    }
  });

  it("makes fresh 128-bit token ids, across many refills of its random pool", () => {
    // 256 ids per 4 KiB pool: 2,000 ids draw it afresh several times.
    const ids = new Set(Array.from({ length: 2000 }, () => codec.newTokenId()));
    expect(ids.size).to.equal(2000);
    for (const id of ids) expect(id).to.match(/^[0-9a-f]{32}$/);
  });

  it("derives the same token for the same id, and different tokens for different ids", () => {
    const id = codec.newTokenId();
    expect(codec.tokenFor(id)).to.equal(codec.tokenFor(id));
    expect(codec.tokenFor(id)).not.to.equal(codec.tokenFor(codec.newTokenId()));
  });

  it("derives different tokens under different secrets", () => {
    const other = new TokenCodec(randomBytes(32));
    const id = codec.newTokenId();
    expect(other.tokenFor(id)).not.to.equal(codec.tokenFor(id));
    // The same secret bytes in a new codec derive the same token (restarts keep tokens valid).
    const secret = randomBytes(32);
    expect(new TokenCodec(secret).tokenFor(id)).to.equal(
      new TokenCodec(Buffer.from(secret)).tokenFor(id),
    );
  });

  it("does not embed the token id in the token", () => {
    const id = codec.newTokenId();
    const token = codec.tokenFor(id);
    expect(token).not.to.contain(id);
    expect(Buffer.from(token.slice(4), "base64url").toString("hex")).not.to.contain(id);
  });

  it("stores a hash that differs from the token and is deterministic", () => {
    const token = codec.tokenFor(codec.newTokenId());
    const hash = codec.hash(token);
    expect(hash).not.to.equal(token);
    expect(hash).not.to.contain(token.slice(4));
    expect(codec.hash(token)).to.equal(hash);
    expect(codec.isWellFormed(hash)).to.equal(false);
    expect(codec.hash(codec.tokenFor(codec.newTokenId()))).not.to.equal(hash);
  });

  describe("isWellFormed", () => {
    const good = codec.tokenFor("fixed-id");
    const body = good.slice(4);
    const nearMisses: [string, string][] = [
      ["the empty string", ""],
      ["the prefix alone", "sdq_"],
      ["an upper-case prefix", `SDQ_${body}`],
      ["another prefix", `sdx_${body}`],
      ["a missing underscore", `sdq${body}`],
      ["a body one character short", `sdq_${body.slice(1)}`],
      ["a body one character long", `${good}A`],
      ["padding", `${good.slice(0, -1)}=`],
      ["a plus sign", `sdq_+${body.slice(1)}`],
      ["a slash", `sdq_/${body.slice(1)}`],
      ["a trailing newline", `${good}\n`],
      ["a leading space", ` ${good}`],
      ["a trailing space in place of a character", `${good.slice(0, -1)} `],
      ["a non-ASCII letter", `sdq_é${body.slice(1)}`],
      ["a bearer prefix", `Bearer ${good}`],
    ];
    for (const [name, value] of nearMisses) {
      it(`rejects ${name}`, () => {
        expect(codec.isWellFormed(value)).to.equal(false);
      });
    }

    it("accepts any well-shaped token, even one it did not mint (the store decides)", () => {
      expect(codec.isWellFormed(`sdq_${"A".repeat(43)}`)).to.equal(true);
      expect(codec.isWellFormed(good)).to.equal(true);
    });
  });

  it("refuses a secret shorter than 32 bytes", () => {
    expect(() => new TokenCodec(randomBytes(31))).to.throw(RangeError, /32 bytes/);
    expect(() => new TokenCodec(Buffer.alloc(0))).to.throw(RangeError);
    expect(() => new TokenCodec(randomBytes(32))).not.to.throw();
    expect(() => new TokenCodec(randomBytes(64))).not.to.throw();
  });
});
