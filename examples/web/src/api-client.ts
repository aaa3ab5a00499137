import type { Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { createStagedoorClient, type StagedoorClient } from "@stagedoor/sdk";

/** The page's connection to Stagedoor, acting for whichever fan is signed in. */
export interface ApiClient {
  /** Typed clients for every service. */
  readonly stagedoor: StagedoorClient;
  /** The queue token sent on every call from now on (undefined: none). */
  setToken(token: string | undefined): void;
}

/**
 * Creates the clients for the server that served the page. The Connect
 * protocol over fetch works in every browser (server streaming included), and
 * same-origin calls need no CORS. Reads marked NO_SIDE_EFFECTS go out as GET,
 * which proxies and the browser handle best. The queue token rides as
 * `Authorization: Bearer <token>` on every call, added by one interceptor, so
 * no screen can forget it.
 *
 * @example
 * ```ts
 * const api = createApiClient(window.location.origin);
 * api.setToken(token);
 * const { wallet } = await api.stagedoor.wallet.getWallet({});
 * ```
 */
export function createApiClient(baseUrl: string): ApiClient {
  let token: string | undefined;
  const bearer: Interceptor = (next) => (req) => {
    // A call that brings its own credential (IssueQueueToken with an assertion) keeps it.
    if (token !== undefined && !req.header.has("authorization")) {
      req.header.set("authorization", `Bearer ${token}`);
    }
    return next(req);
  };
  const transport = createConnectTransport({ baseUrl, useHttpGet: true, interceptors: [bearer] });
  return {
    stagedoor: createStagedoorClient(transport),
    setToken(next) {
      token = next;
    },
  };
}
