import type { Interceptor } from "@connectrpc/connect";
import type { QueueService } from "../../modules/queue/index.js";
import { bearerCredential } from "../bearer.js";
import { sessionKey } from "../context.js";

/**
 * Authenticates every call except the public ones: the bearer queue token is
 * turned into a session (principal + live status) and put in the call's
 * context values. Handlers never read user ids from request bodies to decide
 * whom they act for.
 */
export function createAuthInterceptor(
  queue: QueueService,
  publicMethods: ReadonlySet<string>,
): Interceptor {
  return (next) => async (req) => {
    if (!publicMethods.has(`${req.service.typeName}/${req.method.name}`)) {
      const session = await queue.authenticate(bearerCredential(req.header.get("authorization")));
      req.contextValues.set(sessionKey, session);
    }
    return next(req);
  };
}
