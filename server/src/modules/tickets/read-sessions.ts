import { createHash, randomBytes } from "node:crypto";
import { type Database, transaction } from "../../persistence/database.js";
import { statement, TxConnection } from "../../persistence/sql.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError } from "../../shared/domain-error.js";
import { requireUserId } from "../../shared/validation.js";
import type { Reader, UserVerifier } from "../identity/index.js";
import type { QueueStore } from "../queue/index.js";
import type { CallLimit } from "../ratelimit/index.js";

const SESSION_PREFIX = "sds_";
const SESSION_PATTERN = /^sds_[A-Za-z0-9_-]{43}$/;
/** How long a read-only session lives. */
export const READ_SESSION_TTL_MS = 12 * 3_600_000;

/** Where the rate-limit buckets of opening sessions are kept (in place of a concert). */
const SESSION_LIMIT_SCOPE = "read-sessions";
/** Sessions remembered in memory per process; the oldest is forgotten first. */
const CACHE_SIZE = 10_000;

/** Whether a bearer credential is meant as a read-only session token (by its prefix). */
export function isSessionToken(credential: string | undefined): boolean {
  return credential?.startsWith(SESSION_PREFIX) === true;
}

/** Ended sessions one CreateSession deletes, so the table never outgrows the live ones for long. */
const PRUNE_PER_OPEN = 100;

// Opens a session and deletes up to PRUNE_PER_OPEN ended ones (rows another
// transaction is deleting are skipped, not waited for).
const OPEN = statement<never>(
  "fan_session_open",
  `with ended as (
     delete from fan_session where token_hash in (
       select token_hash from fan_session where expires_at <= $3
        limit ${PRUNE_PER_OPEN} for update skip locked)
   )
   insert into fan_session (token_hash, user_id, created_at, expires_at) values ($1, $2, $3, $4)`,
);

/** The refusal of a read-only session token by a method that changes something. */
export function sessionReadOnly(method: string): DomainError {
  return new DomainError(
    "permission_denied",
    "SESSION_READ_ONLY",
    `a read-only session cannot call ${method}; it needs a queue token`,
  );
}

function invalid(): DomainError {
  return new DomainError(
    "unauthenticated",
    "SESSION_INVALID",
    "the read-only session token is not valid",
  );
}

/**
 * Read-only sessions: a fan who proves who they are (as for a queue token:
 * the user id in trust mode, a signed assertion in hmac mode) gets a token
 * that reads their tickets, wallet and reservations without queuing. The
 * token is `sds_` + 256 random bits (base64url); PostgreSQL keeps only its
 * SHA-256 with the user and the expiry, shared by every instance. A
 * presented token costs one indexed read the first time an instance sees it
 * and nothing after (a bounded in-process cache of hash to user and expiry);
 * no queue or Redis call is ever made for one.
 */
export class ReadSessions {
  readonly #known = new Map<string, { userId: string; expiresAtMs: number }>();

  constructor(
    private readonly db: Database,
    private readonly verifier: UserVerifier,
    private readonly clock: Clock,
    private readonly limits: Pick<QueueStore, "takeLimit">,
    private readonly ttlMs = READ_SESSION_TTL_MS,
  ) {}

  /**
   * Opens a session for a user whose identity `assertion` proves (hmac mode).
   * With `limit`, the (verified) user's and the client address's buckets are
   * taken first (under the scope {@link SESSION_LIMIT_SCOPE}): a refusal opens
   * nothing.
   */
  async create(input: {
    userId: string;
    assertion: string | undefined;
    limit?: CallLimit | undefined;
  }): Promise<{ token: string; expiresAt: Date }> {
    const userId = requireUserId(input.userId);
    const now = this.clock.now();
    this.verifier.verify(userId, input.assertion, now);
    if (input.limit !== undefined) {
      await this.limits.takeLimit(SESSION_LIMIT_SCOPE, input.limit, userId, now.getTime());
    }
    const token = `${SESSION_PREFIX}${randomBytes(32).toString("base64url")}`;
    const expiresAt = new Date(now.getTime() + this.ttlMs);
    await transaction(this.db, async (em) => {
      const tx = await TxConnection.of(em);
      await tx.all(OPEN, [hashOf(token), userId, now, expiresAt]);
    });
    return { token, expiresAt };
  }

  /**
   * The reader a session token belongs to. Throws `unauthenticated`
   * `SESSION_INVALID` for a token this server never issued and
   * `SESSION_EXPIRED` for one that has ended.
   */
  async authenticate(token: string): Promise<Reader> {
    if (!SESSION_PATTERN.test(token)) throw invalid();
    const hash = hashOf(token);
    const key = hash.toString("base64url");
    let known = this.#known.get(key);
    if (known === undefined) {
      const [row] = await this.db.fork().execute<{ user_id: string; expires_at_ms: number }[]>(
        `select user_id, (extract(epoch from expires_at) * 1000)::float8 as expires_at_ms
             from fan_session where token_hash = ?`,
        [hash],
      );
      if (row === undefined) throw invalid();
      known = { userId: row.user_id, expiresAtMs: row.expires_at_ms };
      if (this.#known.size >= CACHE_SIZE) {
        const oldest = this.#known.keys().next().value;
        if (oldest !== undefined) this.#known.delete(oldest);
      }
      this.#known.set(key, known);
    }
    if (known.expiresAtMs <= this.clock.now().getTime()) {
      this.#known.delete(key);
      throw new DomainError(
        "unauthenticated",
        "SESSION_EXPIRED",
        "the read-only session has ended; open a new one",
      );
    }
    return { userId: known.userId };
  }
}

function hashOf(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}
