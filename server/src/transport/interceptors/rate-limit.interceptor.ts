import type { DescMethod } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import type { IssueQueueTokenRequest } from "@stagedoor/sdk";
import type { QueueService } from "../../modules/queue/index.js";
import type { LimitedAction } from "../../modules/ratelimit/index.js";
import { bearerCredential } from "../bearer.js";
import { httpRequestKey, sessionKey } from "../context.js";
import { type CallLimits, limitCall } from "../rate-limits.js";

/**
 * Rate-limits the methods in `limited` (token issue, holds, payments and
 * recharges) before their handler runs, so a refused call does nothing. Runs
 * after the auth interceptor: the user is the session's; for a token issue
 * (which has no session) it is the request's user only when the assertion
 * proves it, so nobody spends another user's budget by naming them.
 */
export function createRateLimitInterceptor(
  limits: CallLimits,
  queue: QueueService,
  limited: ReadonlyMap<DescMethod, LimitedAction>,
): Interceptor {
  return (next) => async (req) => {
    const action = limited.get(req.method);
    if (action !== undefined && !req.stream && limits.limiter.limits(action)) {
      const userId =
        action === "token"
          ? queue.verifiedUser(
              (req.message as IssueQueueTokenRequest).userId,
              bearerCredential(req.header.get("authorization")),
            )
          : req.contextValues.get(sessionKey)?.principal.userId;
      await limitCall(limits, action, req.contextValues.get(httpRequestKey), userId);
    }
    return next(req);
  };
}
