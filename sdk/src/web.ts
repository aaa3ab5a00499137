/**
 * Transport presets for browsers over `@connectrpc/connect-web`: Connect and
 * gRPC-Web over `fetch` (browsers cannot speak plain gRPC).
 *
 * @example
 * ```ts
 * import { createStagedoorClient } from "@stagedoor/sdk";
 * import { createWebTransport } from "@stagedoor/sdk/web";
 *
 * const stagedoor = createStagedoorClient({ baseUrl: location.origin, transport: createWebTransport });
 * ```
 *
 * @packageDocumentation
 */

import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";

/** The wire protocols a Stagedoor server speaks to browsers. */
export type WebProtocol = "connect" | "grpc-web";

/** How {@link createWebTransport} reaches the server. */
export interface CreateWebTransportOptions {
  /** The server's URL, e.g. `location.origin` or `https://tickets.example.com`. */
  readonly baseUrl: string;
  /** The protocol (default "connect"). */
  readonly protocol?: WebProtocol;
  /** Interceptors, outermost first (e.g. `bearerToken(token)`). */
  readonly interceptors?: readonly Interceptor[];
  /**
   * Send side-effect-free Connect calls (the catalog's reads) as cacheable GET
   * requests. Connect only.
   */
  readonly useHttpGet?: boolean;
  /** Send binary protobuf instead of JSON. */
  readonly useBinaryFormat?: boolean;
  /** A `fetch` to use instead of the global one (e.g. to set `credentials`). */
  readonly fetch?: typeof globalThis.fetch;
  /** A deadline for every call that sets none, in milliseconds. */
  readonly defaultTimeoutMs?: number;
}

/**
 * Creates a browser transport for a Stagedoor server. It fits
 * `createStagedoorClient({ transport })` as a factory too, which adds the
 * bearer token interceptor. The server answers other origins only when they
 * are listed in its `CORS_ORIGINS`.
 *
 * @example
 * ```ts
 * const transport = createWebTransport({ baseUrl: location.origin, useHttpGet: true });
 * const stagedoor = createStagedoorClient(transport);
 * ```
 */
export function createWebTransport(options: CreateWebTransportOptions): Transport {
  const protocol = options.protocol ?? "connect";
  const common = {
    baseUrl: options.baseUrl,
    interceptors: [...(options.interceptors ?? [])],
    useBinaryFormat: options.useBinaryFormat ?? false,
    defaultTimeoutMs: options.defaultTimeoutMs,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  };
  switch (protocol) {
    case "connect":
      return createConnectTransport({ ...common, useHttpGet: options.useHttpGet ?? false });
    case "grpc-web":
      if (options.useHttpGet) {
        throw new TypeError("createWebTransport: useHttpGet needs the Connect protocol");
      }
      return createGrpcWebTransport(common);
    default:
      throw new TypeError(`createWebTransport: unknown protocol ${JSON.stringify(protocol)}`);
  }
}
