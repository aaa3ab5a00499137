import { DomainError } from "../../shared/domain-error.js";

/** Where a principal's queue token stands. */
export type PrincipalState = "lobby" | "waiting" | "admitted" | "completed";

/**
 * The authenticated caller: the user a queue token belongs to, and what that
 * token allows. Built only from a verified token, never from a request body.
 */
export interface Principal {
  readonly userId: string;
  readonly concertId: string;
  readonly tokenId: string;
  readonly state: PrincipalState;
  /** The absolute end of the admission; null while waiting. */
  readonly admissionExpiresAt: Date | null;
  /** The concert's seat hold length (ms) from its sale settings; 0 or absent: the server's. */
  readonly holdMs?: number;
}

/**
 * Throws unless the principal is admitted to the concert right now. Holding a
 * seat and paying need this; reads only need a valid token.
 */
export function assertAdmitted(principal: Principal, now: Date, concertId?: string): void {
  if (concertId !== undefined && principal.concertId !== concertId) {
    throw new DomainError(
      "permission_denied",
      "TOKEN_WRONG_CONCERT",
      "the queue token is for another concert",
      { metadata: { concert_id: concertId } },
    );
  }
  const expiresAt = principal.admissionExpiresAt;
  if (principal.state !== "admitted" || expiresAt === null || expiresAt <= now) {
    const message =
      principal.state === "waiting"
        ? "the queue token is still waiting in line"
        : "the queue token's admission has ended";
    throw new DomainError("permission_denied", "TOKEN_NOT_ADMITTED", message);
  }
}
