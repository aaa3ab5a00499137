import type { LimitedAction, RateLimiter } from "../modules/ratelimit/index.js";
import { addressBucket, clientAddress, type TrustedProxies } from "./client-address.js";
import type { NodeRequest } from "./rest/rest-io.js";

/** What the transport needs to rate-limit calls: the limiter, and whose `X-Forwarded-For` to believe. */
export interface CallLimits {
  readonly limiter: RateLimiter;
  readonly proxies: TrustedProxies;
}

/**
 * Takes one call of `action` from its user's and its client address's
 * buckets, or throws `RATE_LIMITED` (see `RateLimiter.check`). The address is
 * the socket's peer, or read from `X-Forwarded-For` behind a trusted proxy
 * (see `clientAddress`); `userId` must come from the authenticated session
 * (or, for a token issue, the verified assertion), never from a body alone.
 * The RPC interceptor and the REST routes both limit through here.
 */
export function limitCall(
  limits: CallLimits,
  action: LimitedAction,
  req: NodeRequest | undefined,
  userId: string | undefined,
): Promise<void> {
  if (!limits.limiter.limits(action)) return Promise.resolve();
  const address =
    req && clientAddress(req.socket?.remoteAddress, req.headers["x-forwarded-for"], limits.proxies);
  return limits.limiter.check(action, {
    userId,
    address: address === undefined ? undefined : addressBucket(address),
  });
}
