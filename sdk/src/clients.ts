import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { CatalogService } from "./gen/stagedoor/catalog/v1/catalog_service_pb.js";
import { PaymentService } from "./gen/stagedoor/payment/v1/payment_service_pb.js";
import { QueueService } from "./gen/stagedoor/queue/v1/queue_service_pb.js";
import { ReservationService } from "./gen/stagedoor/reservation/v1/reservation_service_pb.js";
import { WalletService } from "./gen/stagedoor/wallet/v1/wallet_service_pb.js";

/** One typed client per Stagedoor service, all sharing one transport. */
export interface StagedoorClient {
  readonly queue: Client<typeof QueueService>;
  readonly catalog: Client<typeof CatalogService>;
  readonly reservation: Client<typeof ReservationService>;
  readonly wallet: Client<typeof WalletService>;
  readonly payment: Client<typeof PaymentService>;
}

/**
 * Creates clients for every Stagedoor service over one transport (Connect,
 * gRPC or gRPC-Web; Node or browser). Calls made for a fan carry their queue
 * token as `Authorization: Bearer <token>`, for example through the
 * transport's interceptors or each call's `headers` option.
 *
 * @example
 * ```ts
 * const stagedoor = createStagedoorClient(transport);
 * const { token } = await stagedoor.queue.issueQueueToken({ concertId, userId: "fan-1" });
 * const auth = { headers: { authorization: `Bearer ${token}` } };
 * const { wallet } = await stagedoor.wallet.getWallet({}, auth);
 * ```
 */
export function createStagedoorClient(transport: Transport): StagedoorClient {
  return {
    queue: createClient(QueueService, transport),
    catalog: createClient(CatalogService, transport),
    reservation: createClient(ReservationService, transport),
    wallet: createClient(WalletService, transport),
    payment: createClient(PaymentService, transport),
  };
}
