import type { DescMethod } from "@bufbuild/protobuf";
import type { Interceptor, StreamRequest, UnaryRequest } from "@connectrpc/connect";
import type { QueueService, SeatRef, Session } from "../../modules/queue/index.js";
import type { CallLimit } from "../../modules/ratelimit/index.js";
import { isSessionToken, type ReadSessions, sessionReadOnly } from "../../modules/tickets/index.js";
import { bearerCredential } from "../bearer.js";
import { callLimitKey, readerKey, sessionKey } from "../context.js";

/** Names the seat a unary call is about, if its method gates one (a seat hold). */
export type SeatOfCall = (req: UnaryRequest) => SeatRef | undefined;

/**
 * The session of a caller: the queue token of its `Authorization: Bearer`
 * header (or, where a route takes one, of a `token` field when the header has
 * none) turned into a principal and its live status, with the named seat's
 * gate entry and the call's rate-limit buckets (`limit`) taken in the same
 * round trip. Both the RPCs (through {@link createAuthInterceptor}) and the
 * REST routes authenticate here.
 */
export function authenticate(
  queue: QueueService,
  authorization: string | null | undefined,
  seat: SeatRef | undefined,
  tokenField: unknown,
  limit: CallLimit | undefined,
): Promise<Session> {
  const token =
    bearerCredential(authorization) ?? (typeof tokenField === "string" ? tokenField : undefined);
  return queue.authenticate(token, seat, limit);
}

/**
 * Authenticates every call except the public ones: the bearer queue token is
 * turned into a session (principal + live status) and put in the call's
 * context values. Handlers never read user ids from request bodies to decide
 * whom they act for. For a call that names a seat (see `seatOf`), the seat's
 * gate entry is read in the same round trip as the token.
 *
 * A read-only session token (`sds_`, from TicketService.CreateSession) is
 * accepted by the methods in `readMethods` only, and turns into a reader (one
 * cached lookup, never the queue's store); every other method refuses it with
 * `SESSION_READ_ONLY` before anything runs. Telling the two apart costs the
 * queue-token path one prefix comparison.
 */
export function createAuthInterceptor(
  queue: QueueService,
  publicMethods: ReadonlySet<DescMethod>,
  seatOf: SeatOfCall = () => undefined,
  sessions?: { readonly reader: ReadSessions; readonly readMethods: ReadonlySet<DescMethod> },
): Interceptor {
  const authenticated = async (
    req: UnaryRequest | StreamRequest,
    next: Parameters<Interceptor>[0],
  ) => {
    const credential = bearerCredential(req.header.get("authorization"));
    if (sessions !== undefined && isSessionToken(credential)) {
      if (!sessions.readMethods.has(req.method)) {
        throw sessionReadOnly(`${req.service.typeName}.${req.method.name}`);
      }
      req.contextValues.set(readerKey, await sessions.reader.authenticate(credential as string));
    } else {
      const seat = req.stream ? undefined : seatOf(req);
      req.contextValues.set(
        sessionKey,
        await queue.authenticate(credential, seat, req.contextValues.get(callLimitKey)),
      );
    }
    return next(req);
  };
  // A public call (a token issue, the catalog) passes through without a
  // promise of its own.
  return (next) => (req) => (publicMethods.has(req.method) ? next(req) : authenticated(req, next));
}
