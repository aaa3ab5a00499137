import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { Health } from "./gen/grpc/health/v1/health_pb.js";
import { CatalogService } from "./gen/stagedoor/catalog/v1/catalog_service_pb.js";
import { PaymentService } from "./gen/stagedoor/payment/v1/payment_service_pb.js";
import { QueueService } from "./gen/stagedoor/queue/v1/queue_service_pb.js";
import { ReservationService } from "./gen/stagedoor/reservation/v1/reservation_service_pb.js";
import { TicketService } from "./gen/stagedoor/ticket/v1/ticket_service_pb.js";
import { WalletService } from "./gen/stagedoor/wallet/v1/wallet_service_pb.js";

/** One typed client per Stagedoor service, all sharing one transport. */
export interface StagedoorClient {
  readonly queue: Client<typeof QueueService>;
  readonly catalog: Client<typeof CatalogService>;
  readonly reservation: Client<typeof ReservationService>;
  readonly wallet: Client<typeof WalletService>;
  readonly payment: Client<typeof PaymentService>;
  /** Tickets and read-only sessions (reads work with a session token or a queue token). */
  readonly ticket: Client<typeof TicketService>;
  /** The standard gRPC health service. */
  readonly health: Client<typeof Health>;
}

/**
 * The queue token to send: a fixed string, or a function read on every call
 * (for a token that arrives or changes later). An empty or undefined token
 * sends no `Authorization` header.
 */
export type TokenSource = string | (() => string | undefined);

/**
 * Makes a transport for a base URL with the given interceptors, such as
 * `createNodeTransport` from `@stagedoor/sdk/node`, `createWebTransport` from
 * `@stagedoor/sdk/web`, or `createConnectTransport` from
 * `@connectrpc/connect-web`.
 */
export type TransportFactory = (options: {
  baseUrl: string;
  interceptors: Interceptor[];
}) => Transport;

/** How {@link createStagedoorClient} reaches the server. */
export interface StagedoorClientOptions {
  /**
   * A ready transport, or a factory called once with `baseUrl` and the
   * interceptors (the bearer token's first). A ready transport keeps its own
   * base URL and interceptors; the token is then added to each call's headers.
   */
  readonly transport: Transport | TransportFactory;
  /** The server's URL, e.g. `https://tickets.example.com`; required with a factory. */
  readonly baseUrl?: string;
  /** The fan's queue token, sent as `Authorization: Bearer <token>` unless a call sets its own. */
  readonly token?: TokenSource;
  /** More interceptors for the factory, after the token's; not allowed with a ready transport. */
  readonly interceptors?: readonly Interceptor[];
}

/**
 * An interceptor that sends the queue token as `Authorization: Bearer <token>`
 * on every call that does not set its own Authorization header, so one call
 * can still act with another token (e.g. `waitForAdmission({ token })`).
 *
 * @example
 * ```ts
 * const transport = createNodeTransport({ baseUrl, interceptors: [bearerToken(() => session.token)] });
 * ```
 */
export function bearerToken(token: TokenSource): Interceptor {
  return (next) => (req) => {
    const value = typeof token === "function" ? token() : token;
    if (value && !req.header.has("authorization")) {
      req.header.set("authorization", `Bearer ${value}`);
    }
    return next(req);
  };
}

/**
 * Whether `value` is a ready Transport (an object with `unary` and `stream`
 * methods) rather than a factory or an options object. Factories are plain
 * functions, so the shape decides, whatever created the transport.
 */
function isTransport(value: unknown): value is Transport {
  if (typeof value !== "object" || value === null) return false;
  const candidate = value as Partial<Record<keyof Transport, unknown>>;
  return typeof candidate.unary === "function" && typeof candidate.stream === "function";
}

/** A ready transport whose calls carry the token, for when no interceptor can be added. */
function withToken(transport: Transport, token: TokenSource): Transport {
  // The headers argument's type, named without the DOM lib's HeadersInit.
  const headersWithToken = (header: Parameters<Transport["unary"]>[3]): Headers => {
    const headers = new Headers(header);
    const value = typeof token === "function" ? token() : token;
    if (value && !headers.has("authorization")) headers.set("authorization", `Bearer ${value}`);
    return headers;
  };
  return {
    unary: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.unary(method, signal, timeoutMs, headersWithToken(header), input, contextValues),
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.stream(method, signal, timeoutMs, headersWithToken(header), input, contextValues),
  };
}

/**
 * The transport the options describe, with the token attached one way or the
 * other. Internal to the SDK (the admin client shares it), not exported from
 * the package.
 */
export function resolveTransport(options: StagedoorClientOptions): Transport {
  const { transport, token, baseUrl } = options;
  const extra = options.interceptors ?? [];
  if (isTransport(transport)) {
    if (extra.length > 0) {
      throw new TypeError(
        "createStagedoorClient: interceptors need a transport factory; add them to the transport instead",
      );
    }
    return token === undefined ? transport : withToken(transport, token);
  }
  if (typeof transport !== "function") {
    throw new TypeError(
      "createStagedoorClient: transport must be a Transport or a transport factory",
    );
  }
  if (!baseUrl) {
    throw new TypeError("createStagedoorClient: baseUrl is required with a transport factory");
  }
  const interceptors = token === undefined ? [...extra] : [bearerToken(token), ...extra];
  return transport({ baseUrl, interceptors });
}

/**
 * Creates clients for every Stagedoor service over one transport (Connect,
 * gRPC or gRPC-Web; Node or browser). Pass a ready transport, or options with
 * a transport factory, the server's URL and the fan's queue token, which is
 * then sent as `Authorization: Bearer <token>` on every call.
 *
 * @example
 * ```ts
 * import { createStagedoorClient } from "@stagedoor/sdk";
 * import { createNodeTransport } from "@stagedoor/sdk/node";
 *
 * const stagedoor = createStagedoorClient({ baseUrl: "http://127.0.0.1:8080", transport: createNodeTransport, token });
 * const { wallet } = await stagedoor.wallet.getWallet({});
 * ```
 */
export function createStagedoorClient(transport: Transport): StagedoorClient;
export function createStagedoorClient(options: StagedoorClientOptions): StagedoorClient;
export function createStagedoorClient(
  transportOrOptions: Transport | StagedoorClientOptions,
): StagedoorClient {
  const transport = isTransport(transportOrOptions)
    ? transportOrOptions
    : resolveTransport(transportOrOptions);
  return {
    queue: createClient(QueueService, transport),
    catalog: createClient(CatalogService, transport),
    reservation: createClient(ReservationService, transport),
    wallet: createClient(WalletService, transport),
    payment: createClient(PaymentService, transport),
    ticket: createClient(TicketService, transport),
    health: createClient(Health, transport),
  };
}
