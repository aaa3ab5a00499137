import type { DescMethod } from "@bufbuild/protobuf";
import type { Interceptor, UnaryRequest } from "@connectrpc/connect";
import type { QueueService, SeatRef } from "../../modules/queue/index.js";
import { bearerCredential } from "../bearer.js";
import { sessionKey } from "../context.js";

/** Names the seat a unary call is about, if its method gates one (a seat hold). */
export type SeatOfCall = (req: UnaryRequest) => SeatRef | undefined;

/**
 * Authenticates every call except the public ones: the bearer queue token is
 * turned into a session (principal + live status) and put in the call's
 * context values. Handlers never read user ids from request bodies to decide
 * whom they act for. For a call that names a seat (see `seatOf`), the seat's
 * gate entry is read in the same round trip as the token.
 */
export function createAuthInterceptor(
  queue: QueueService,
  publicMethods: ReadonlySet<DescMethod>,
  seatOf: SeatOfCall = () => undefined,
): Interceptor {
  return (next) => async (req) => {
    if (!publicMethods.has(req.method)) {
      const token = bearerCredential(req.header.get("authorization"));
      const seat = req.stream ? undefined : seatOf(req);
      req.contextValues.set(sessionKey, await queue.authenticate(token, seat));
    }
    return next(req);
  };
}
