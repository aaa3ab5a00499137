import { createHash, timingSafeEqual } from "node:crypto";
import { DomainError } from "../../shared/domain-error.js";

/** An operator, named by the API key it called with: the audit trail's "who". */
export interface AdminActor {
  readonly name: string;
}

/** One configured operator key: its name and the SHA-256 of the key. */
export interface AdminKey {
  readonly name: string;
  readonly sha256: Buffer;
}

/**
 * The operator API keys, kept only as SHA-256 hashes. A presented key is
 * hashed and compared with every configured hash in constant time (no early
 * exit, so how long a check takes says nothing about which key came close).
 * Keys are never logged: this class has no way to give one back.
 */
export class AdminKeyring {
  readonly #keys: readonly AdminKey[];

  constructor(keys: readonly AdminKey[]) {
    for (const key of keys) {
      if (key.sha256.length !== 32) throw new Error(`admin key ${key.name} is not a SHA-256 hash`);
    }
    this.#keys = keys.map((key) => ({ name: key.name, sha256: Buffer.from(key.sha256) }));
  }

  /** Whether any key is configured; without one the operator API is disabled. */
  get enabled(): boolean {
    return this.#keys.length > 0;
  }

  /**
   * The operator a credential belongs to. Throws `failed_precondition`
   * `ADMIN_API_DISABLED` when no key is configured (whatever was sent),
   * `unauthenticated` `ADMIN_KEY_MISSING` without a credential, and
   * `unauthenticated` `ADMIN_KEY_INVALID` for anything that is not a
   * configured key (a fan's queue token included).
   */
  authenticate(credential: string | undefined): AdminActor {
    if (!this.enabled) {
      throw new DomainError(
        "failed_precondition",
        "ADMIN_API_DISABLED",
        "the operator API is disabled: the server has no ADMIN_API_KEYS",
      );
    }
    if (credential === undefined || credential === "") {
      throw new DomainError(
        "unauthenticated",
        "ADMIN_KEY_MISSING",
        "an operator API key is required (Authorization: Bearer <key>)",
      );
    }
    const presented = createHash("sha256").update(credential, "utf8").digest();
    let found: AdminKey | undefined;
    for (const key of this.#keys) {
      // Every key is compared, whichever matches.
      if (timingSafeEqual(presented, key.sha256) && found === undefined) found = key;
    }
    if (found === undefined) {
      throw new DomainError(
        "unauthenticated",
        "ADMIN_KEY_INVALID",
        "the credential is not an operator API key",
      );
    }
    return { name: found.name };
  }
}
