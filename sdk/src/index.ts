/**
 * The Stagedoor SDK: every service descriptor, message schema, message type
 * and enum of the Stagedoor API, a client factory, and helpers for the hard
 * parts: waiting for admission, retries that never charge twice, and readable
 * errors. This entry runs anywhere (Node, browsers, workers); the transports
 * live in `@stagedoor/sdk/node` and `@stagedoor/sdk/web`.
 *
 * @example
 * ```ts
 * import { createStagedoorClient, waitForAdmission } from "@stagedoor/sdk";
 * import { createNodeTransport } from "@stagedoor/sdk/node";
 *
 * const stagedoor = createStagedoorClient({ baseUrl: "http://127.0.0.1:8080", transport: createNodeTransport });
 * const { concerts } = await stagedoor.catalog.listConcerts({});
 * ```
 *
 * @packageDocumentation
 */

export {
  createAdminClient,
  type StagedoorAdminClient,
  type StagedoorAdminClientOptions,
  seatMapFormatOf,
} from "./admin.js";
export {
  callIdempotently,
  type IdempotentCallOptions,
  type MutationOptions,
  type RetryAttempt,
} from "./call-idempotently.js";
export {
  bearerToken,
  createStagedoorClient,
  type StagedoorClient,
  type StagedoorClientOptions,
  type TokenSource,
  type TransportFactory,
} from "./clients.js";
export {
  ERROR_DOMAIN,
  errorReason,
  type FieldViolation,
  fieldViolations,
  isRetryable,
  type KnownErrorReason,
  retryDelay,
  type StagedoorErrorReason,
} from "./errors.js";
// The generated files are re-exported whole (the one place `export *` is
// allowed): tsc rejects clashing names, which keeps every name unique.
export * from "./gen/google/rpc/error_details_pb.js";
export * from "./gen/grpc/health/v1/health_pb.js";
export * from "./gen/stagedoor/admin/v1/admin_service_pb.js";
export * from "./gen/stagedoor/catalog/v1/catalog_service_pb.js";
export * from "./gen/stagedoor/common/v1/error_reason_pb.js";
export * from "./gen/stagedoor/payment/v1/payment_service_pb.js";
export * from "./gen/stagedoor/queue/v1/queue_service_pb.js";
export * from "./gen/stagedoor/reservation/v1/reservation_service_pb.js";
export * from "./gen/stagedoor/ticket/v1/ticket_service_pb.js";
export * from "./gen/stagedoor/wallet/v1/wallet_service_pb.js";
export { type PayReservationInput, payReservation } from "./pay-reservation.js";
export { type RechargeWalletInput, rechargeWallet } from "./recharge-wallet.js";
export {
  type Admission,
  type AdmissionEvent,
  type QueueUpdate,
  type Reconnect,
  type WaitForAdmissionOptions,
  type WatchAdmissionOptions,
  waitForAdmission,
  watchAdmission,
} from "./wait-for-admission.js";
