import type { Interceptor, Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { createStagedoorClient, type StagedoorClient } from "@stagedoor/sdk";

/** The protocols every RPC is tested through. */
export type Protocol = "connect" | "grpc" | "grpc-web";

/** Every protocol, for `for (const protocol of PROTOCOLS)` suites. */
export const PROTOCOLS: readonly Protocol[] = ["connect", "grpc", "grpc-web"];

/** Adds `Authorization: Bearer <token>` to every call. */
export function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/**
 * Sends a call's deadline in the protocol's header, as a client with a
 * deadline would, but keeps no timer: only the server can end the call.
 */
export function serverOnlyDeadline(protocol: Protocol, ms: number): Interceptor {
  return (next) => (req) => {
    if (protocol === "connect") req.header.set("connect-timeout-ms", String(ms));
    else req.header.set("grpc-timeout", `${ms}m`);
    return next(req);
  };
}

/**
 * A transport for one protocol against a test server: Connect and gRPC-Web
 * over HTTP/1.1 (as browsers speak them), gRPC over h2c.
 */
export function transportFor(
  protocol: Protocol,
  baseUrl: string,
  interceptors: Interceptor[] = [],
): Transport {
  switch (protocol) {
    case "connect":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors });
    case "grpc":
      return createGrpcTransport({ baseUrl, interceptors });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors });
  }
}

/** SDK clients over one protocol, optionally authenticated with a queue token. */
export function clientFor(protocol: Protocol, baseUrl: string, token?: string): StagedoorClient {
  return createStagedoorClient(transportFor(protocol, baseUrl, token ? [bearer(token)] : []));
}
