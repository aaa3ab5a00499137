import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { resolveTransport, type TokenSource, type TransportFactory } from "./clients.js";
import { AdminService, SeatMapFormat } from "./gen/stagedoor/admin/v1/admin_service_pb.js";

/** A typed client of the operator API (`AdminService`). */
export type StagedoorAdminClient = Client<typeof AdminService>;

/** How {@link createAdminClient} reaches the server. */
export interface StagedoorAdminClientOptions {
  /**
   * A ready transport, or a factory called once with `baseUrl` and the
   * interceptors (the API key's first), such as `createNodeTransport` or
   * `createWebTransport`.
   */
  readonly transport: Transport | TransportFactory;
  /** The server's URL; required with a factory. */
  readonly baseUrl?: string;
  /**
   * The operator API key, sent as `Authorization: Bearer <key>`: a string, or
   * a function read on every call (for a key typed in later).
   */
  readonly apiKey: TokenSource;
  /** More interceptors for the factory, after the key's; not allowed with a ready transport. */
  readonly interceptors?: readonly Interceptor[];
}

/**
 * Creates a client of the operator API that sends the operator API key on
 * every call. Keep the key out of logs, URLs and command lines.
 *
 * @example
 * ```ts
 * import { createAdminClient } from "@stagedoor/sdk";
 * import { createNodeTransport } from "@stagedoor/sdk/node";
 *
 * const admin = createAdminClient({ baseUrl, transport: createNodeTransport, apiKey: process.env.STAGEDOOR_ADMIN_KEY ?? "" });
 * const { stats } = await admin.getSaleStats({ concertId });
 * ```
 */
export function createAdminClient(options: StagedoorAdminClientOptions): StagedoorAdminClient {
  const { apiKey, ...rest } = options;
  return createClient(AdminService, resolveTransport({ ...rest, token: apiKey }));
}

/**
 * The seat map format a file name says by its extension (`.csv` or `.json`,
 * in any case), or undefined for any other name.
 *
 * @example
 * ```ts
 * seatMapFormatOf("hall-a.CSV"); // SeatMapFormat.CSV
 * ```
 */
export function seatMapFormatOf(fileName: string): SeatMapFormat | undefined {
  const dot = fileName.lastIndexOf(".");
  const extension = dot === -1 ? "" : fileName.slice(dot + 1).toLowerCase();
  if (extension === "csv") return SeatMapFormat.CSV;
  if (extension === "json") return SeatMapFormat.JSON;
  return undefined;
}
