import { createHmac, hash } from "node:crypto";
import { isUuid } from "../../shared/ids.js";
import { randomHex } from "../../shared/random-hex.js";
import { remembered } from "../../shared/remembered.js";

const TOKEN_PREFIX = "sdq_";
// A concert id (a UUID, 16 bytes) in base64url.
const CONCERT_PART_LENGTH = 22;
// 32 bytes of HMAC output in base64url.
const SECRET_PART_LENGTH = 43;
const TOKEN_LENGTH = TOKEN_PREFIX.length + CONCERT_PART_LENGTH + SECRET_PART_LENGTH;
const TOKEN_PATTERN = /^sdq_[A-Za-z0-9_-]{65}$/;

/** What a presented token says about itself: whose line it belongs to. */
export interface PresentedToken {
  /** The concert named in the token, which says where its record lives. */
  readonly concertId: string;
  /** The hash under which the token is stored and looked up. */
  readonly hash: string;
}

/** The 22 base64url characters of a UUID's 16 bytes. */
function encodeConcert(concertId: string): string {
  if (!isUuid(concertId)) throw new RangeError("a token's concert id must be a UUID");
  return Buffer.from(concertId.replaceAll("-", ""), "hex").toString("base64url");
}

/** {@link encodeConcert}, remembered (a concert id that is not a UUID throws, and is not kept). */
const concertPartOf = remembered(encodeConcert);

/** {@link decodeConcert}, remembered (null for a part that is not a concert's). */
const concertOfPart = remembered(decodeConcert);

/** The UUID of a token's concert part, or null when the part is not one canonically. */
function decodeConcert(part: string): string | null {
  const bytes = Buffer.from(part, "base64url");
  // Only the canonical encoding is accepted (the last character carries 2 bits).
  if (bytes.length !== 16 || bytes.toString("base64url") !== part) return null;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Mints and recognises queue tokens.
 *
 * A token is `sdq_` + the concert id (16 bytes, base64url, 22 characters) +
 * HMAC-SHA256(secret, concertId + tokenId) (43 characters): the secret part is
 * 256 bits that cannot be guessed without the secret. The concert part is
 * public (concert ids are) and says which concert's line holds the token, so
 * the store finds the token's record without a search: on Redis Cluster every
 * key of a concert's line lives in one hash slot, and the lookup goes straight
 * to it. The store keeps only the token id and the SHA-256 of the whole token,
 * so its contents alone never yield a usable token, yet the server can hand a
 * user back their own live token (issuing is idempotent) by deriving it again
 * from the concert and the id. The prefix makes leaked tokens easy to spot by
 * secret scanners.
 */
export class TokenCodec {
  readonly #secret: Buffer;

  constructor(secret: Buffer) {
    if (secret.length < 32) throw new RangeError("the token secret must be at least 32 bytes");
    this.#secret = secret;
  }

  /** A fresh random token id (128 bits; see `randomHex`). */
  newTokenId(): string {
    return randomHex(16);
  }

  /** The token for a token id of a concert (a lower-case UUID, as the catalog has them). */
  tokenFor(concertId: string, tokenId: string): string {
    const concert = concertPartOf(concertId);
    const secret = createHmac("sha256", this.#secret)
      .update(`${concertId}/${tokenId}`)
      .digest("base64url");
    return `${TOKEN_PREFIX}${concert}${secret}`;
  }

  /** The hash under which a token is stored and looked up. */
  hash(token: string): string {
    // One-shot: the same digest as createHash's, without a Hash object per call.
    return hash("sha256", token, "base64url");
  }

  /** Whether a string has the shape of a token, checked before any lookup. */
  isWellFormed(token: string): boolean {
    return this.concertOf(token) !== null;
  }

  /**
   * The concert and hash of a presented token, or null when it does not have
   * the shape of one (checked before any lookup; the store decides whether it
   * is real).
   */
  read(token: string): PresentedToken | null {
    const concertId = this.concertOf(token);
    return concertId === null ? null : { concertId, hash: this.hash(token) };
  }

  private concertOf(token: string): string | null {
    if (token.length !== TOKEN_LENGTH || !TOKEN_PATTERN.test(token)) return null;
    return concertOfPart(
      token.slice(TOKEN_PREFIX.length, TOKEN_PREFIX.length + CONCERT_PART_LENGTH),
    );
  }
}
