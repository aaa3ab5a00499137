import type { CallLimit, LimitedAction, RateLimiter } from "../modules/ratelimit/index.js";
import { addressBucket, clientAddress, type TrustedProxies } from "./client-address.js";
import type { NodeRequest } from "./rest/rest-io.js";

/** What the transport needs to rate-limit calls: the limiter, and whose `X-Forwarded-For` to believe. */
export interface CallLimits {
  readonly limiter: RateLimiter;
  readonly proxies: TrustedProxies;
}

/**
 * The buckets a call of `action` takes from (see `RateLimiter.forCall`), or
 * undefined when it is not limited. The address is the socket's peer, or read
 * from `X-Forwarded-For` behind a trusted proxy (see `clientAddress`), and is
 * only worked out when the action is limited per address. The user is not
 * named here: the queue store takes the user's bucket once the call is
 * authenticated (a token found, or a token issue's user verified), in the
 * same step, so nobody spends another user's budget by naming them. The RPC
 * interceptor and the REST routes both limit through here.
 */
export function callLimit(
  limits: CallLimits,
  action: LimitedAction,
  req: NodeRequest | undefined,
): CallLimit | undefined {
  const { limiter } = limits;
  if (!limiter.limits(action)) return undefined;
  const address =
    req !== undefined && limiter.limitsAddresses(action)
      ? clientAddress(req.socket?.remoteAddress, req.headers["x-forwarded-for"], limits.proxies)
      : undefined;
  return limiter.forCall(action, address === undefined ? undefined : addressBucket(address));
}
