import { cors as connectCors } from "@connectrpc/connect";
import type { NodeRequest, NodeResponse } from "./rest/rest-io.js";

const ALLOWED_METHODS = [...new Set([...connectCors.allowedMethods, "GET", "POST"])].join(", ");
const ALLOWED_HEADERS = [
  ...connectCors.allowedHeaders,
  "Authorization",
  "Idempotency-Key",
  "X-Request-Id",
].join(", ");
const EXPOSED_HEADERS = [...connectCors.exposedHeaders, "X-Request-Id", "Retry-After"].join(", ");

/**
 * CORS for browser pages on other origins, allowed only for the configured
 * origins: the Connect and gRPC-Web headers clients send are allowed, and the
 * ones they read (status, messages, error details, request id) are exposed.
 * The server's own page is same-origin and needs none of this. Returns true
 * when it answered the request itself (a preflight).
 */
export function createCors(origins: readonly string[]) {
  const allowed = new Set(origins);
  return function applyCors(req: NodeRequest, res: NodeResponse): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return false;
    res.setHeader("Vary", "Origin");
    const preflight =
      req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
    if (!allowed.has(origin)) {
      if (!preflight) return false;
      res.writeHead(403, { "content-type": "application/json; charset=utf-8" });
      res.end(JSON.stringify({ error: "this origin may not call the API" }));
      return true;
    }
    res.setHeader("Access-Control-Allow-Origin", origin);
    if (!preflight) {
      res.setHeader("Access-Control-Expose-Headers", EXPOSED_HEADERS);
      return false;
    }
    res.writeHead(204, {
      "Access-Control-Allow-Methods": ALLOWED_METHODS,
      "Access-Control-Allow-Headers": ALLOWED_HEADERS,
      "Access-Control-Max-Age": "7200",
    });
    res.end();
    return true;
  };
}
