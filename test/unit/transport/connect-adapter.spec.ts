import { getEventListeners } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@stagedoor/sdk";
import { expect } from "chai";
import { createLogger } from "../../../server/src/logger.js";
import {
  createConnectAdapter,
  requestIdKey,
} from "../../../server/src/transport/connect-adapter.js";

describe("createConnectAdapter", () => {
  const shutdown = new AbortController();
  let server: http.Server;
  let baseUrl: string;
  /** What the handlers saw: shutdown listeners while they ran, and the call's request id. */
  const seen = { checkListeners: -1, watchListeners: -1, requestId: "" };

  before(async () => {
    const adapter = createConnectAdapter({
      logger: createLogger("silent"),
      shutdownSignal: shutdown.signal,
      fallback: (_req, res) => {
        res.writeHead(404);
        res.end();
      },
      routes: (router) => {
        router.service(Health, {
          check(_req, ctx) {
            seen.checkListeners = getEventListeners(shutdown.signal, "abort").length;
            seen.requestId = ctx.values.get(requestIdKey);
            return { status: ServingStatus.SERVING };
          },
          async *watch(_req, ctx) {
            seen.watchListeners = getEventListeners(shutdown.signal, "abort").length;
            yield { status: ServingStatus.SERVING };
            await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          },
        });
      },
    });
    server = http.createServer((req, res) => adapter(req, res, "id-from-the-listener"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("gives the interceptors and handlers the listener's request id", async () => {
    const health = createClient(Health, createConnectTransport({ baseUrl, httpVersion: "1.1" }));
    await health.check({});
    expect(seen.requestId).to.equal("id-from-the-listener");
  });

  it("links only streams to the shutdown signal: a unary call adds no listener to it", async () => {
    const health = createClient(Health, createConnectTransport({ baseUrl, httpVersion: "1.1" }));
    expect((await health.check({})).status).to.equal(ServingStatus.SERVING);
    expect(seen.checkListeners).to.equal(0);

    const stream = health.watch({})[Symbol.asyncIterator]();
    expect((await stream.next()).value?.status).to.equal(ServingStatus.SERVING);
    expect(seen.watchListeners).to.be.greaterThan(0);
    // Shutting down ends the open stream.
    shutdown.abort();
    const end = await stream.next().then(
      (result) => (result.done ? "ended" : "another message"),
      (error: unknown) => Code[ConnectError.from(error).code],
    );
    expect(end).to.be.oneOf(["ended", "Canceled", "Aborted", "Unavailable"]);
  });
});
