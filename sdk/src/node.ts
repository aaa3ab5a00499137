/**
 * Transport presets for Node.js over `@connectrpc/connect-node`: Connect,
 * gRPC and gRPC-Web against one Stagedoor server.
 *
 * @example
 * ```ts
 * import { createStagedoorClient } from "@stagedoor/sdk";
 * import { createNodeTransport } from "@stagedoor/sdk/node";
 *
 * const stagedoor = createStagedoorClient(
 *   createNodeTransport({ baseUrl: "http://127.0.0.1:8080", protocol: "grpc" }),
 * );
 * ```
 *
 * @packageDocumentation
 */

import type { Interceptor, Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";

/** The wire protocols a Stagedoor server speaks to Node clients, all on one port. */
export type NodeProtocol = "connect" | "grpc" | "grpc-web";

/** How {@link createNodeTransport} reaches the server. */
export interface CreateNodeTransportOptions {
  /** The server's URL, e.g. `http://127.0.0.1:8080`. */
  readonly baseUrl: string;
  /** The protocol (default "connect"). */
  readonly protocol?: NodeProtocol;
  /**
   * HTTP/1.1 or HTTP/2 (cleartext h2c for `http:` URLs). Connect and gRPC-Web
   * default to HTTP/1.1, which every proxy passes; gRPC is always HTTP/2.
   */
  readonly httpVersion?: "1.1" | "2";
  /** Interceptors, outermost first (e.g. `bearerToken(token)`). */
  readonly interceptors?: readonly Interceptor[];
  /**
   * The wire format of Connect and gRPC-Web: binary protobuf (the default),
   * which is smaller and cheaper to encode and decode on both ends, or JSON
   * with `false` (handy for reading traffic). gRPC is always binary.
   */
  readonly useBinaryFormat?: boolean;
  /** A deadline for every call that sets none, in milliseconds. */
  readonly defaultTimeoutMs?: number;
}

/**
 * Creates a Node.js transport for a Stagedoor server with sensible presets
 * for each protocol: binary protobuf, and HTTP/1.1 for Connect and gRPC-Web
 * unless asked otherwise. It fits `createStagedoorClient({ transport })` as a
 * factory too, which adds the bearer token interceptor.
 *
 * @example
 * ```ts
 * const transport = createNodeTransport({ baseUrl: "http://127.0.0.1:8080", protocol: "grpc-web" });
 * const stagedoor = createStagedoorClient(transport);
 * ```
 */
export function createNodeTransport(options: CreateNodeTransportOptions): Transport {
  const protocol = options.protocol ?? "connect";
  const common = {
    baseUrl: options.baseUrl,
    interceptors: [...(options.interceptors ?? [])],
    defaultTimeoutMs: options.defaultTimeoutMs,
  };
  switch (protocol) {
    case "grpc":
      if (options.httpVersion === "1.1") {
        throw new TypeError(
          "createNodeTransport: gRPC needs HTTP/2; use Connect or gRPC-Web for HTTP/1.1",
        );
      }
      return createGrpcTransport(common);
    case "connect":
      return createConnectTransport({
        ...common,
        httpVersion: options.httpVersion ?? "1.1",
        useBinaryFormat: options.useBinaryFormat ?? true,
      });
    case "grpc-web":
      return createGrpcWebTransport({
        ...common,
        httpVersion: options.httpVersion ?? "1.1",
        useBinaryFormat: options.useBinaryFormat ?? true,
      });
    default:
      throw new TypeError(`createNodeTransport: unknown protocol ${JSON.stringify(protocol)}`);
  }
}
