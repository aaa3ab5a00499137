import { readdirSync } from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { Concert, ConcertDate, HealthStatus, QueueStatus, Seat, Wallet } from "./messages.js";

/** A unary method of a client built by `grpc.loadPackageDefinition` (the overload used here). */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: grpc.requestCallback<Res>,
) => grpc.ClientUnaryCall;

/** A server-streaming method of such a client. */
export type ServerStreamMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
) => grpc.ClientReadableStream<Res>;

/** stagedoor.catalog.v1.CatalogService: public, no token needed. */
export interface CatalogClient extends grpc.Client {
  ListConcerts: UnaryMethod<{ pageSize?: number }, { concerts: Concert[]; nextPageToken: string }>;
  ListConcertDates: UnaryMethod<{ concertId: string }, { dates: ConcertDate[] }>;
  ListAvailableSeats: UnaryMethod<
    { concertDateId: string; pageSize?: number },
    { seats: Seat[]; nextPageToken: string }
  >;
}

/** stagedoor.queue.v1.QueueService: IssueQueueToken is public, the rest need the token. */
export interface QueueClient extends grpc.Client {
  IssueQueueToken: UnaryMethod<
    { concertId: string; userId: string },
    { token: string; status: QueueStatus }
  >;
  GetQueueStatus: UnaryMethod<Record<string, never>, { status: QueueStatus }>;
  LeaveQueue: UnaryMethod<Record<string, never>, Record<string, never>>;
}

/** stagedoor.reservation.v1.ReservationService: every call needs the token. */
export interface ReservationClient extends grpc.Client {
  HoldSeat: UnaryMethod<{ seatId: string; requestId: string }, { reservation: unknown }>;
}

/** stagedoor.wallet.v1.WalletService: every call needs the token. */
export interface WalletClient extends grpc.Client {
  GetWallet: UnaryMethod<Record<string, never>, { wallet: Wallet }>;
  RechargeWallet: UnaryMethod<{ amount: string; requestId: string }, { wallet: Wallet }>;
}

/** grpc.health.v1.Health, the standard health service. */
export interface HealthClient extends grpc.Client {
  Check: UnaryMethod<{ service: string }, HealthStatus>;
  Watch: ServerStreamMethod<{ service: string }, HealthStatus>;
}

/** One grpc-js client per service this example uses, all on one channel. */
export interface StagedoorGrpc {
  readonly target: string;
  readonly catalog: CatalogClient;
  readonly queue: QueueClient;
  readonly reservation: ReservationClient;
  readonly wallet: WalletClient;
  readonly health: HealthClient;
  /** Closes the shared channel so the process can exit. */
  close(): void;
}

/** Every .proto under `folder`, relative to `protoDir` (the include dir). */
function protoFilesUnder(protoDir: string, folder: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(path.join(protoDir, folder), { withFileTypes: true })) {
    const relative = path.posix.join(folder, entry.name);
    if (entry.isDirectory()) found.push(...protoFilesUnder(protoDir, relative));
    else if (entry.name.endsWith(".proto")) found.push(relative);
  }
  return found;
}

/** Walks `stagedoor.catalog.v1.CatalogService` down the loaded package tree. */
function serviceConstructor(
  root: grpc.GrpcObject,
  fullName: string,
): grpc.ServiceClientConstructor {
  let node: unknown = root;
  for (const part of fullName.split(".")) {
    node = (node as Record<string, unknown> | undefined)?.[part];
  }
  if (typeof node !== "function") throw new Error(`${fullName} is not in the loaded protos`);
  return node as grpc.ServiceClientConstructor;
}

/**
 * `host:port` and credentials for a base URL: plaintext (h2c) for http,
 * TLS for https. grpc-js would assume port 443 when none is given, so the
 * scheme's default port is spelled out.
 */
function grpcTarget(baseUrl: string): { target: string; credentials: grpc.ChannelCredentials } {
  const url = new URL(baseUrl);
  const tls = url.protocol === "https:";
  const port = url.port || (tls ? "443" : "80");
  return {
    target: `${url.hostname}:${port}`,
    credentials: tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure(),
  };
}

/**
 * Loads the repository's protos with `@grpc/proto-loader` (stagedoor/** plus
 * the vendored health service, include dir `protoDir`) the way any stock
 * grpc-js integration would, and opens one channel to the server for all
 * the service clients: why a backend needs neither the SDK nor generated
 * stubs to call Stagedoor.
 */
export function connectStagedoorGrpc(baseUrl: string, protoDir: string): StagedoorGrpc {
  const definition = protoLoader.loadSync(
    [...protoFilesUnder(protoDir, "stagedoor"), "grpc/health/v1/health.proto"],
    { longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [protoDir] },
  );
  const root = grpc.loadPackageDefinition(definition);
  const { target, credentials } = grpcTarget(baseUrl);
  const channel = new grpc.Channel(target, credentials, {});
  const make = <C extends grpc.Client>(fullName: string): C => {
    const Service = serviceConstructor(root, fullName);
    // The constructor's declared type only knows grpc.Client; the loaded
    // methods are what the interfaces above describe.
    return new Service(target, credentials, { channelOverride: channel }) as unknown as C;
  };
  return {
    target,
    catalog: make<CatalogClient>("stagedoor.catalog.v1.CatalogService"),
    queue: make<QueueClient>("stagedoor.queue.v1.QueueService"),
    reservation: make<ReservationClient>("stagedoor.reservation.v1.ReservationService"),
    wallet: make<WalletClient>("stagedoor.wallet.v1.WalletService"),
    health: make<HealthClient>("grpc.health.v1.Health"),
    close: () => channel.close(),
  };
}
