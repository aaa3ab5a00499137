import type { DescMethod } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import type { LimitedAction } from "../../modules/ratelimit/index.js";
import { callLimitKey, httpRequestKey } from "../context.js";
import { type CallLimits, callLimit } from "../rate-limits.js";

/**
 * Decides the rate-limit buckets of the methods in `limited` (token issue,
 * holds, payments and recharges) and puts them in the call's context, where
 * the auth interceptor (or, for a token issue, the handler) hands them to the
 * queue store: the store takes them in the same round trip as it
 * authenticates the call or issues its token, before anything else of it
 * happens, so a refused call does nothing. Runs before the auth interceptor;
 * does no I/O of its own.
 */
export function createRateLimitInterceptor(
  limits: CallLimits,
  limited: ReadonlyMap<DescMethod, LimitedAction>,
): Interceptor {
  return (next) => (req) => {
    const action = limited.get(req.method);
    if (action !== undefined && !req.stream) {
      const limit = callLimit(limits, action, req.contextValues.get(httpRequestKey));
      if (limit !== undefined) req.contextValues.set(callLimitKey, limit);
    }
    return next(req);
  };
}
