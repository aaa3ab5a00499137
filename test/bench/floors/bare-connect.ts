/**
 * The floor for one trivial Connect RPC: a bare `connect-node` server
 * (`connectNodeAdapter` on `http.createServer`, HTTP/1.1) answering
 * `grpc.health.v1.Health/Check` and nothing else. No interceptors, no
 * services, no I/O: what Connect itself costs per call on this box.
 *
 * Env: PORT.
 */
import http from "node:http";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "@stagedoor/sdk";
import { floorPort } from "./floor-http.js";

const handler = connectNodeAdapter({
  routes(router) {
    router.service(Health, {
      check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
      list: () => ({ statuses: {} }),
      async *watch() {},
    });
  },
});
http.createServer(handler).listen(floorPort(), "127.0.0.1");
