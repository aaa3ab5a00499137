import { type ContextValues, createContextKey } from "@connectrpc/connect";
import type { AdminActor, Principal, Reader } from "../modules/identity/index.js";
import type { Session } from "../modules/queue/index.js";
import type { CallLimit } from "../modules/ratelimit/index.js";
import type { NodeRequest } from "./rest/rest-io.js";

/** The HTTP request a call arrived on (its socket and headers), set by the Connect adapter. */
export const httpRequestKey = createContextKey<NodeRequest | undefined>(undefined, {
  description: "the HTTP request of the call",
});

/**
 * The rate-limit buckets of a limited call, set by the rate-limit
 * interceptor and taken by the queue store with the call's authentication
 * (or its token issue).
 */
export const callLimitKey = createContextKey<CallLimit | undefined>(undefined, {
  description: "the rate-limit buckets of the call",
});

/** The authenticated session of a call, set by the auth interceptor. */
export const sessionKey = createContextKey<Session | undefined>(undefined, {
  description: "the caller's authenticated queue session",
});

/**
 * The caller of a call that requires a token. The auth interceptor guarantees
 * it is set for every method outside its public list, so a missing session
 * here is a wiring bug, not a client error.
 */
export function principalOf(values: ContextValues): Principal {
  return sessionOf(values).principal;
}

/** The caller's whole session (principal and live queue status). */
export function sessionOf(values: ContextValues): Session {
  const session = values.get(sessionKey);
  if (!session) throw new Error("a handler that needs a session ran without one");
  return session;
}

/** The operator of an AdminService call, set by the admin auth interceptor. */
export const adminActorKey = createContextKey<AdminActor | undefined>(undefined, {
  description: "the operator whose API key authenticated the call",
});

/**
 * The operator of an AdminService call. The admin auth interceptor
 * guarantees it is set for every admin method, so a missing one here is a
 * wiring bug, not a client error.
 */
export function adminOf(values: ContextValues): AdminActor {
  const actor = values.get(adminActorKey);
  if (!actor) throw new Error("an admin handler ran without an authenticated operator");
  return actor;
}

/** The reader of a call authenticated with a read-only session token, set by the auth interceptor. */
export const readerKey = createContextKey<Reader | undefined>(undefined, {
  description: "the user a read-only session reads for",
});

/**
 * Whose data a read returns: the read-only session's user, or the queue
 * token's. The auth interceptor sets one of them for every read it lets
 * through, so neither here is a wiring bug.
 */
export function readerOf(values: ContextValues): Reader {
  return values.get(readerKey) ?? principalOf(values);
}
