import { createHmac, timingSafeEqual } from "node:crypto";
import { DomainError } from "../../shared/domain-error.js";

/**
 * Decides whether a caller may take a queue token for a user. This is the one
 * seam where a deployment plugs in its identity provider: `trust` for local
 * use, `hmac` for a backend that signs short-lived assertions, and room for
 * JWT/OIDC verifiers with the same shape.
 */
export interface UserVerifier {
  /** Throws `unauthenticated` unless `assertion` proves the caller is `userId`. */
  verify(userId: string, assertion: string | undefined, now: Date): void;
}

/** Takes the user id as given. For local use and the seed's contract only. */
export class TrustUserVerifier implements UserVerifier {
  verify(): void {}
}

const ASSERTION_VERSION = "v1";
/** Assertions valid for longer than this are refused, so a leaked one dies soon. */
const MAX_ASSERTION_LIFETIME_SECONDS = 3600;

function assertionSignature(secret: string, encodedUser: string, expires: string): Buffer {
  return createHmac("sha256", secret)
    .update(`${ASSERTION_VERSION}.${encodedUser}.${expires}`)
    .digest();
}

/**
 * Signs a user assertion for `AUTH_MODE=hmac`:
 * `v1.<base64url(userId)>.<expiry in Unix seconds>.<base64url(HMAC-SHA256)>`,
 * where the HMAC covers everything before the last dot. A backend that has
 * authenticated the user signs one and sends it as the bearer credential of
 * IssueQueueToken.
 */
export function signUserAssertion(secret: string, userId: string, expiresAt: Date): string {
  const encodedUser = Buffer.from(userId, "utf8").toString("base64url");
  const expires = String(Math.floor(expiresAt.getTime() / 1000));
  const signature = assertionSignature(secret, encodedUser, expires).toString("base64url");
  return `${ASSERTION_VERSION}.${encodedUser}.${expires}.${signature}`;
}

/** Accepts only assertions signed with the shared secret whose subject is the user. */
export class HmacUserVerifier implements UserVerifier {
  readonly #secret: string;

  constructor(secret: string) {
    this.#secret = secret;
  }

  verify(userId: string, assertion: string | undefined, now: Date): void {
    const refuse = (why: string): never => {
      throw new DomainError("unauthenticated", "ASSERTION_INVALID", `user assertion ${why}`);
    };
    if (assertion === undefined || assertion === "") refuse("is missing");
    const parts = (assertion as string).split(".");
    if (parts.length !== 4 || parts[0] !== ASSERTION_VERSION) refuse("is malformed");
    const [, encodedUser = "", expires = "", signature = ""] = parts;
    if (!/^\d{1,12}$/.test(expires)) refuse("is malformed");
    // Only the canonical spelling of a signature is accepted; Buffer.from would
    // ignore stray characters and padding bits.
    if (!/^[A-Za-z0-9_-]{43}$/.test(signature)) refuse("has a bad signature");
    const expected = assertionSignature(this.#secret, encodedUser, expires);
    const given = Buffer.from(signature, "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      refuse("has a bad signature");
    }
    const expiresAtSeconds = Number(expires);
    const nowSeconds = now.getTime() / 1000;
    if (expiresAtSeconds <= nowSeconds) refuse("has expired");
    if (expiresAtSeconds > nowSeconds + MAX_ASSERTION_LIFETIME_SECONDS) refuse("lives too long");
    if (Buffer.from(encodedUser, "base64url").toString("utf8") !== userId) {
      throw new DomainError(
        "permission_denied",
        "USER_MISMATCH",
        "the user assertion is for another user",
      );
    }
  }
}
