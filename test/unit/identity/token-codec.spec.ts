import { createHash, createHmac, randomBytes } from "node:crypto";
import { expect } from "chai";
import { TokenCodec } from "../../../server/src/modules/identity/token-codec.js";

const TOKEN_SHAPE = /^sdq_[A-Za-z0-9_-]{65}$/;
const CONCERT = "0b6c1f0e-5d1a-4c39-9a4e-2f7d3c8b9e01";
const OTHER_CONCERT = "ffffffff-0000-4c39-8a4e-000000000000";

describe("TokenCodec", () => {
  const codec = new TokenCodec(randomBytes(32));

  it("mints sdq_ followed by 65 base64url characters (22 of the concert, 43 secret)", () => {
    for (let i = 0; i < 50; i++) {
      const token = codec.tokenFor(CONCERT, codec.newTokenId());
      expect(token).to.match(TOKEN_SHAPE);
      expect(codec.isWellFormed(token)).to.equal(true);
    }
  });

  it("names the token's concert, which read() gives back with the token's hash", () => {
    for (const concertId of [CONCERT, OTHER_CONCERT, "00000000-0000-0000-0000-000000000000"]) {
      const token = codec.tokenFor(concertId, codec.newTokenId());
      expect(token.slice(4, 26)).to.equal(
        Buffer.from(concertId.replaceAll("-", ""), "hex").toString("base64url"),
      );
      expect(codec.read(token)).to.deep.equal({ concertId, hash: codec.hash(token) });
    }
    expect(codec.read("sdq_short")).to.equal(null);
  });

  it("binds the secret part to the concert: another concert's token for the same id differs", () => {
    const id = codec.newTokenId();
    const a = codec.tokenFor(CONCERT, id);
    const b = codec.tokenFor(OTHER_CONCERT, id);
    expect(a.slice(26)).not.to.equal(b.slice(26));
    // Swapping the concert part yields a well-formed token with another hash,
    // which no store holds under that concert.
    const swapped = `sdq_${b.slice(4, 26)}${a.slice(26)}`;
    expect(codec.read(swapped)?.concertId).to.equal(OTHER_CONCERT);
    expect(swapped).not.to.equal(b);
  });

  it("refuses to mint for a concert id that is not a lower-case UUID", () => {
    expect(() => codec.tokenFor("concert-1", "id")).to.throw(RangeError, /UUID/);
    expect(() => codec.tokenFor(CONCERT.toUpperCase(), "id")).to.throw(RangeError);
  });

  it("makes fresh 128-bit token ids, across many refills of its random pool", () => {
    // 256 ids per 4 KiB pool: 2,000 ids draw it afresh several times.
    const ids = new Set(Array.from({ length: 2000 }, () => codec.newTokenId()));
    expect(ids.size).to.equal(2000);
    for (const id of ids) expect(id).to.match(/^[0-9a-f]{32}$/);
  });

  it("derives the same token for the same id, and different tokens for different ids", () => {
    const id = codec.newTokenId();
    expect(codec.tokenFor(CONCERT, id)).to.equal(codec.tokenFor(CONCERT, id));
    expect(codec.tokenFor(CONCERT, id)).not.to.equal(codec.tokenFor(CONCERT, codec.newTokenId()));
  });

  it("derives different tokens under different secrets", () => {
    const other = new TokenCodec(randomBytes(32));
    const id = codec.newTokenId();
    expect(other.tokenFor(CONCERT, id)).not.to.equal(codec.tokenFor(CONCERT, id));
    // The same secret bytes in a new codec derive the same token (restarts keep tokens valid).
    const secret = randomBytes(32);
    expect(new TokenCodec(secret).tokenFor(CONCERT, id)).to.equal(
      new TokenCodec(Buffer.from(secret)).tokenFor(CONCERT, id),
    );
  });

  it("does not embed the token id in the token", () => {
    const id = codec.newTokenId();
    const token = codec.tokenFor(CONCERT, id);
    expect(token).not.to.contain(id);
    expect(Buffer.from(token.slice(26), "base64url").toString("hex")).not.to.contain(id);
  });

  it("stores a hash that differs from the token and is deterministic", () => {
    const token = codec.tokenFor(CONCERT, codec.newTokenId());
    const hash = codec.hash(token);
    expect(hash).not.to.equal(token);
    expect(hash).not.to.contain(token.slice(26));
    expect(codec.hash(token)).to.equal(hash);
    expect(codec.isWellFormed(hash)).to.equal(false);
    expect(codec.hash(codec.tokenFor(CONCERT, codec.newTokenId()))).not.to.equal(hash);
  });

  it("keeps the formats stores already hold: SHA-256 of the token, HMAC-SHA256 of concert/id", () => {
    // Live tokens stored by an earlier version must still be found, and an
    // idempotent issue must hand back the very token first given out.
    const secret = randomBytes(32);
    const pinned = new TokenCodec(secret);
    const token = pinned.tokenFor(CONCERT, "token-id");
    expect(pinned.hash(token)).to.equal(createHash("sha256").update(token).digest("base64url"));
    expect(token.slice(26)).to.equal(
      createHmac("sha256", secret).update(`${CONCERT}/token-id`).digest("base64url"),
    );
    expect(pinned.tokenFor(CONCERT, "token-id")).to.equal(token);
  });

  describe("isWellFormed", () => {
    const good = codec.tokenFor(CONCERT, "fixed-id");
    const body = good.slice(4);
    const concertPart = body.slice(0, 22);
    const secretPart = body.slice(22);
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
      ["the old shape (no concert part)", `sdq_${secretPart}`],
      // 16 bytes take 22 characters whose last carries 2 bits: "B" sets a spare bit.
      ["a non-canonical concert part", `sdq_${concertPart.slice(0, 21)}B${secretPart}`],
    ];
    for (const [name, value] of nearMisses) {
      it(`rejects ${name}`, () => {
        expect(codec.isWellFormed(value)).to.equal(false);
      });
    }

    it("accepts any well-shaped token, even one it did not mint (the store decides)", () => {
      expect(codec.isWellFormed(`sdq_${"A".repeat(65)}`)).to.equal(true);
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
