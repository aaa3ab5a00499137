import type { DescMethod } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import type { AdminKeyring } from "../../modules/identity/index.js";
import { bearerCredential } from "../bearer.js";
import { adminActorKey } from "../context.js";

/**
 * Authenticates every operator (AdminService) call with an operator API key
 * sent as `Authorization: Bearer <key>`, and puts the operator in the call's
 * context values; other methods pass through untouched. The queue-token
 * interceptor skips these methods, so a fan's token is only ever checked
 * here, as a key, and refused (`ADMIN_KEY_INVALID`). With no key configured
 * every admin call fails with `ADMIN_API_DISABLED`.
 */
export function createAdminAuthInterceptor(
  keyring: AdminKeyring,
  adminMethods: ReadonlySet<DescMethod>,
): Interceptor {
  // Not async: every other call passes through without a promise of its
  // own (a refused key throws here, and the error interceptor answers it).
  return (next) => (req) => {
    if (adminMethods.has(req.method)) {
      const actor = keyring.authenticate(bearerCredential(req.header.get("authorization")));
      req.contextValues.set(adminActorKey, actor);
    }
    return next(req);
  };
}
