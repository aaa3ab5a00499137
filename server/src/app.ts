import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import type { Services } from "./container.js";
import type { Logger } from "./logger.js";
import { shuttingDown } from "./shared/domain-error.js";
import { createConnectAdapter } from "./transport/connect-adapter.js";
import { createCors } from "./transport/cors.js";
import type { ServingProbe } from "./transport/handlers/health.handler.js";
import type { RequestListener } from "./transport/http-server.js";
import { createAdminAuthInterceptor } from "./transport/interceptors/admin-auth.interceptor.js";
import { createAuthInterceptor } from "./transport/interceptors/auth.interceptor.js";
import {
  type CallObserver,
  createErrorInterceptor,
} from "./transport/interceptors/error.interceptor.js";
import { createRateLimitInterceptor } from "./transport/interceptors/rate-limit.interceptor.js";
import type { CallLimits } from "./transport/rate-limits.js";
import { sendJson, settleBodyAfterAnswer } from "./transport/rest/rest-io.js";
import { createRestRouter } from "./transport/rest/rest-router.js";
import {
  ADMIN_METHODS,
  createRoutes,
  LIMITED_METHODS,
  NO_QUEUE_TOKEN_METHODS,
  READ_SESSION_METHODS,
  seatOfCall,
} from "./transport/routes.js";
import { createStaticFiles, type WebPageSettings } from "./transport/static-files.js";

/** What {@link createApp} builds from. */
export interface AppDeps {
  readonly services: Services;
  readonly probe: ServingProbe;
  readonly logger: Logger;
  /** Other origins whose browser pages may call the API. */
  readonly corsOrigins: readonly string[];
  /** The built web box office to serve at `/`, if any. */
  readonly webDir: string | undefined;
  /** What the box office page is told of this server (how fans sign in). */
  readonly webPage: WebPageSettings;
  /** The rate limits of token issue, holds and payments. */
  readonly limits: CallLimits;
  /** Sees every finished call (the metrics), if any. */
  readonly observeCall?: CallObserver;
}

/** The application: one request listener for every protocol, and its drain switch. */
export interface App {
  readonly listener: RequestListener;
  /** Ends open streams (watch streams, and the signals of streaming handlers); call when shutting down. */
  shutdown(): void;
}

const SAFE_REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Request ids for requests that bring none: UUID-shaped, an 80-bit random
 * prefix per process and a counter, so they are unique across restarts and
 * worker processes without asking for randomness on every request.
 */
export function createRequestIds(): () => string {
  const hex = randomBytes(10).toString("hex");
  const prefix = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-`;
  let counter = 0;
  return () => {
    counter += 1;
    return prefix + counter.toString(16).padStart(12, "0");
  };
}

const NO_SUCH_ROUTE = { "x-error-reason": "METHOD_NOT_FOUND" };

/** The most bytes one RPC message may have; nothing in this API is close to it. */
const READ_MAX_BYTES = 64 * 1024;

/**
 * Builds the request listener: Connect, gRPC and gRPC-Web from one Connect
 * router with the error interceptor (which also logs each call), the
 * queue-token auth interceptor, the rate-limit interceptor and the
 * operator-key auth interceptor, outermost first; the seed's REST routes under `/api/` (which
 * authenticate, map errors and log calls with the same functions), CORS for
 * the configured origins, and the web box office's files for every other
 * GET. A request whose body is not read to its end is settled once answered
 * (see `settleBodyAfterAnswer`). Never listens; `main.ts` and the tests
 * decide where it runs.
 */
export function createApp(deps: AppDeps): App {
  const { services, logger } = deps;
  const shutdownController = new AbortController();
  // Every open stream links its own signal to this one, so in a rush it
  // legitimately has thousands of listeners.
  setMaxListeners(0, shutdownController.signal);
  const newRequestId = createRequestIds();
  const connect = createConnectAdapter({
    routes: createRoutes(services, deps.probe),
    logger,
    ...(deps.observeCall ? { observeCall: deps.observeCall } : {}),
    interceptors: [
      createErrorInterceptor(logger, deps.observeCall),
      createRateLimitInterceptor(deps.limits, LIMITED_METHODS),
      createAuthInterceptor(services.queue, NO_QUEUE_TOKEN_METHODS, seatOfCall(services.catalog), {
        reader: services.readSessions,
        readMethods: READ_SESSION_METHODS,
      }),
      createAdminAuthInterceptor(services.adminKeys, ADMIN_METHODS),
    ],
    shutdownSignal: shutdownController.signal,
    readMaxBytes: READ_MAX_BYTES,
    // Long-lived watch streams are the only long calls; cap what clients may ask for.
    maxTimeoutMs: 3_600_000,
    jsonOptions: { alwaysEmitImplicit: true },
    fallback: (req, res) => {
      if (!serveStatic) {
        sendJson(res, 404, { error: "no such route" }, NO_SUCH_ROUTE);
        return;
      }
      serveStatic(req, res).then(
        (served) => {
          if (!served) sendJson(res, 404, { error: "no such route" }, NO_SUCH_ROUTE);
        },
        (error: unknown) => {
          logger.warn({ err: error }, "serving a web file failed");
          if (!res.headersSent) {
            sendJson(res, 500, { error: "internal error" }, { "x-error-reason": "INTERNAL_ERROR" });
          }
        },
      );
    },
  });
  const serveStatic = deps.webDir
    ? createStaticFiles(deps.webDir, logger, deps.webPage)
    : undefined;
  const applyCors = createCors(deps.corsOrigins);
  const rest = createRestRouter(services, logger, deps.limits, deps.observeCall);

  return {
    listener(req, res) {
      // Every answer carries a request id, the caller's when it is sane, so a
      // support ticket can be matched with the server's logs; the RPC
      // interceptors log under the same id.
      const given = req.headers["x-request-id"];
      const requestId =
        typeof given === "string" && SAFE_REQUEST_ID.test(given) ? given : newRequestId();
      res.setHeader("x-request-id", requestId);
      settleBodyAfterAnswer(req, res);
      if (applyCors(req, res)) return;
      if (req.url?.startsWith("/api/")) {
        void rest(req, res, requestId);
      } else {
        connect(req, res, requestId);
      }
    },
    shutdown() {
      services.watchHub.stop();
      shutdownController.abort(shuttingDown());
    },
  };
}
